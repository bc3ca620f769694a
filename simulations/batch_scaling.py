"""Batch-size sweeps, shared by every claim about how training scales with the batch size.

The generic pieces (McCandlish et al. 2018; Shallue et al. 2018; Zhang et al. 2019; the
allowable batch size of SNGM, Zhao et al. 2020):

* **Tuning per (method, B)** — :func:`tune`: the learning rate of each (method, B) is the
  grid point with the best mean over the *tuning* seeds (highest validation accuracy, or
  fewest steps to a target); the same rule for every method. A tuned point at an end of
  its grid is flagged (the optimum may lie outside: tuning censored).
* **Steps to target** — :func:`first_crossing`: the first *recorded* step at which a curve
  (a mean over seeds: E L(t) or a mean validation accuracy) reaches the target; +inf if
  never. With records every r steps the reported step is an upper bound on the exact
  first step, by less than r (the granularity is stated with every result).
  :func:`optimizer_steps` converts micro-steps of an accumulating optimizer into optimizer
  steps (⌊c/k⌋ after c micro-steps of k per step).
* **Trade-off fits** — :func:`critical_batch`: S(B) = S_min + E_min/B by
  :func:`theory.scaling.fit_tradeoff`, B_crit = E_min/S_min.
* **Allowable batch size** — :func:`allowable_index`: the grid index of the largest B whose
  accuracy is within a margin of the method's best accuracy over the reference (small)
  batch sizes.
* **Intervals on grid indices** — :func:`grid_interval` (percentile bootstrap over the
  independent units, :func:`simulations.stats.bootstrap_grid_interval`); an index at the
  top of the grid is censored (the true value may lie beyond) and leaves that end open
  (:data:`OPEN` grid steps), so it can never make a comparison decisive.

The digits sweep (:data:`DIGITS`, a shared run) is the real-data instance: every method ×
batch size × η × seed at a fixed epoch budget on key-derived data splits
(:func:`simulations.testbeds.digits_mlp.train_batch_sweep`), reduced by the fixed tuning
rules above to compact evidence: test accuracy at the tuned η and steps to a validation
accuracy target, per split.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from simulations import stats
from simulations.keys import numpy_rng, subkey
from simulations.registry import shared_run
from theory import scaling as th
from theory import validation as check

#: grid steps standing for an interval end that censoring leaves open (beyond any grid).
OPEN = 99


# ============================================================================ tuning
def tune(scores, *, maximize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Best grid point of the last axis of ``scores`` (..., η) (already averaged over the
    tuning seeds): argmax (``maximize``) or argmin, NaN treated as worst; ties go to the
    smaller index. Returns (index, at_edge) with at_edge True where the index is the first
    or last point of the grid and the grid has more than one point."""
    s = np.asarray(scores, np.float64)
    worst = -np.inf if maximize else np.inf
    s = np.where(np.isnan(s), worst, s)
    idx = np.argmax(s, axis=-1) if maximize else np.argmin(s, axis=-1)
    n = s.shape[-1]
    return idx, (n > 1) & ((idx == 0) | (idx == n - 1))


def take(values, index, axis: int = -1) -> np.ndarray:
    """``values`` at ``index`` along ``axis`` (the axis removed): e.g. the test accuracies at
    the tuned η of every (method, B)."""
    values = np.asarray(values)
    axis = axis % values.ndim
    idx = np.expand_dims(np.asarray(index), axis)
    while idx.ndim < values.ndim:
        idx = idx[..., None]
    idx = np.broadcast_to(idx, values.shape[:axis] + (1,) + values.shape[axis + 1:])
    return np.take_along_axis(values, idx, axis=axis).squeeze(axis)


# ==================================================================== steps to target
def first_crossing(curves, target, steps, *, below: bool = True) -> np.ndarray:
    """(...) the first ``steps[j]`` at which ``curves[..., j]`` <= target (``below``) or >=
    target; +inf where the curve never reaches it. NaN never counts as reached."""
    c = np.asarray(curves, np.float64)
    steps = np.asarray(steps, np.float64)
    if c.shape[-1] != steps.size:
        check.fail("steps", steps, f"one step per record ({c.shape[-1]})")
    hit = (c <= target) if below else (c >= target)
    hit &= ~np.isnan(c)
    first = steps[np.argmax(hit, axis=-1)]
    return np.where(hit.any(axis=-1), first, np.inf)


def crossing_band(mean, target, steps, below_halfwidth, above_halfwidth, *, below: bool = True) -> tuple:
    """(first, early, late) for a target reached from above (``below``): the first recorded
    step at which the mean curve reaches the target, and the first steps at which the
    optimistic curve mean − above_halfwidth and the pessimistic mean + below_halfwidth do
    (half-widths: how far the true curve may lie under/over the mean). If the true curve lies
    in [mean − above, mean + below] at every record, the true first step lies in
    [early, late]. (From below: the roles swap.)"""
    first = first_crossing(mean, target, steps, below=below)
    if below:
        early = first_crossing(mean - above_halfwidth, target, steps, below=True)
        late = first_crossing(mean + below_halfwidth, target, steps, below=True)
    else:
        early = first_crossing(mean + below_halfwidth, target, steps, below=False)
        late = first_crossing(mean - above_halfwidth, target, steps, below=False)
    return first, early, late


def seed_bootstrap_crossings(records, target, steps, *, rng, n_boot: int, confidence: float,
                             statistic, margin: float = 5.0, below: bool = True):
    """Percentile-bootstrap intervals of ``statistic(S)``, S (boot, config) the first recorded
    step at which the mean over resampled seeds of ``records`` (config, seed, record) reaches
    ``target`` (:func:`first_crossing` of the resampled mean curve); ``statistic`` returns
    (boot, k). Only the records where the curve can cross are resampled: from the first at
    which mean − ``margin``·SE reaches the target to the first at which mean + margin·SE
    does (a resampled mean differs from the full mean by far less than 8 SE), so the
    resampling costs O(window) per configuration. Uses
    :func:`simulations.stats.bootstrap_moments_ci`. Returns (estimate, low, high) of length k."""
    # a failed (non-finite) record never reaches a target from above: a huge finite value keeps
    # the moments finite
    x = np.nan_to_num(np.asarray(records, np.float64), nan=1e150, posinf=1e150, neginf=-1e150)
    C, n, R = x.shape
    steps = np.asarray(steps, np.float64)
    mean, se, _ = stats.mean_stderr(x, axis=1)
    _, early, late = crossing_band(mean, target, steps, margin * se, margin * se, below=below)
    idx_of = {s: i for i, s in enumerate(steps)}
    lo = np.array([idx_of[e] if np.isfinite(e) else R for e in early])
    hi = np.array([idx_of[t] if np.isfinite(t) else R - 1 for t in late])
    width = int(max(1, (np.maximum(hi - lo + 1, 1)).max()))
    cols = np.minimum(lo[:, None] + np.arange(width)[None, :], R - 1)          # (C, W)
    window = np.take_along_axis(x, np.broadcast_to(cols[:, None, :], (C, n, width)), axis=2)
    valid = (lo[:, None] + np.arange(width)[None, :]) <= np.minimum(hi, R - 1)[:, None]
    wsteps = steps[cols]                                                        # (C, W)

    def stat(m, v):
        del v
        hit = (m <= target) if below else (m >= target)
        hit &= valid[None]
        first = np.where(hit.any(-1), np.take_along_axis(
            np.broadcast_to(wsteps, m.shape), np.argmax(hit, -1)[..., None], -1)[..., 0], np.inf)
        return statistic(first)

    return stats.bootstrap_moments_ci(np.moveaxis(window, 1, 0), stat, rng=rng, n_boot=n_boot,
                                      confidence=confidence, chunk=max(1, min(200, 2_000_000 // max(1, C * width))))


def optimizer_steps(micro_steps, every_k) -> np.ndarray:
    """Optimizer steps taken after ``micro_steps`` micro-steps of an accumulating optimizer
    with k micro-steps per step: ⌊c/k⌋ (inf stays inf)."""
    c = np.asarray(micro_steps, np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(c), np.floor(c / np.asarray(every_k, np.float64)), np.inf)


# ============================================================================ fits
def critical_batch(batch_sizes, steps) -> dict:
    """S(B) = S_min + E_min/B fitted to the finite steps (:func:`theory.scaling.fit_tradeoff`)."""
    return th.fit_tradeoff(batch_sizes, steps)


# ==================================================================== allowable batch
def allowable_index(accuracy, *, n_reference: int, margin: float) -> np.ndarray:
    """(...) grid index of the largest B (last axis of ``accuracy`` (..., B)) whose accuracy
    is >= (the best accuracy over the first ``n_reference`` batch sizes) − ``margin``. The
    best reference B itself always qualifies, so the index is >= 0."""
    acc = np.asarray(accuracy, np.float64)
    ref = np.max(acc[..., :n_reference], axis=-1, keepdims=True)
    ok = acc >= ref - margin
    n = acc.shape[-1]
    return n - 1 - np.argmax(ok[..., ::-1], axis=-1)


def grid_interval(samples, index_fn: Callable[[np.ndarray], int], *, top: int, rng, n_boot: int,
                  confidence: float, axis: int = 0) -> dict:
    """Percentile-bootstrap interval of a grid index ``index_fn(samples)`` resampling the
    units along ``axis``. An index at ``top`` (the last grid point) is censored: the true
    value may be larger, so the upper end becomes +:data:`OPEN`. Returns estimate, low,
    high, censored."""
    est, low, high = stats.bootstrap_grid_interval(samples, index_fn, rng=rng, n_boot=n_boot,
                                                   confidence=confidence, axis=axis)
    censored = est >= top
    return dict(estimate=int(est), low=int(low), high=int(OPEN if high >= top else high),
                censored=bool(censored))


def grid_difference_interval(samples, index_a: Callable, index_b: Callable, *, top: int, rng,
                             n_boot: int, confidence: float, axis: int = 0) -> dict:
    """Bootstrap interval of index_a − index_b, both computed on the same resample of the
    units along ``axis`` (paired). Censoring at the top: if index_a sits at ``top`` the
    difference may be larger (upper end open); if index_b does, it may be smaller (lower
    end open). Returns estimate, low, high, censored and the point bounds."""
    x = np.asarray(samples)
    n = x.shape[axis]
    idx = rng.integers(0, n, size=(n_boot, n))
    lows, highs = [], []
    for i in idx:
        s = np.take(x, i, axis=axis)
        a, b = int(index_a(s)), int(index_b(s))
        lows.append(-OPEN if b >= top else a - b)
        highs.append(OPEN if a >= top else a - b)
    q = [(1 - confidence) / 2, (1 + confidence) / 2]
    a, b = int(index_a(x)), int(index_b(x))
    lo = int(np.quantile(lows, q[0], method="inverted_cdf"))
    hi = int(np.quantile(highs, q[1], method="inverted_cdf"))
    return dict(estimate=a - b, low=lo, high=hi, point_lower=-OPEN if b >= top else a - b,
                point_upper=OPEN if a >= top else a - b, censored=bool(a >= top or b >= top))


def steps_text(iv) -> str:
    """'+1 [0, +2]' for a grid-step interval, open ends as ±∞."""
    def end(v):
        v = int(v)
        return "+∞" if v >= OPEN else ("−∞" if v <= -OPEN else f"{v:+d}")
    return f"{end(iv['estimate'])} [{end(iv['low'])}, {end(iv['high'])}]"


# ================================================================= the digits sweep
def eta_grid(cfg, methods, batch_sizes) -> np.ndarray:
    """(method, B, η) learning rates by one rule for every method:
    η = centre_m · (B/b)^κ_m · ρ^(j − (n−1)/2), j = 0..n−1, with b the smallest batch size,
    ρ = ``eta_ratio`` and n = ``n_eta`` (the same for every method), centre_m from
    ``eta_centres`` and κ_m = ``eta_batch_exponent`` (a number for every method, or a dict)."""
    n = check.integer_at_least("n_eta", cfg["n_eta"], 1)
    rho = check.positive("eta_ratio", cfg["eta_ratio"])
    kappas = cfg["eta_batch_exponent"]
    bs = np.asarray(batch_sizes, np.float64)
    rows = []
    for m in methods:
        if m not in cfg["eta_centres"]:
            check.fail("eta_centres", 0, f"a centre for method {m!r}")
        c = check.positive(f"eta_centres[{m!r}]", cfg["eta_centres"][m])
        kappa = check.nonnegative(f"eta_batch_exponent[{m!r}]", kappas[m] if isinstance(kappas, dict) else kappas)
        rows.append(c * (bs[:, None] / bs[0]) ** kappa * rho ** (np.arange(n)[None, :] - (n - 1) / 2))
    return np.stack(rows)


def split_seeds(key, n_splits: int) -> list[int]:
    """The integer seeds of the data splits, drawn from the claim's key."""
    return [int(s) for s in numpy_rng(subkey(key, "digits/splits")).integers(0, 2 ** 31, n_splits)]


def digits_design(cfg):
    """Validated sizes of the digits sweep: (methods, k per B, batch sizes, M, etas)."""
    from simulations.testbeds import digits_mlp as dm

    methods = dm.check_batch_methods(cfg["methods"])
    check.in_range("momentum", cfg["momentum"], 0.0, 1.0, closed_low=True, closed_high=False)
    check.integer_at_least("n_splits", cfg["n_splits"], 2)
    check.integer_at_least("n_tune", cfg["n_tune"], 1)
    check.integer_at_least("n_test", cfg["n_test"], 1)
    check.in_range("target_accuracy", cfg["target_accuracy"], 0.0, 1.0, closed_low=False)
    tb = dm.make_digits_microbatch(micro_batch=cfg["micro_batch"], width=cfg["width"])
    M = check.integer_at_least("epochs", cfg["epochs"], 1) * tb.full_accumulate
    ks = dm.check_accumulation(tb, cfg["accumulate"], cfg["full_batch"], M, cfg["record_every"])
    batch_sizes = np.where(np.arange(ks.size) == ks.size - 1, tb.n_train, ks * tb.micro_batch) \
        if cfg["full_batch"] else ks * tb.micro_batch
    return methods, ks, batch_sizes.astype(np.int64), M, eta_grid(cfg, methods, batch_sizes)


@shared_run("batch.digits")
def digits_sweep(cfg, *, key):
    """Every method × B × η × seed on each of ``n_splits`` key-derived data splits, at a
    fixed epoch budget; on each split the fixed tuning rules pick η per (method, B).

    Per split (axis 0 of every array): ``val_tune`` (method, B, η) mean final validation
    accuracy over the tuning seeds; ``tuned`` (method, B) its argmax; ``test`` (method, B,
    test seed) test accuracy at the tuned η on the other seeds; ``steps_tune`` (method, B, η)
    optimizer steps for the tuning seeds' mean validation accuracy to reach the target;
    ``steps_tuned`` its argmin; ``steps`` (method, B) the same measured on the test seeds at
    that η; ``curve`` (method, B, record) the test seeds' mean validation accuracy at that η.
    """
    from simulations.testbeds import digits_mlp as dm

    methods, ks, bs, M, etas = digits_design(cfg)
    seeds = split_seeds(key, cfg["n_splits"])
    n_tune, target = cfg["n_tune"], cfg["target_accuracy"]
    per, wall, compiles = [], 0.0, 0
    for s, seed in enumerate(seeds):
        tb = dm.make_digits_microbatch(micro_batch=cfg["micro_batch"], width=cfg["width"], split_seed=seed)
        out = dm.train_batch_sweep(tb, methods=methods, accumulate=cfg["accumulate"], full_batch=cfg["full_batch"],
                                   etas=etas, key=subkey(key, f"digits/{s}"), momentum=cfg["momentum"],
                                   n_micro_steps=M, record_every=cfg["record_every"],
                                   n_seeds=n_tune + cfg["n_test"])
        wall += out["wall_seconds"]
        compiles += out["compilations"]
        val_tune = out["val_final"][..., :n_tune].mean(-1)                        # (m, B, η)
        tuned, edge = tune(val_tune, maximize=True)
        test = take(out["test"][..., n_tune:], tuned[..., None], axis=2)          # (m, B, seed)
        micro_tune = first_crossing(out["val"][..., :n_tune, :].mean(-2), target, out["record_steps"], below=False)
        steps_tune = optimizer_steps(micro_tune, ks[None, :, None])               # (m, B, η)
        s_idx, s_edge = tune(steps_tune, maximize=False)
        curve = take(out["val"][..., n_tune:, :].mean(-2), s_idx[..., None], axis=2)  # (m, B, record)
        steps = optimizer_steps(first_crossing(curve, target, out["record_steps"], below=False), ks[None, :])
        per.append(dict(val_tune=val_tune, tuned=tuned, tuned_at_edge=edge, test=test, steps_tune=steps_tune,
                        steps_tuned=s_idx, steps_tuned_at_edge=s_edge & np.isfinite(steps_tune).any(-1),
                        steps=steps, curve=curve, diverged=out["diverged"].sum(axis=(-1, -2))))
    stack = {k: np.stack([p[k] for p in per]) for k in per[0]}
    return dict(stack, methods=list(methods), batch_sizes=bs, accumulate=ks, etas=etas, split_seeds=seeds,
                n_micro_steps=M, record_steps=out["record_steps"], steps_per_record=out["steps_per_record"],
                optimizer_steps=M // ks, examples=int(M * cfg["micro_batch"]), n_train=int(tb.n_train),
                wall_seconds=wall, compilations=compiles)


#: the digits sweep of every claim that reads it (one configuration per fidelity, so the
#: claims share one run per key): micro-batches of 8, B ∈ {8, 24, 72, 216, n = 1079} at a
#: fixed budget of ``epochs`` passes (M = 135·epochs micro-steps), validation accuracy
#: recorded every 27 micro-steps, η on the grid rule of :func:`eta_grid` (centres chosen so
#: that every method's best η lies inside its grid on a pilot key, before the claims ran).
_DIGITS = dict(micro_batch=8, width=64, accumulate=[1, 3, 9, 27], full_batch=True, epochs=4,
               record_every=27, momentum=0.9, target_accuracy=0.85, eta_batch_exponent=0.5,
               eta_centres=dict(sngm=0.05, msgd=0.03, sgd=0.25, lars=2.0, lamb=0.01))
DIGITS = {"quick": dict(_DIGITS, methods=["sngm", "msgd", "sgd"], n_splits=2, n_tune=1, n_test=1,
                        n_eta=4, eta_ratio=2.83),
          "full": dict(_DIGITS, methods=["sngm", "msgd", "sgd", "lars", "lamb"], n_splits=14, n_tune=2,
                       n_test=2, n_eta=7, eta_ratio=2.0)}
