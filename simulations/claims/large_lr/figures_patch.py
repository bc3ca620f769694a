"""Figure of Li, Wei & Ma's patch claim: patch-only, clean test and training accuracy per
epoch for the three arms (means over data draws, 95% Student-t bands, the anneal epoch
dashed, the paper's first epoch in LR·steps dotted), and the exploratory strength grid."""
from __future__ import annotations

import numpy as np

from simulations.claims.large_lr.rules import PLATEAU_CAP
from simulations.claims.large_lr.runs_patch import LEARNED
from simulations.plotting import CI_LABEL, mark_step, mean_band, new_figure, save

_GRID_SERIES = (("small", "epoch1", "C1", "o", "small: epoch 1"),
                ("small", "final", "C1", "s", "small: final"),
                ("large_anneal", "pre_anneal", "C0", "^", "large: pre-anneal"),
                ("large_anneal", "final", "C0", "D", "large: final"))


def _grid_panel(ax, ev):
    cells = sorted(ev.grid, key=lambda c: (c.strength, c.offset_norm))
    x = np.arange(len(cells))
    for arm, when, color, marker, label in _GRID_SERIES:
        ax.plot(x, [c[f"{arm}_{when}"] for c in cells], marker, color=color,
                mfc="white" if when == "final" else color, label=label)
    ax.set_xticks(x, [f"k={c.patch_size}\n{c.offset_norm:g}" for c in cells], fontsize=7)
    ax.set_xlabel("corner patch k×k, ‖ζ‖/‖z‖ (earlier recipe)")
    ax.axhline(LEARNED, color="gray", ls=":", lw=1)
    ax.set_ylim(0, 1.45)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("patch-only test acc. (grid means)")
    ax.set_title("exploratory strength grid (not judged)", fontsize=8)
    ax.legend(fontsize=6, loc="upper center", ncol=2)


def patch(ev, verdict, cfg, path):
    panels = (("patch_only", "patch-only test accuracy"), ("clean", "clean test accuracy"),
              ("train_acc", "training accuracy (one load)"))
    has_grid = len(ev.grid) > 0
    fig, axes = new_figure(verdict.claim_id, 3 + has_grid, width=3.7, height=3.8,
                           title=(f"digits + centred {cfg['patch_size']}×{cfg['patch_size']} patch (authors' "
                                  f"recipe), mean, {CI_LABEL} over draws; dashed: anneal, dotted: the "
                                  f"paper's first epoch in LR·steps ({verdict.status})"))
    for ax, (name, label) in zip(axes, panels):
        x = ev[name]  # (arm, draw, epoch)
        for i, a in enumerate(ev.arms):
            mean_band(ax, ev.epochs, x[i], color=f"C{i}", label=a)
        mark_step(ax, ev.anneal_epoch)
        ax.axvline(ev.matched_epoch, color="gray", ls=":", lw=1)
        if name == "patch_only":
            ax.axhline(0.1, color="gray", ls="-.", lw=0.8)
        if name == "train_acc":
            ax.axhline(PLATEAU_CAP, color="gray", ls="-.", lw=0.8)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    if has_grid:
        _grid_panel(axes[3], ev)
    save(fig, path)
