"""Figures of Li, Wei & Ma's P/Q claims: the premise (training loss and accuracy per arm),
per-type training accuracy per arm, the Q-margin κ and Q-only accuracy, final test
accuracies and P-only gains, the pre-activation-noise arm.

Simulations only (the claims are hypotheses, there is no theory curve): means over data
draws as markers with 95% Student-t bands or error bars (the plotting convention); the
anneal step dashed.
"""
from __future__ import annotations

import numpy as np

from simulations.claims.large_lr.rules import CHANCE_CAP, PLATEAU_CAP, interval
from simulations.claims.large_lr.runs import REGIMES, THRESHOLD
from simulations.plotting import CI_LABEL, errorbars, mark_step, mean_band, new_figure, save, step_axis

TYPES = ("P", "Q", "PQ")
_TYPE_COLORS = {"P": "C0", "Q": "C3", "PQ": "C2"}


def _type_panels(pq, axes, arms):
    for ax, a in zip(axes, arms):
        i = list(pq.arms).index(a)
        for k, t in enumerate(TYPES):
            mean_band(ax, pq.record_steps, pq.train_acc[i, :, :, k], color=_TYPE_COLORS[t],
                      label=f"{t} train")
        mark_step(ax, pq.anneal_step, "anneal")
        ax.axhline(THRESHOLD, color="gray", ls=":", lw=1)
        ax.set_ylim(0, 1.02)
        step_axis(ax)
        ax.set_ylabel(f"training accuracy by type ({CI_LABEL} over draws)")
        ax.set_title(a, fontsize=9)
        ax.legend(fontsize=7, loc="lower right")


def small_lr_learns_q_first(ev, verdict, cfg, path):
    pq = ev.pq
    shown = [a for a in ("large_anneal", "small", "small_noise") if a in list(pq.arms)]
    fig, axes = new_figure(verdict.claim_id, len(shown), width=4.2,
                           title=f"per-type training accuracy ({verdict.status})")
    _type_panels(pq, axes, shown)
    save(fig, path)


def _kappa_panel(ax, pq, arms):
    for a in arms:
        i = list(pq.arms).index(a)
        mean_band(ax, pq.record_steps, pq.kappa[i], color=f"C{i}", label=a)
    mark_step(ax, pq.anneal_step)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_yscale("symlog", linthresh=0.1)
    step_axis(ax, "step (dashed: anneal)")
    ax.set_ylabel(f"κ = f(z) − ½[f(z+ζ) + f(z−ζ)] ({CI_LABEL})")
    ax.legend(fontsize=7)


def _q_panel(ax, pq, arms):
    for a in arms:
        i = list(pq.arms).index(a)
        mean_band(ax, pq.record_steps, pq.train_acc[i, :, :, 1], color=f"C{i}", label=a)
    mark_step(ax, pq.anneal_step)
    ax.axhline(CHANCE_CAP, color="gray", ls=":", lw=1)
    ax.set_ylim(0, 1.02)
    step_axis(ax, "step (dashed: anneal)")
    ax.set_ylabel(f"Q-only training accuracy ({CI_LABEL})")
    ax.legend(fontsize=7)


def large_lr_delays_q(ev, verdict, cfg, path):
    fig, (ax, ax2) = new_figure(verdict.claim_id, 2,
                                title=f"Q-margin and Q-only accuracy ({verdict.status})")
    shown = [a for a in ("large_anneal", "small", "small_noise") if a in list(ev.pq.arms)]
    _kappa_panel(ax, ev.pq, shown)
    _q_panel(ax2, ev.pq, shown)
    save(fig, path)


def generalization(ev, verdict, cfg, path):
    pq = ev.pq
    arms = list(pq.arms)
    fig, (ax, ax2) = new_figure(verdict.claim_id, 2, width=5.5, title=verdict.status)
    tf = pq.test_final  # (arm, draw, type)
    width = 0.8 / len(arms)
    for i, a in enumerate(arms):
        m, lo, hi = (np.array(v) for v in zip(*(interval(tf[i, :, k]) for k in range(3))))
        errorbars(ax, np.arange(3) + (i - (len(arms) - 1) / 2) * width, m, lo, hi, color=f"C{i}", label=a)
    ax.set_xticks(range(3), [f"{t} test" for t in TYPES])
    ax.set_ylabel(f"final test accuracy ({CI_LABEL} over draws)")
    ax.legend(fontsize=6, ncol=2)
    pairs = [(r, p) for r, p in REGIMES.items() if all(a in arms for a in p)]
    for x, (r, (large, small)) in enumerate(pairs):
        d = tf[arms.index(large), :, 0] - tf[arms.index(small), :, 0]
        ax2.plot(np.full(d.shape, x), d, ".", color="gray", ms=4)
        m, lo, hi = interval(d)
        errorbars(ax2, [x], [m], [lo], [hi], color=f"C{x}")
    ax2.axhline(0, color="k", lw=0.8)
    ax2.set_xticks(range(len(pairs)), [f"{r}:\n{p[0]} −\n{p[1]}" for r, p in pairs], fontsize=6)
    ax2.set_xlim(-0.5, len(pairs) - 0.5)
    ax2.set_ylabel(f"P-only test accuracy gain (draws; {CI_LABEL})")
    save(fig, path)


def activation_noise(ev, verdict, cfg, path):
    fig, axes = new_figure(verdict.claim_id, 5, width=3.6,
                           title=f"small LR + annealed pre-activation noise ({verdict.status})")
    premise_panels(axes[:2], ev.pq, ["small", "small_noise"])
    _type_panels(ev.pq, axes[2:3], ["small_noise"])
    _kappa_panel(axes[3], ev.pq, ["small", "small_noise"])
    _q_panel(axes[4], ev.pq, ["small", "small_noise"])
    save(fig, path)


def _curve_panel(ax, pq, name, arms, ylabel, legend=True):
    for a in arms:
        i = list(pq.arms).index(a)
        mean_band(ax, pq.record_steps, pq[name][i], color=f"C{i}", label=a)
    mark_step(ax, pq.anneal_step)
    step_axis(ax, "step (dashed: anneal)")
    ax.set_ylabel(f"{ylabel} ({CI_LABEL} over draws)")
    if legend:
        ax.legend(fontsize=7)


def premise_panels(axes, pq, arms, legend=True):
    """Training loss and training accuracy per arm (the regime gate's curves)."""
    _curve_panel(axes[0], pq, "train_loss", arms, "training loss", legend)
    axes[0].set_yscale("log")
    _curve_panel(axes[1], pq, "fit_acc", arms, "training accuracy", legend)
    axes[1].axhline(PLATEAU_CAP, color="gray", ls=":", lw=1)
    axes[1].set_ylim(0, 1.02)
    axes[1].set_title(f"dotted: plateau cap {PLATEAU_CAP}", fontsize=8)


def regime(ev, verdict, cfg, path):
    pq = ev.pq
    fig, axes = new_figure(verdict.claim_id, 4, width=3.9,
                           title=f"premise: small LR ahead, large LR plateaus and jumps ({verdict.status})")
    premise_panels(axes[:2], pq, list(pq.arms), legend=False)
    axes[0].legend(fontsize=6, ncol=2, loc="upper right")
    _type_panels(pq, axes[2:], ["large_anneal", "small"])
    save(fig, path)
