"""Figures of the P/Q claims of Li, Wei & Ma (NeurIPS 2019, arXiv 1907.04595), CLAIMS.md §4:
per-type training accuracy per arm, the Q-margin κ and Q-only accuracy, the final test
accuracies and P-only gains, the pre-activation-noise arm, and the parameter map.

Simulations only (the claims are hypotheses, there is no theory curve): means over data
draws as markers with 95% Student-t bands or error bars; the anneal step dashed.
"""
from __future__ import annotations

import numpy as np

from simulations import stats
from simulations.claims.large_lr_rules import CHANCE_CAP, THRESHOLD, arr, ci
from simulations.plotting import new_figure, save
from theory import large_lr as th

_TYPE_COLORS = {"P": "C0", "Q": "C3", "PQ": "C2"}


def band(ax, x, m, lo, hi, color, label, marker="o"):
    """Simulation mean as markers joined by a thin line, its 95% interval as a band."""
    ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)
    ax.plot(x, m, marker=marker, ms=2.5, lw=0.8, color=color, label=label)


def mark_anneal(ax, step):
    """The anneal step (or epoch) as a dashed vertical line."""
    ax.axvline(step, color="k", ls="--", lw=1)


def _type_panels(ev, axes, arms):
    steps = np.asarray(ev["record_steps"])
    m, lo, hi = (arr(ev, f"train_acc_{s}") for s in ("mean", "lo", "hi"))
    for ax, a in zip(axes, arms):
        i = list(ev["arms"]).index(a)
        for k, t in enumerate(th.TYPES):
            band(ax, steps, m[i, :, k], lo[i, :, k], hi[i, :, k], _TYPE_COLORS[t], f"{t} train")
        mark_anneal(ax, ev["anneal_step"])
        ax.axhline(THRESHOLD, color="gray", ls=":", lw=1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("step t (dashed: anneal)"); ax.set_ylabel("training accuracy by type")
        ax.set_title(a, fontsize=9)
        ax.legend(fontsize=7, loc="lower right")


def figure_train_acc(ev, verdict, path):
    fig, axes = new_figure("largelr.small_lr_learns_q_first", 3, width=4.2,
                           title=f"per-type training accuracy, mean ± 95% CI ({verdict.status})")
    _type_panels(ev, axes, ev["arms"])
    save(fig, path)


def _kappa_panel(ax, ev, arms):
    steps = np.asarray(ev["record_steps"])
    m, lo, hi = (arr(ev, f"kappa_{s}") for s in ("mean", "lo", "hi"))
    for a in arms:
        i = list(ev["arms"]).index(a)
        band(ax, steps, m[i], lo[i], hi[i], f"C{i}", a)
    mark_anneal(ax, ev["anneal_step"])
    ax.axhline(0, color="k", lw=0.8)
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_xlabel("step t (dashed: anneal)"); ax.set_ylabel("κ = f(z) − ½[f(z+ζ) + f(z−ζ)]")
    ax.legend(fontsize=7)


def _q_panel(ax, ev, arms):
    steps = np.asarray(ev["record_steps"])
    m, lo, hi = (arr(ev, f"train_acc_{s}") for s in ("mean", "lo", "hi"))
    for a in arms:
        i = list(ev["arms"]).index(a)
        band(ax, steps, m[i, :, 1], lo[i, :, 1], hi[i, :, 1], f"C{i}", a)
    mark_anneal(ax, ev["anneal_step"])
    ax.axhline(CHANCE_CAP, color="gray", ls=":", lw=1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("step t (dashed: anneal)"); ax.set_ylabel("Q-only training accuracy")
    ax.legend(fontsize=7)


def figure_kappa(ev, verdict, path):
    fig, (ax, ax2) = new_figure("largelr.large_lr_delays_q", 2,
                                title=f"Q-margin and Q-only accuracy, mean ± 95% CI ({verdict.status})")
    _kappa_panel(ax, ev, ev["arms"])
    _q_panel(ax2, ev, ev["arms"])
    save(fig, path)


def figure_generalization(ev, verdict, path):
    fig, (ax, ax2) = new_figure("largelr.generalization", 2, title=verdict.status)
    tf = arr(ev, "test_final")
    for i, a in enumerate(ev["arms"]):
        m, lo, hi, _ = ci(tf[i], axis=0)
        x = np.arange(3) + (i - 1) * 0.2
        ax.errorbar(x, m, yerr=[m - lo, hi - m], fmt="o", color=f"C{i}", capsize=3, label=a)
    ax.set_xticks(range(3), [f"{t} test" for t in th.TYPES])
    ax.set_ylabel("final test accuracy (95% CI over draws)"); ax.legend(fontsize=7)
    for i, ref in ((0, "large_anneal"), (2, "small_noise")):
        d = tf[i, :, 0] - tf[1, :, 0]
        ax2.plot(np.full(d.shape, i / 2), d, ".", color="gray", ms=4)
        m, lo, hi = stats.mean_ci(d[np.isfinite(d)])
        ax2.errorbar([i / 2], [m], yerr=[[m - lo], [hi - m]], fmt="o", color=f"C{i}", capsize=4)
    ax2.axhline(0, color="k", lw=0.8)
    ax2.set_xticks([0, 1], ["large→anneal − small", "small+noise − small"])
    ax2.set_xlim(-0.5, 1.5)
    ax2.set_ylabel("P-only test accuracy gain (draws, mean ± 95% CI)")
    save(fig, path)


def figure_noise(ev, verdict, path):
    fig, axes = new_figure("largelr.activation_noise", 3, width=4.2,
                           title=f"small LR + annealed pre-activation noise ({verdict.status})")
    _type_panels(ev, axes[:1], ["small_noise"])
    _kappa_panel(axes[1], ev, ["small", "small_noise"])
    _q_panel(axes[2], ev, ["small", "small_noise"])
    save(fig, path)



def figure_map(ev, verdict, path):
    axes_names = list(ev["axes"])
    fig, axes = new_figure("largelr.parameter_map", len(axes_names), width=2.6, height=3.4,
                           title=f"P-only test gain (large→anneal − small), 95% CI ({verdict.status})")
    base = next(c for c in ev["cells"] if c["axis"] == "base")
    for ax, name in zip(axes, axes_names):
        pts = [(c["value"], c) for c in ev["cells"] if c["axis"] == name]
        pts.append((ev["base_values"][name], base))
        pts.sort(key=lambda p: p[0])
        for v, c in pts:
            filled = c["q_delayed"] == "yes"
            ax.errorbar([v], [c["gain"]], yerr=[[c["gain"] - c["gain_lo"]], [c["gain_hi"] - c["gain"]]],
                        fmt="o", color="C3" if filled else "C0", mfc="C3" if filled else "white",
                        capsize=3)
        ax.plot([p[0] for p in pts], [p[1]["gain"] for p in pts], "-", color="gray", lw=0.8)
        ax.axhline(0, color="k", lw=0.8)
        if name in ("d_over_n", "eta1", "batch_size", "l2", "r"):
            ax.set_xscale("log")
            ax.minorticks_off()
        ax.set_xticks([p[0] for p in pts], [f"{p[0]:.3g}" for p in pts], fontsize=7)
        ax.set_xlabel({"d_over_n": "d/n", "eta1": "η₁", "batch_size": "B", "l2": "λ",
                       "p0": "p₀", "r": "r"}[name])
    axes[0].set_ylabel("gain (red filled: Q delayed)")
    save(fig, path)
