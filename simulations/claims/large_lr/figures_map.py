"""Figures of Li, Wei & Ma's parameter map and of the claims judged in the selected cell:
the premise and the small LR's Q-first fraction per cell and regime, the P-only gains with
95% Student-t error bars, the mechanism (share of P's gradient from the examples with both
components); in the selected cell, per-type training accuracy of the two arms with the
anneal step marked and the P-only gain per draw."""
from __future__ import annotations

import numpy as np

from simulations.claims.large_lr.figures import _type_panels, premise_panels
from simulations.claims.large_lr.rules import interval
from simulations.claims.large_lr.rules_map import MAP_REGIMES, cell_row
from simulations.claims.large_lr.runs import REGIMES
from simulations.claims.large_lr.runs_map import MIN_Q_FIRST
from simulations.plotting import CI_LABEL, errorbars, new_figure, save

_GATE_VALUE = {"yes": 1.0, "unknown": 0.5, "no": 0.0}


def parameter_map(ev, verdict, cfg, path):
    cells = ev.map.cells
    rows = {r: [cell_row(c, r) for c in cells] for r in MAP_REGIMES}
    labels = [c.label for c in cells]
    fig, axes = new_figure(verdict.claim_id, 3, width=4.6, height=max(3.8, 0.32 * len(cells) + 1.5),
                           title=f"premise, Q-first and P-only gain per cell ({verdict.status})")
    ax = axes[0]
    grid = np.array([[_GATE_VALUE[rows[r][i]["gate"]] for r in MAP_REGIMES] for i in range(len(cells))])
    ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    for i in range(len(cells)):
        for j, r in enumerate(MAP_REGIMES):
            ax.text(j, i, f"{rows[r][i]['q_first_small']:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(MAP_REGIMES)), MAP_REGIMES, fontsize=7)
    ax.set_yticks(range(len(cells)), labels, fontsize=7)
    ax.grid(False)
    ax.set_title(f"colour: premise gate (green passed, red not met, yellow open);\n"
                 f"number: small LR's Q-first fraction (selection needs >= {MIN_Q_FIRST})", fontsize=7)
    for k, r in enumerate(("sgd", "noise_eta", "noise_eta2")):
        y = np.arange(len(cells)) + (k - 1) * 0.22
        m, lo, hi = (np.array([x[f] for x in rows[r]]) for f in ("gain", "gain_lo", "gain_hi"))
        passed = np.array([x["gate"] == "yes" for x in rows[r]])
        axes[1].errorbar(m, y, xerr=[m - lo, hi - m], fmt="none", ecolor=f"C{k}", capsize=2)
        axes[1].plot(m[passed], y[passed], "o", color=f"C{k}")
        axes[1].plot(m[~passed], y[~passed], "o", mfc="white", color=f"C{k}", label=r)
        both = np.array([x["both_share"] for x in rows[r]])  # (cell, [large, small])
        axes[2].plot(both[:, 0] - both[:, 1], y, "o", color=f"C{k}", mfc="white" if k else f"C{k}", label=r)
    for a in axes[1:]:
        a.set_yticks(range(len(cells)), labels, fontsize=7)
        a.axvline(0, color="k", lw=0.8)
        a.invert_yaxis()
        a.legend(fontsize=6, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    axes[0].set_ylim(len(cells) - 0.5, -0.5)
    axes[1].set_xlabel(f"final P-only test gain, large − small\n({CI_LABEL} over draws; filled: premise passed)")
    axes[2].set_xlabel("both-share before annealing, large − small\n(share of P's gradient from both-type examples)")
    save(fig, path)


def in_premise(ev, verdict, cfg, path):
    if not ev.selected:
        fig, axes = new_figure(verdict.claim_id, 1, width=6.0,
                               title=f"no mapped cell selected ({verdict.status})")
        ax = axes[0]
        for k, r in enumerate(ev.regimes):
            cand = [c for c in ev.candidates if c.regime == r]
            spread = np.linspace(-0.06, 0.06, max(len(cand), 1))  # one offset per cell
            x = np.array([_GATE_VALUE[c.gate] for c in cand]) + (k - 0.5) * 0.16 + spread
            ax.plot(x, [c.q_first for c in cand], "o", color=f"C{k}", label=r, alpha=0.8)
            for xi, c in zip(x, cand):
                if c.q_first >= MIN_Q_FIRST or c.gate != "no":
                    ax.annotate(c.label, (xi, c.q_first), fontsize=6, xytext=(3, 3),
                                textcoords="offset points")
        ax.axhline(MIN_Q_FIRST, color="gray", ls=":", lw=1)
        ax.set_xticks([0, 0.5, 1], ["not met", "open", "passed"])
        ax.set_xlabel("premise gate of the map cell")
        ax.set_ylabel("small LR's Q-first fraction (dotted: selection threshold)")
        ax.set_ylim(-0.05, 1.05)
        ax.legend(fontsize=7)
        save(fig, path)
        return
    pq, regime = ev.confirm, ev.selection.regime
    large, small = REGIMES[regime]
    fig, axes = new_figure(verdict.claim_id, 5, width=3.6,
                           title=f"cell {ev.cell_label}, {regime}, fresh draws ({verdict.status})")
    premise_panels(axes[:2], pq, [large, small])
    _type_panels(pq, axes[2:4], [large, small])
    arms = list(pq.arms)
    d = pq.test_final[arms.index(large), :, 0] - pq.test_final[arms.index(small), :, 0]
    axes[4].plot(np.zeros(d.shape), d, ".", color="gray", ms=4)
    m, lo, hi = interval(d)
    errorbars(axes[4], [0], [m], [lo], [hi], color="C3")
    axes[4].axhline(0, color="k", lw=0.8)
    axes[4].set_xticks([0], [f"{large} − {small}"], fontsize=7)
    axes[4].set_ylabel(f"final P-only test gain (draws; {CI_LABEL})")
    save(fig, path)
