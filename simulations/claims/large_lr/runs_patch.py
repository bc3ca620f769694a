"""Run of the patch claim of Li, Wei & Ma: scikit-learn's 8×8 digits with the authors' patch
recipe scaled down (:mod:`simulations.testbeds.digits_patch_norm`), three arms in one
program: η₁ annealed ×(η₂/η₁) at half the epochs; η₂ throughout; η₂ + annealed noise after
each normalization. Nesterov momentum and weight decay (:func:`simulations.optimizers.
annealed_nesterov`).

"Immediately" (the paper: within the first epoch, 391 steps at 0.004): the same sum of
step sizes, ``paper_epoch_lr_steps`` = 391·0.004, reached at η₂ after
⌈paper_epoch_lr_steps/η₂⌉ steps; the claim reads the first recorded epoch at or after it
(``matched_epoch``, at most the anneal epoch).

Exploratory output (not part of the verdict): the earlier strength grid, stronger patches
in the top-left corner (‖ζ_c‖ = offset_norm·‖z‖, k×k) on the plain two-layer network
(:mod:`simulations.testbeds.digits_patch`), η₁ annealed to η₂ vs η₂, ``grid["draws"]`` draws
per cell, patch-only accuracy after epoch 1, over the pre-anneal window and final.

A data draw is a digits split, patterns and patch assignment, all from its key
(``fold_in(subkey(key, "patch-data"), i)``; the grid's from "patch-grid-data"), so the
intervals over draws include the variance of the split.
"""
from __future__ import annotations

import itertools
import math
import warnings

import jax
import numpy as np

from simulations import engine, optimizers
from simulations.claims.large_lr.runs import arm_hparams, check_schedule
from simulations.keys import subkey
from simulations.testbeds import digits
from simulations.testbeds import digits_patch as dp
from simulations.testbeds import digits_patch_norm as dpn
from theory import validation as check

ARMS = ("large_anneal", "small", "small_noise")
GRID_ARMS = ("large_anneal", "small")
LEARNED = 0.9  # "learned / memorized": patch-only accuracy >= 0.9


def check_patch_config(cfg):
    """Schedule, sizes, noise and the grid's values, before anything is built or compiled."""
    check_schedule(dict(cfg, n_steps=cfg["epochs"], anneal_step=cfg["anneal_epoch"],
                        record_every=1), "epochs", "anneal_epoch")
    side = min(digits.IMAGE_SHAPE)
    for k in [cfg["patch_size"]] + list(cfg["grid"]["patch_sizes"]):
        if check.integer_at_least("patch_size", k, 1) > side:
            check.fail("patch_size", k, f"1 <= patch_size <= {side} (the image is 8x8)")
    check.integer_at_least("depth", cfg["depth"], 1)
    check.in_range("momentum", cfg["momentum"], 0.0, 1.0)
    check.nonnegative("weight_decay", cfg["weight_decay"])
    check.positive("paper_epoch_lr_steps", cfg["paper_epoch_lr_steps"])
    for o in cfg["grid"]["offset_norms"]:
        check.positive("offset_norm", o)
    check.positive("grid eta2", cfg["grid"]["eta2"])
    check.integer_at_least("grid draws", cfg["grid"]["draws"], 1)


def pre_anneal_epochs(epochs: int, anneal: int):
    """Epochs anneal/2 <= e <= anneal (the window the large-LR delay is judged on)."""
    e = np.arange(epochs + 1)
    return (e >= anneal / 2) & (e <= anneal)


def _valid_mean(res, names):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all seeds diverged: NaN
        out = {}
        for k in names:
            x = res.records[k]
            v = res.valid.reshape(res.valid.shape + (1,) * (x.ndim - 2))
            out[k] = np.nanmean(np.where(v, x, np.nan), axis=1)
        return out


def recipe_curves(cfg, *, data_key, sgd_key):
    """One data draw of the recipe: {metric: (arm, epoch)}, mean over the valid seeds."""
    tb = dpn.make_digits_patch_norm(key=data_key, patch_size=cfg["patch_size"], width=cfg["width"],
                                    depth=cfg["depth"], batch_size=cfg["batch_size"])
    spe = -(-tb.images.shape[0] // cfg["batch_size"])  # steps per epoch
    hp = arm_hparams(dict(cfg, anneal_step=cfg["anneal_epoch"] * spe), ARMS)
    hp.update(momentum=np.full(len(ARMS), cfg["momentum"]),
              weight_decay=np.full(len(ARMS), cfg["weight_decay"]))
    res = engine.simulate(tb, optimizers.make_annealed_nesterov, hp, key=sgd_key,
                          n_seeds=cfg["seeds_per_draw"], n_steps=cfg["epochs"] * spe,
                          record_every=spe, metrics=dpn.ALL_METRICS, common_random_numbers=True)
    all_ = _valid_mean(res, ["all"])["all"]  # (arm, epoch, metric)
    return dict({k: all_[..., j] for j, k in enumerate(dpn.ALL_NAMES)}, steps_per_epoch=spe,
                n_train=int(tb.images.shape[0]), n_valid=res.valid.sum(axis=1))


def grid_curves(g, epochs, anneal_epoch, *, patch_size, offset_norm, data_key, sgd_key):
    """One data draw of an exploratory grid cell (plain network, annealed SGD)."""
    tb = dp.make_digits_patch(key=data_key, patch_size=patch_size, offset_norm=offset_norm,
                              width=g["width"], batch_size=g["batch_size"], l2=g["l2"])
    spe = -(-tb.x_train.shape[0] // g["batch_size"])
    hp = arm_hparams(dict(eta1=g["eta1"], eta2=g["eta2"], anneal_step=anneal_epoch * spe), GRID_ARMS)
    res = engine.simulate(tb, optimizers.make_annealed_sgd, hp, key=sgd_key, n_seeds=2,
                          n_steps=epochs * spe, record_every=spe, metrics=dp.METRICS,
                          common_random_numbers=True)
    return _valid_mean(res, dp.METRICS)


def grid_cell(epochs, anneal_epoch, po, cl):
    """Summary of one grid cell from (arm, draw, epoch) patch-only and clean accuracies."""
    pre = po[:, :, pre_anneal_epochs(epochs, anneal_epoch)].mean(-1)
    row = {}
    for i, a in enumerate(GRID_ARMS):
        row.update({f"{a}_epoch1": float(np.nanmean(po[i, :, 1])),
                    f"{a}_pre_anneal": float(np.nanmean(pre[i])),
                    f"{a}_final": float(np.nanmean(po[i, :, -1]))})
    return dict(row, clean_gain=float(np.nanmean(cl[0, :, -1] - cl[1, :, -1])))


def matched_epoch(cfg, steps_per_epoch: int) -> int:
    """The first epoch whose steps at η₂ sum to the paper's first epoch (≤ the anneal)."""
    steps = math.ceil(cfg["paper_epoch_lr_steps"] / cfg["eta2"] - 1e-9)
    return int(min(-(-steps // steps_per_epoch), cfg["anneal_epoch"]))


def patch(cfg, *, key):
    """The recipe's three arms on ``n_draws`` draws, then the exploratory grid."""
    check_patch_config(cfg)
    data, sgd = subkey(key, "patch-data"), subkey(key, "patch-sgd")
    draws = [recipe_curves(cfg, data_key=jax.random.fold_in(data, i), sgd_key=jax.random.fold_in(sgd, i))
             for i in range(cfg["n_draws"])]
    ev = {m: np.stack([d[m] for d in draws], axis=1) for m in dpn.ALL_NAMES}  # (arm, draw, epoch)
    g = cfg["grid"]
    grid_data, grid_sgd = subkey(key, "patch-grid-data"), subkey(key, "patch-grid-sgd")
    cells = []
    for k, o in itertools.product(g["patch_sizes"], g["offset_norms"]):
        curves = [grid_curves(g, cfg["epochs"], cfg["anneal_epoch"], patch_size=k, offset_norm=o,
                              data_key=jax.random.fold_in(grid_data, d), sgd_key=jax.random.fold_in(grid_sgd, d))
                  for d in range(g["draws"])]
        po, cl = (np.stack([c[m] for c in curves], axis=1) for m in ("patch_only", "clean"))
        cells.append(dict(patch_size=int(k), offset_norm=float(o), strength=float(o) * int(k),
                          **grid_cell(cfg["epochs"], cfg["anneal_epoch"], po, cl)))
    spe = draws[0]["steps_per_epoch"]
    return dict(ev, arms=list(ARMS), epochs=np.arange(cfg["epochs"] + 1), anneal_epoch=cfg["anneal_epoch"],
                steps_per_epoch=spe, matched_epoch=matched_epoch(cfg, spe), n_train=draws[0]["n_train"],
                n_valid=np.stack([d["n_valid"] for d in draws], axis=1), grid=cells)
