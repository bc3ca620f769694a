"""Figure of ``sngm.allowable_batch_real``: test accuracy vs batch size for every method
with the allowable batch sizes marked, the paired single-B comparisons SNGM − baseline,
and the steps-to-target view (steps to a validation accuracy vs B, log-log)."""
from __future__ import annotations

import numpy as np

from simulations import batch_scaling as bsc
from simulations.plotting import CI_LABEL, band, log2_axes, mean_band, new_figure, save

COLORS = {"sngm": "C0", "msgd": "C1", "sgd": "C2", "lars": "C3", "lamb": "C4"}


def allowable_batch(ev, verdict, cfg, path):
    d = ev.digits
    bs, methods = d.batch_sizes.astype(float), list(ev.methods)
    acc = ev.split_accuracy                                     # (split, method, B)
    fig, (ax, ax2, ax3) = new_figure(verdict.claim_id, 3, width=4.6, height=4.2,
                                     title=f"digits MLP, {cfg['digits']['epochs']} epochs at every B ({verdict.status})")
    for i, m in enumerate(methods):
        c = COLORS.get(m, f"C{i}")
        mean, _, _ = mean_band(ax, bs * (1 + 0.03 * (i - 2)), 100 * acc[:, i], color=c, label=m.upper())
        iv = ev.allowable[m]
        j = int(iv["estimate"])
        lo = bs[max(int(iv["low"]), 0)]
        hi = bs[-1] * 1.6 if iv["high"] >= bsc.OPEN else bs[int(iv["high"])]
        y = mean[j]
        ax.plot([bs[j]], [y], "*", ms=12, color=c, mec="k", zorder=5)
        ax.plot([lo, hi], [y, y], "-", color=c, lw=3, alpha=0.5)
    ax.set_xscale("log")
    ax.set_xticks(bs, [str(int(b)) for b in bs])
    ax.set_xlabel("batch size B (full batch = n)")
    ax.set_ylabel(f"test accuracy (%) at the tuned η, {CI_LABEL} over splits")
    ax.set_title(f"★ allowable batch: within {100 * cfg['margin']:g} pp of the best of the "
                 f"{cfg['n_reference']} smallest B\nbar: its bootstrap interval over splits", fontsize=8)
    ax.legend(loc="lower left", fontsize=7)
    for i, m in enumerate([m for m in methods if m != "sngm"]):
        p = ev.paired[m]
        c = COLORS.get(m, f"C{i}")
        x = bs * (1 + 0.04 * (i - 1.5))
        band(ax2, x, 100 * p["mean"], 100 * p["low"], 100 * p["high"], color=c, label=f"SNGM − {m.upper()}")
    ax2.axhline(0, color="k", lw=1)
    ax2.axhspan(-100 * cfg["margin"], 0, color="0.85", zorder=0, label=f"−{100 * cfg['margin']:g} pp margin")
    ax2.set_xscale("log")
    ax2.set_xticks(bs, [str(int(b)) for b in bs])
    ax2.set_xlabel("batch size B")
    ax2.set_ylabel(f"paired test accuracy difference (pp), {CI_LABEL} over splits")
    ax2.set_title("single-B comparisons (measured, not the verdict)", fontsize=8)
    ax2.legend(fontsize=7, loc="lower left")
    steps = d.steps                                             # (split, method, B)
    for i, m in enumerate(methods):
        c = COLORS.get(m, f"C{i}")
        s = steps[:, i]
        ok = np.isfinite(s).all(axis=0)
        if ok.sum() >= 1:
            med = np.median(s[:, ok], axis=0)
            ax3.plot(bs[ok], med, "o-", color=c, label=m.upper(), ms=4)
            ax3.plot(np.repeat(bs[ok][None], s.shape[0], 0).ravel(), s[:, ok].ravel(), ".", color=c, ms=3, alpha=0.5)
    first = steps[:, 0, 0]
    if np.isfinite(first).all():
        ax3.plot(bs, np.median(first) * bs[0] / bs, "k:", lw=1, label=f"perfect scaling ∝ 1/B ({methods[0].upper()})")
    for j, T in enumerate(d.optimizer_steps):
        ax3.plot([bs[j]], [T], "v", color="0.4", ms=5, label="budget T = M/k" if j == 0 else None)
    log2_axes(ax3)
    ax3.set_xticks(bs, [str(int(b)) for b in bs])
    ax3.set_xlabel("batch size B")
    ax3.set_ylabel(f"optimizer steps to {100 * cfg['digits']['target_accuracy']:g}% validation accuracy")
    ax3.set_title("steps to target: line median over splits, dots splits;\n"
                  "no point: not reached within the budget (▼)", fontsize=8)
    ax3.legend(fontsize=7)
    save(fig, path)
