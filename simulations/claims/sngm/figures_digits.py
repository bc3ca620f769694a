"""Figure of ``sngm.test_accuracy``: tuning curves (mean over splits), test accuracies at the
tuned η, and the paired differences per split with the verdict's interval over splits."""
from __future__ import annotations

import numpy as np

from simulations import stats
from simulations.plotting import CI_LABEL, errorbars, mean_band, new_figure, save


def test_accuracy(ev, verdict, cfg, path):
    methods = list(ev.methods)
    fig, (ax, ax2, ax3) = new_figure(verdict.claim_id, 3, width=4.3,
                                     title=f"digits MLP at B = {cfg['batch_size']} ({verdict.status})")
    etas, val, best = ev.etas, ev.val, ev.best_index.astype(int)  # val: (split, method, η, seed)
    n_splits = val.shape[0]
    for i, m in enumerate(methods):
        per_split = val[:, i].mean(axis=-1)  # (split, η)
        mean_band(ax, etas[i], per_split, color=f"C{i}", label=m.upper())
        ax.plot(etas[i, best[:, i]], per_split[np.arange(n_splits), best[:, i]], "*", color=f"C{i}",
                ms=9, mec="k")
    ax.set_xscale("log")
    ax.set_ylim(0.8, 1.0)
    ax.set_xlabel("η (own grid per method; ★ tuned on each split)")
    ax.set_ylabel(f"validation accuracy (mean over splits, {CI_LABEL})")
    ax.set_title("tuning curves (below 0.8: off the axis)", fontsize=8)
    ax.legend(loc="upper left", ncol=3, fontsize=7)
    test = ev.test  # (split, method, seed)
    for i, m in enumerate(methods):
        mean, lo, hi = stats.mean_ci(test[:, i].mean(axis=-1))
        errorbars(ax2, [i], [mean], [lo], [hi], color=f"C{i}")
        dots = test[:, i].ravel()
        ax2.plot(np.full(dots.size, i) + np.linspace(-0.15, 0.15, dots.size), dots, ".", color="gray", ms=3)
    ax2.set_xticks(range(len(methods)), [m.upper() for m in methods])
    ax2.set_xlim(-0.5, len(methods) - 0.5)
    ax2.set_ylabel("test accuracy at the tuned η")
    ax2.set_title(f"bars: {CI_LABEL} over splits; dots: split × seed", fontsize=8)
    for j, m in enumerate(methods[1:]):
        d = verdict.measured[f"diff_vs_{m}"]
        errorbars(ax3, [j], [100 * d["mean"]], [100 * d["low"]], [100 * d["high"]], color="k")
        per = 100 * np.asarray(d["per_split"])
        ax3.plot(np.full(per.size, j) + np.linspace(-0.15, 0.15, per.size), per, ".", color="gray", ms=5)
    ax3.axhline(0, color="k", lw=1)
    ax3.axhline(-100 * cfg["margin"], color="C3", ls=":", label="−margin")
    ax3.set_xticks(range(len(methods) - 1), [f"SNGM − {m.upper()}" for m in methods[1:]])
    ax3.set_xlim(-0.5, len(methods) - 1.5)
    ax3.set_ylabel("SNGM − baseline, test accuracy (pp)")
    ax3.set_xlabel("dots: splits; bars: the verdict's Bonferroni t interval")
    ax3.legend()
    save(fig, path)


test_accuracy.__test__ = False  # a figure, not a pytest test
