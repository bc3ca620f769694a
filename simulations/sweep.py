"""Batch-size × learning-rate sweeps under a gradient budget C (T = C/B iterations).

    sweep(testbed, batch_sizes=[16, 32, ...], budgets=[2**14, 2**16], etas={...}, ...)
        -> SweepResult with metrics on axes (budget, method, B, η, seed)

Design (one compiled program per testbed shape and run length):

* The minibatch noise N(0, σ²/(dB) I) is added by the optimizer
  (:func:`simulations.optimizers.make_noisy_sngm_or_msgd`) with its standard deviation
  ``noise_std`` a *traced* hyperparameter, and the method (SNGM or MSGD) is a traced index
  ``method``: methods × batch sizes × learning rates are one config axis of one
  :func:`simulations.engine.simulate` call, so new η values (or new B values, or a new
  start x₀) never recompile.
* T = C/B differs per (C, B): every trajectory runs n_steps = max C / min B steps, and the
  metrics of (C, B) are read from the first T = C/B iterates only (window means over
  windows of r steps, r a power of 2 dividing every T with ≥ 8 windows per run, so the last
  25% of iterates is exactly the last quarter of the windows). The iterates of a shorter
  budget are the prefix of the longer run's (same keys): budgets are paired.
* First-hitting steps of ‖∇F(w_t)‖ ≤ ε are read at record granularity r (records at
  steps 0, r, 2r, ...): the reported step is the first *recorded* step with ‖∇F‖ ≤ ε,
  an upper bound on the exact first-hitting step, by less than r.
* A trajectory that becomes non-finite within its first T iterates counts as failing
  (its metrics are +inf); divergence after T does not affect budget C.
* The largest admissible batch B_max(ε, C) is a function of the per-seed tail metrics
  (:func:`b_max_index`), so it can be recomputed on resampled seeds (bootstrap).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import numpy as np

from simulations import engine, optimizers
from simulations.testbeds.smooth import gradient_norm, gradient_norm_sq
from theory import validation as check

METHODS = ("sngm", "msgd")


# ------------------------------------------------------------------------ validation
def check_beta(beta) -> float:
    return check.in_range("beta", beta, 0.0, 1.0, closed_low=True, closed_high=False)


def check_eps(eps) -> float:
    return check.positive("eps", eps)


def check_batch_sizes(batch_sizes) -> np.ndarray:
    bs = np.asarray(batch_sizes)
    if bs.ndim != 1 or bs.size == 0:
        check.fail("batch_sizes", bs, "a non-empty 1-d list of batch sizes")
    for b in bs:
        if not (np.isfinite(b) and b >= 1 and float(b) == int(b)):
            check.fail("B", b, "an integer batch size B >= 1")
    if np.any(np.diff(bs) <= 0):
        check.fail("batch_sizes", bs, "strictly increasing batch sizes")
    return bs.astype(np.int64)


def check_budgets(budgets, batch_sizes) -> np.ndarray:
    cs = np.asarray(budgets)
    if cs.ndim != 1 or cs.size == 0:
        check.fail("budgets", cs, "a non-empty 1-d list of gradient budgets C")
    bmax = int(np.max(batch_sizes))
    for c in cs:
        if not (np.isfinite(c) and float(c) == int(c) and c >= bmax):
            check.fail("C", c, f"an integer budget C >= B = {bmax} (at least one iteration T = C/B >= 1)")
        for b in batch_sizes:
            if int(c) % int(b):
                check.fail("C", c, f"a multiple of every batch size (C/B = T iterations), B = {int(b)}")
    return cs.astype(np.int64)


# ------------------------------------------------------- grid statistics of the tails
def median_tail(tail) -> np.ndarray:
    """(..., B, η) median over the last (seed) axis of the tail metric (failed = +inf):
    the middle order statistic, or the mean of the two middle ones (as ``np.median``, which
    it equals bitwise on NaN-free input, several times faster on the small arrays that
    bootstrap resampling evaluates thousands of times)."""
    s = np.sort(tail, axis=-1)
    n = s.shape[-1]
    return 0.5 * (s[..., (n - 1) // 2] + s[..., n // 2])


def best_eta_index(tail) -> np.ndarray:
    """(..., B) index of the η with the smallest median tail metric."""
    return np.argmin(median_tail(tail), axis=-1)


def b_max_index(tail, eps) -> np.ndarray:
    """(...) grid index of B_max(ε): the largest B (axis −3 of ``tail``, axes (..., B, η,
    seed)) for which some η has median-over-seeds tail metric ≤ ε; −1 where no B qualifies.
    At the top of the grid the value is censored (the true B_max may be larger)."""
    ok = np.min(median_tail(tail), axis=-1) <= eps  # (..., B)
    n = ok.shape[-1]
    last = n - 1 - np.argmax(ok[..., ::-1], axis=-1)
    return np.where(ok.any(axis=-1), last, -1)


def first_hits(records, failed, budgets, batch_sizes, record_every, eps) -> np.ndarray:
    """(budget, method, B, η, seed) first recorded step t ≤ T = C/B with ‖∇F(w_t)‖ ≤ ε
    (record granularity r; +inf if not reached by T or failed) from (method, B, η, seed,
    record) records."""
    steps = np.arange(records.shape[-1]) * record_every
    out = np.full((len(budgets),) + records.shape[:-1], np.inf)
    below = np.nan_to_num(records, nan=np.inf) <= eps
    for i, c in enumerate(budgets):
        for j, b in enumerate(batch_sizes):
            within = below[:, j, ..., : int(c // b) // record_every + 1]
            first = steps[np.argmax(within, axis=-1)]
            out[i, :, j] = np.where(within.any(axis=-1) & ~failed[i, :, j], first, np.inf)
    return out


def steps_to_eps(hits, tail) -> np.ndarray:
    """(..., B) median over seeds of the first-hitting step at the best η (the η minimizing
    the median tail metric); +inf if the median run never hits."""
    med = np.median(hits, axis=-1)
    return np.take_along_axis(med, best_eta_index(tail)[..., None], axis=-1)[..., 0]


# ------------------------------------------------------------------------ results
@dataclasses.dataclass(frozen=True)
class SweepResult:
    """Metrics of a sweep; arrays have axes (budget, method, B, η, seed).

    Attributes:
      average: (1/T) Σ_{t<T} ‖∇F(w_t)‖ (the theorem's metric), T = C/B.
      average_sq: (1/T) Σ_{t<T} ‖∇F(w_t)‖².
      tail: mean of ‖∇F(w_t)‖ over the last 25% of the T iterates.
      failed: True where the trajectory became non-finite within T (metrics are +inf).
      gnorm_records: (method, B, η, seed, record) ‖∇F‖ at steps 0, r, 2r, ... (whole run).
      etas: (method, η) the learning-rate grid of each method.
    """

    methods: tuple
    batch_sizes: np.ndarray
    budgets: np.ndarray
    etas: np.ndarray
    beta: float
    sigma: float
    average: np.ndarray
    average_sq: np.ndarray
    tail: np.ndarray
    failed: np.ndarray
    gnorm_records: np.ndarray
    record_every: int
    n_steps: int
    wall_seconds: float
    compilations: int

    def iterations(self) -> np.ndarray:
        """(budget, B) T = C/B."""
        return self.budgets[:, None] // self.batch_sizes[None, :]

    def median_tail(self) -> np.ndarray:
        """(budget, method, B, η) median over seeds of the tail metric (failed = +inf)."""
        return median_tail(self.tail)

    def best_eta_index(self) -> np.ndarray:
        """(budget, method, B) index of the η with the smallest median tail metric."""
        return best_eta_index(self.tail)

    def best_tail(self) -> np.ndarray:
        """(budget, method, B) min over η of the median tail metric."""
        return np.min(self.median_tail(), axis=-1)

    def b_max(self, eps) -> np.ndarray:
        """(budget, method) largest B of the grid for which some η has median tail ≤ ε;
        0 where no B qualifies. (At the top of the grid it is a lower bound: censored.)"""
        idx = b_max_index(self.tail, check_eps(eps))
        return np.where(idx >= 0, self.batch_sizes[np.maximum(idx, 0)], 0).astype(np.int64)

    def hit_steps(self, eps) -> np.ndarray:
        """(budget, method, B, η, seed) first recorded step t ≤ T with ‖∇F(w_t)‖ ≤ ε
        (record granularity r; +inf if not reached by T = C/B or failed)."""
        return first_hits(self.gnorm_records, self.failed, self.budgets, self.batch_sizes,
                          self.record_every, check_eps(eps))

    def steps_to_eps(self, eps) -> np.ndarray:
        """(budget, method, B) median over seeds of the first-hitting step at the best η
        (the η minimizing the median tail metric); +inf if the median run never hits."""
        return steps_to_eps(self.hit_steps(eps), self.tail)


# ------------------------------------------------------------------------ the sweep
def sweep(testbed, *, batch_sizes: Sequence[int], budgets: Sequence[int], etas, key,
          methods: Sequence[str] = METHODS, beta: float = 0.9, sigma: float = 1.0,
          n_seeds: int = 8, record_every: int | None = None, seed_chunk: int | None = None
          ) -> SweepResult:
    """Run every (method, B, η) × seed for n_steps = max C / min B steps in ONE engine call.

    Args:
      testbed: a testbed with an exact ``gradient`` and ``dim`` (e.g. :mod:`.testbeds.smooth`).
      batch_sizes: increasing integer B ≥ 1 (noise std σ/√(dB) per coordinate).
      budgets: gradient budgets C, each a multiple of every B.
      etas: learning rates, (n_eta,) shared or (method, n_eta) per method; values > 0.
      key: typed PRNG key.
      methods: subset of ("sngm", "msgd").
      beta: momentum 0 ≤ β < 1.
      sigma: per-sample gradient noise σ ≥ 0.
      record_every: window / record length r (default: the largest power of 2 ≤ min T/8
        that divides every T).
    """
    beta = check_beta(beta)
    sigma = check.nonnegative("sigma", sigma)
    bs = check_batch_sizes(batch_sizes)
    cs = check_budgets(budgets, bs)
    n_seeds = check.integer_at_least("n_seeds", n_seeds, 1)
    methods = tuple(methods)
    for m in methods:
        if m not in METHODS:
            check.fail("method", m, f"one of {METHODS}")
    etas = np.asarray(etas, dtype=np.float64)
    if etas.ndim == 1:
        etas = np.broadcast_to(etas, (len(methods), etas.size))
    if etas.ndim != 2 or etas.shape[0] != len(methods):
        check.fail("etas", etas, f"a (n_eta,) or ({len(methods)}, n_eta) array of learning rates")
    if not np.all(np.isfinite(etas) & (etas > 0)):
        check.fail("etas", etas, "learning rates eta > 0")
    T = cs[:, None] // bs[None, :]
    n_steps = int(T.max())
    if record_every is None:
        g = int(np.gcd.reduce(T.ravel()))
        r = 1
        while r * 2 <= max(1, T.min() // 8) and g % (r * 2) == 0:
            r *= 2
    else:
        r = check.integer_at_least("record_every", record_every, 1)
        if np.any(T % r):
            check.fail("record_every", r, "a divisor of every T = C/B")
    d = testbed.dim
    M, NB, NE = len(methods), len(bs), etas.shape[1]
    grid, shape = engine.config_grid(method=np.arange(M), batch=np.arange(NB), eta=np.arange(NE))
    mi, bi, ei = grid["method"], grid["batch"], grid["eta"]
    index = np.array([optimizers.LARGE_BATCH_METHODS.index(m) for m in methods], np.int32)
    hp = dict(method=index[mi], learning_rate=etas[mi, ei], momentum=np.full(mi.size, beta),
              noise_std=sigma / np.sqrt(d * bs[bi].astype(np.float64)))
    before = engine.trace_count()
    start = time.perf_counter()
    res = engine.simulate(testbed, optimizers.make_noisy_sngm_or_msgd, hp, key=key,
                          n_seeds=n_seeds, n_steps=n_steps, record_every=r, seed_chunk=seed_chunk,
                          metrics={"gnorm_at": gradient_norm},
                          window_metrics={"gnorm": gradient_norm, "gnorm_sq": gradient_norm_sq})
    wall = time.perf_counter() - start
    shape = shape + (n_seeds,)
    win = res.windows["gnorm"].reshape(shape + (-1,)).astype(np.float64)
    win_sq = res.windows["gnorm_sq"].reshape(shape + (-1,)).astype(np.float64)
    div = res.diverged_at.reshape(shape)
    avg = np.empty((len(cs),) + shape)
    avg_sq, tail = np.empty_like(avg), np.empty_like(avg)
    failed = np.zeros(avg.shape, dtype=bool)
    for i in range(len(cs)):
        for j in range(NB):
            nw = int(T[i, j] // r)
            first = int(np.floor(0.75 * nw))
            a = win[:, j, ..., :nw].mean(-1)
            a2 = win_sq[:, j, ..., :nw].mean(-1)
            tl = win[:, j, ..., first:nw].mean(-1)
            bad = ((div[:, j] >= 0) & (div[:, j] <= T[i, j])) | ~np.isfinite(a2) | ~np.isfinite(tl)
            failed[i, :, j] = bad
            avg[i, :, j] = np.where(bad, np.inf, a)
            avg_sq[i, :, j] = np.where(bad, np.inf, a2)
            tail[i, :, j] = np.where(bad, np.inf, tl)
    rec = res.records["gnorm_at"].reshape(shape + (-1,)).astype(np.float64)
    return SweepResult(methods=methods, batch_sizes=bs, budgets=cs, etas=np.array(etas),
                       beta=beta, sigma=sigma, average=avg, average_sq=avg_sq, tail=tail,
                       failed=failed, gnorm_records=rec, record_every=r, n_steps=n_steps,
                       wall_seconds=wall, compilations=engine.trace_count() - before)
