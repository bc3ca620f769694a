"""The patch claim of Li, Wei & Ma (NeurIPS 2019, arXiv 1907.04595), CLAIMS.md §4, "Patch
variant on real images": scikit-learn's 8×8 digits with a class patch
(:mod:`simulations.testbeds.digits_patch`), large η₁ annealed to η₂ vs η₂ throughout.

Paper's statement: with a small learning rate the patch is memorized within the first
epoch (patch-only accuracy ≈ 100%); with a large one patch-only accuracy stays near
chance until annealing; final clean test accuracy large ≥ small.

Testability (derived; the rule was fixed before the runs that decide the verdict). The
statement is about a patch the network can learn. At the recipe's weakest setting
(‖ζ_c‖ = 0.3‖z‖, 3×3 patch) neither arm learns the patch in 30 epochs, so neither the
order nor the delay can be observed. The run therefore has two stages, one program:

1. exploration grid: patch strength (``offset_norm`` = ‖ζ_c‖/‖z‖) × patch size k × the
   small learning rate η₂, ``grid_draws`` data draws of its own. Per cell and arm:
   patch-only test accuracy after epoch 1, averaged over the pre-anneal window
   (epochs anneal/2..anneal) and final; final clean test accuracy gain (large − small).
2. the claim's patch: the weakest grid cell at the claim's η₂ whose small-LR final
   patch-only accuracy (mean over the grid draws) exceeds ``LEARNED`` = 0.9, strength
   ordered by offset_norm·k ∝ E‖ζ_c‖ (E‖z‖ ∝ k for z ~ U[0, 1]^{k×k}). The main run,
   ``n_draws`` fresh data draws (other keys than the grid's, so the selection does not
   bias the verdict), measures the three parts of the claim there.

All cells and draws share one compiled engine program: the patch is data, η₁, η₂ and the
anneal step are traced hyperparameters, and the two arms are two configurations with
common random numbers (same initialization and minibatches per seed).
"""
from __future__ import annotations

import itertools
import warnings

import jax
import numpy as np

from simulations import engine, stats
from simulations.claims.large_lr_figures import band, mark_anneal
from simulations.claims.large_lr_rules import arm_hparams, arr, check_schedule, ci
from simulations.keys import subkey
from simulations.plotting import new_figure, save
from simulations.registry import Verdict
from simulations.testbeds import digits, digits_patch as dp
from simulations.testbeds import pq
from theory import validation as check

ARMS = ("large_anneal", "small")
LEARNED = 0.9           # "learned / memorized": patch-only accuracy >= 0.9
PATCH_CHANCE_CAP = 0.2  # "near chance" for the ten-class patch-only images (chance 0.1)
NONINFERIORITY = 0.005  # "clean accuracy large >= small": CI lower bound above -0.5 point


# ------------------------------------------------------------------------ validation
def check_patch_config(cfg):
    """Schedule, sizes and every grid value, before anything is built or compiled."""
    check_schedule(dict(cfg, n_steps=cfg["epochs"], anneal_step=cfg["anneal_epoch"],
                        record_every=1), "epochs", "anneal_epoch")
    side = min(digits.IMAGE_SHAPE)
    for k in cfg["grid_patch_sizes"]:
        if check.integer_at_least("patch_size", k, 1) > side:
            check.fail("patch_size", k, f"1 <= patch_size <= {side} (the image is 8x8)")
    for o in cfg["grid_offset_norms"]:
        check.positive("offset_norm", o)
    for e in cfg["grid_eta2s"]:
        check.positive("eta2", e)
    if not any(np.isclose(e, cfg["eta2"]) for e in cfg["grid_eta2s"]):
        check.fail("grid_eta2s", list(cfg["grid_eta2s"]), f"a list containing eta2 = {cfg['eta2']}")
    check.integer_at_least("grid_draws", cfg["grid_draws"], 1)


# ------------------------------------------------------------------------------ runs
def patch_curves(cfg, *, patch_size, offset_norm, eta2, data_key, sgd_key):
    """One data draw: {metric: (arm, epoch)} test accuracies, mean over the valid seeds."""
    tb = dp.make_digits_patch(key=data_key, patch_size=patch_size, offset_norm=offset_norm,
                              width=cfg["width"], batch_size=cfg["batch_size"], l2=cfg["l2"])
    spe = -(-tb.x_train.shape[0] // cfg["batch_size"])  # steps per epoch
    hp = arm_hparams(dict(eta1=cfg["eta1"], eta2=eta2, noise_std=0.0,
                          anneal_step=cfg["anneal_epoch"] * spe), ARMS)
    res = engine.simulate(tb, pq.make_annealed_sgd, hp, key=sgd_key, n_seeds=cfg["seeds_per_draw"],
                          n_steps=cfg["epochs"] * spe, record_every=spe, metrics=dp.METRICS,
                          common_random_numbers=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all seeds diverged: NaN
        out = {k: np.nanmean(np.where(res.valid[..., None], res.records[k], np.nan), axis=1)
               for k in dp.METRICS}
    return dict(out, steps_per_epoch=spe, n_train=int(tb.x_train.shape[0]))


def _window(cfg):
    e = np.arange(cfg["epochs"] + 1)
    return (e >= cfg["anneal_epoch"] / 2) & (e <= cfg["anneal_epoch"])


def grid_cell(cfg, po, cl):
    """Summary of one grid cell from (arm, draw, epoch) patch-only and clean accuracies."""
    pre = po[:, :, _window(cfg)].mean(-1)
    row = {}
    for i, a in enumerate(ARMS):
        row.update({f"{a}_epoch1": float(np.nanmean(po[i, :, 1])),
                    f"{a}_pre_anneal": float(np.nanmean(pre[i])),
                    f"{a}_final": float(np.nanmean(po[i, :, -1]))})
    return dict(row, clean_gain=float(np.nanmean(cl[0, :, -1] - cl[1, :, -1])))


def select_cell(cells, eta2):
    """The weakest cell (offset_norm·k, then offset_norm) at this η₂ whose small-LR final
    patch-only accuracy exceeds LEARNED; None if there is none."""
    ok = [c for c in cells if np.isclose(c["eta2"], eta2) and c["small_final"] > LEARNED]
    return min(ok, key=lambda c: (c["strength"], c["offset_norm"]), default=None)


def run_patch(cfg, *, key):
    """Exploration grid, selection of the weakest learnable patch, main run there."""
    check_patch_config(cfg)
    cells = []
    for eta2, k, o in itertools.product(cfg["grid_eta2s"], cfg["grid_patch_sizes"],
                                        cfg["grid_offset_norms"]):
        curves = [patch_curves(cfg, patch_size=k, offset_norm=o, eta2=eta2,
                               data_key=jax.random.fold_in(subkey(key, "patch-grid-data"), d),
                               sgd_key=jax.random.fold_in(subkey(key, "patch-grid-sgd"), d))
                  for d in range(cfg["grid_draws"])]
        po, cl = (np.stack([c[m] for c in curves], axis=1) for m in ("patch_only", "clean"))
        cells.append(dict(eta2=float(eta2), patch_size=int(k), offset_norm=float(o),
                          strength=float(o) * int(k), **grid_cell(cfg, po, cl)))
    chosen = select_cell(cells, cfg["eta2"])
    where = chosen or max((c for c in cells if np.isclose(c["eta2"], cfg["eta2"])),
                          key=lambda c: c["strength"])  # nothing learnable: the strongest
    draws = [patch_curves(cfg, patch_size=where["patch_size"], offset_norm=where["offset_norm"],
                          eta2=cfg["eta2"], data_key=jax.random.fold_in(subkey(key, "patch-data"), i),
                          sgd_key=jax.random.fold_in(subkey(key, "patch-sgd"), i))
             for i in range(cfg["n_draws"])]
    ev = {f"{m}_per_draw": np.stack([d[m] for d in draws], axis=1) for m in dp.METRICS}
    return dict(ev, arms=list(ARMS), epochs=np.arange(cfg["epochs"] + 1),
                anneal_epoch=cfg["anneal_epoch"], steps_per_epoch=draws[0]["steps_per_epoch"],
                n_train=draws[0]["n_train"], grid=cells, learnable=chosen is not None,
                patch_size=where["patch_size"], offset_norm=where["offset_norm"], sizes=dict(cfg))


# --------------------------------------------------------------------------- verdict
def _yes_no(yes, no):
    return "yes" if yes else "no" if no else "unknown"


def verdict_patch(ev, cfg):
    """Testable (learnable patch), then the three parts of the paper's statement."""
    po, cl = arr(ev, "patch_only_per_draw"), arr(ev, "clean_per_draw")  # (arm, draw, epoch)
    a = int(ev["anneal_epoch"])
    first = ci(po[1, :, 1], axis=0)
    final_small = ci(po[1, :, -1], axis=0)
    large = ci(po[0][:, _window(dict(epochs=po.shape[-1] - 1, anneal_epoch=a))].mean(-1), axis=0)
    diff = stats.paired_difference_ci(cl[0, :, -1], cl[1, :, -1])
    testable = bool(ev["learnable"]) and final_small[2] >= LEARNED
    parts = dict(small_first_epoch=_yes_no(first[1] >= LEARNED, first[2] < LEARNED),
                 large_before_anneal=_yes_no(large[2] <= PATCH_CHANCE_CAP, large[1] > PATCH_CHANCE_CAP),
                 clean_large_ge_small=_yes_no(diff[1] >= -NONINFERIORITY, diff[2] < 0))
    vals = set(parts.values())
    status = ("inconclusive" if not testable else "confirmed" if vals == {"yes"}
              else "refuted" if "no" in vals else "inconclusive")
    table = [f"η₂={c['eta2']:g} k={c['patch_size']} ‖ζ‖/‖z‖={c['offset_norm']:g}: patch-only small "
             f"{c['small_epoch1']:.2f}/{c['small_pre_anneal']:.2f}/{c['small_final']:.2f}, large "
             f"{c['large_anneal_epoch1']:.2f}/{c['large_anneal_pre_anneal']:.2f}/"
             f"{c['large_anneal_final']:.2f} (epoch 1/pre-anneal/final); clean gain "
             f"{c['clean_gain']:+.3f}" for c in ev["grid"]]
    where = (f"weakest learnable grid patch k = {ev['patch_size']}, ‖ζ‖/‖z‖ = {ev['offset_norm']:g}"
             if ev["learnable"] else "no grid patch learnable by the small LR (strongest used)")
    return Verdict(
        claim_id="largelr.patch", status=status,
        summary=(f"{where}; small-LR final patch-only acc {final_small[0]:.2f} (testable: "
                 f"{'yes' if testable else 'no'}); small LR after epoch 1: {first[0]:.2f} "
                 f"[{first[1]:.2f}, {first[2]:.2f}] ({parts['small_first_epoch']}); large LR before "
                 f"annealing (epochs {a // 2 + a % 2}..{a}): {large[0]:.2f} [{large[1]:.2f}, "
                 f"{large[2]:.2f}] ({parts['large_before_anneal']}); final clean test acc large − "
                 f"small {diff[0]:+.4f} [{diff[1]:+.4f}, {diff[2]:+.4f}] "
                 f"({parts['clean_large_ge_small']}); grid of {len(table)} cells in measured.grid"),
        measured=dict(parts=parts, testable=testable, patch_size=ev["patch_size"],
                      offset_norm=ev["offset_norm"],
                      small_patch_only_final=[float(v) for v in final_small[:3]],
                      small_patch_only_epoch1=[float(v) for v in first[:3]],
                      large_patch_only_before_anneal=[float(v) for v in large[:3]],
                      clean_difference=[float(v) for v in diff],
                      final_clean={"large_anneal": float(np.nanmean(cl[0, :, -1])),
                                   "small": float(np.nanmean(cl[1, :, -1]))},
                      grid=table, grid_cells=ev["grid"]),
        predicted=dict(small_first_epoch=f">= {LEARNED}",
                       large_before_anneal=f"<= {PATCH_CHANCE_CAP} (chance 0.1)",
                       clean_difference=">= 0"),
        rule=(f"patch: the weakest grid cell (offset_norm·k) at η₂ whose small-LR final patch-only "
              f"accuracy (mean over {cfg['grid_draws']} grid draws) exceeds {LEARNED}; main run on "
              f"fresh draws there. 95% t-intervals over data draws (per-draw means over seeds). "
              f"Testable iff a cell was selected and the small-LR final patch-only interval reaches "
              f"{LEARNED}; else inconclusive. (a) small-LR patch-only accuracy after epoch 1: yes iff "
              f"lower end >= {LEARNED}, no iff upper end < {LEARNED}; (b) large-LR patch-only "
              f"accuracy averaged over epochs anneal/2..anneal: yes iff upper end <= "
              f"{PATCH_CHANCE_CAP}, no iff lower end > {PATCH_CHANCE_CAP}; (c) final clean test "
              f"accuracy large − small (paired): yes iff lower end >= -{NONINFERIORITY} "
              "(non-inferiority), no iff upper end < 0. If testable: confirmed iff all yes; "
              "refuted iff any no; else inconclusive"),
        sizes=ev["sizes"])


# ---------------------------------------------------------------------------- figure
def _grid_panels(ax, ax2, ev, eta2):
    cells = sorted(ev["grid"], key=lambda c: (c["eta2"], c["strength"], c["offset_norm"]))
    main = [c for c in cells if np.isclose(c["eta2"], eta2)]
    x = np.arange(len(main))
    labels = [f"k={c['patch_size']}\n{c['offset_norm']:g}" for c in main]
    series = (("small", "epoch1", "C1", "o", "small: epoch 1"),
              ("small", "final", "C1", "s", "small: final"),
              ("large_anneal", "pre_anneal", "C0", "^", "large: pre-anneal"),
              ("large_anneal", "final", "C0", "D", "large: final"))
    for arm, when, color, marker, label in series:
        y = [c[f"{arm}_{when}"] for c in main]
        ax.plot(x, y, marker, color=color, mfc="white" if when == "final" else color, label=label)
    for e2 in sorted({c["eta2"] for c in cells} - {float(eta2)}):
        other = {(c["patch_size"], c["offset_norm"]): c for c in cells if c["eta2"] == e2}
        y = [other[(c["patch_size"], c["offset_norm"])]["small_epoch1"] for c in main]
        ax.plot(x, y, "x", color="C2", label=f"small η₂={e2:g}: epoch 1")
    for a in (ax, ax2):
        if ev["learnable"]:
            i = next(j for j, c in enumerate(main) if (c["patch_size"], c["offset_norm"]) ==
                     (ev["patch_size"], ev["offset_norm"]))
            a.axvspan(i - 0.4, i + 0.4, color="gold", alpha=0.3, lw=0)
        a.set_xticks(x, labels, fontsize=7)
        a.set_xlabel("grid cell: patch size k, ‖ζ‖/‖z‖ (shaded: chosen)")
    ax.axhline(LEARNED, color="gray", ls=":", lw=1)
    ax.set_ylim(0, 1.45)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel(f"patch-only test acc. (grid, η₂={eta2:g})")
    ax.legend(fontsize=6, loc="upper center", ncol=2)
    for e2, color in zip(sorted({c["eta2"] for c in cells}), ("C3", "C2", "C4")):
        y = [next(o["clean_gain"] for o in cells if o["eta2"] == e2 and
                  (o["patch_size"], o["offset_norm"]) == (c["patch_size"], c["offset_norm"]))
             for c in main]
        ax2.plot(x, y, "o", color=color, label=f"η₂={e2:g}")
    ax2.axhline(0, color="k", lw=0.8)
    ax2.set_ylabel("final clean acc. gain, large − small (grid)")
    ax2.legend(fontsize=7)


def figure_patch(ev, verdict, path):
    fig, axes = new_figure("largelr.patch", 5, width=3.6, height=3.8,
                           title=(f"digits + class patch (k = {ev['patch_size']}, ‖ζ‖/‖z‖ = "
                                  f"{ev['offset_norm']:g}), mean ± 95% CI over draws; right: "
                                  f"exploration grid ({verdict.status})"))
    epochs = np.asarray(ev["epochs"])
    for ax, name in zip(axes, ("patch_only", "clean", "patched")):
        x = arr(ev, f"{name}_per_draw")
        for i, a in enumerate(ev["arms"]):
            m, lo, hi, _ = ci(x[i], axis=0)
            band(ax, epochs, m, lo, hi, f"C{i}", a)
        mark_anneal(ax, ev["anneal_epoch"])
        if name == "patch_only":
            ax.axhline(0.1, color="gray", ls=":", lw=1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("epoch (dashed: anneal)")
        ax.set_ylabel(f"{name.replace('_', '-')} test accuracy")
        ax.legend(fontsize=7)
    _grid_panels(axes[3], axes[4], ev, ev["sizes"]["eta2"])
    save(fig, path)


# ------------------------------------------------------------------------ configs
_PATCH = dict(width=64, batch_size=32, l2=5e-4, eta1=1.0, eta2=0.05)
PATCH_QUICK = dict(_PATCH, epochs=8, anneal_epoch=4, n_draws=3, seeds_per_draw=2,
                   grid_offset_norms=[0.3, 3.0], grid_patch_sizes=[3], grid_eta2s=[0.05],
                   grid_draws=1)
PATCH_FULL = dict(_PATCH, epochs=30, anneal_epoch=15, n_draws=8, seeds_per_draw=2,
                  grid_offset_norms=[0.3, 0.6, 1.0, 2.0, 3.0], grid_patch_sizes=[3, 5],
                  grid_eta2s=[0.05, 0.2], grid_draws=2)
