"""Batch-size × learning-rate sweeps under a gradient budget C (T = C/B iterations).

    sweep(testbed, batch_sizes=[16, 32, ...], budgets=[2**14, 2**16], etas={...}, ...)
        -> SweepResult with metrics on axes (budget, method, B, η, seed)

Design (one compiled program per testbed shape and run length):

* The minibatch noise N(0, σ²/(dB) I) is added by the optimizer with its standard deviation
  ``noise_std`` a *traced* hyperparameter, and the method (SNGM or MSGD) is a traced 0/1
  flag ``normalize``: methods × batch sizes × learning rates are one config axis of one
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
"""
from __future__ import annotations

import dataclasses
import time
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from simulations import engine
from theory import validation as check

METHODS = ("sngm", "msgd")
_TINY = float(np.finfo(np.float32).tiny)


# ------------------------------------------------------------------------ optimizer
class _NoiseState(NamedTuple):
    key: jax.Array


def _noisy_normalized(noise_std, normalize, *, key) -> optax.GradientTransformation:
    """g ← ∇F + noise_std·ξ, ξ ~ N(0, I); then g ← g/‖g‖ where normalize = 1 (SNGM)."""

    def init_fn(params):
        del params
        return _NoiseState(key=key)

    def update_fn(updates, state, params=None):
        del params
        next_key, sub = jax.random.split(state.key)
        g = updates + noise_std * jax.random.normal(sub, updates.shape, updates.dtype)
        scale = jnp.where(normalize > 0.5, 1.0 / (jnp.linalg.norm(g) + _TINY), 1.0)
        return g * scale, _NoiseState(key=next_key)

    return optax.GradientTransformation(init_fn, update_fn)


def make_momentum_method(hparams, *, key) -> optax.GradientTransformation:
    """Engine factory: SNGM (``normalize`` = 1) or MSGD (``normalize`` = 0) on the noisy
    gradient; hparams ``learning_rate``, ``momentum``, ``noise_std``, ``normalize``.

    u ← βu + g̃, w ← w − ηu, with g̃ = g/‖g‖ (SNGM) or g (MSGD), g = ∇F + noise_std·ξ.
    """
    return optax.chain(_noisy_normalized(hparams["noise_std"], hparams["normalize"], key=key),
                       optax.sgd(hparams["learning_rate"], momentum=hparams["momentum"]))


def grad_norm(testbed, params):
    """‖∇F(w)‖ (exact gradient of the testbed)."""
    return jnp.linalg.norm(testbed.gradient(params))


def grad_norm_sq(testbed, params):
    """‖∇F(w)‖²."""
    g = testbed.gradient(params)
    return jnp.sum(g * g)


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


def _power_of_two_divisor(n: int) -> int:
    return n & -n


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
        return np.median(self.tail, axis=-1)

    def best_eta_index(self) -> np.ndarray:
        """(budget, method, B) index of the η with the smallest median tail metric."""
        return np.argmin(self.median_tail(), axis=-1)

    def best_tail(self) -> np.ndarray:
        """(budget, method, B) min over η of the median tail metric."""
        return np.min(self.median_tail(), axis=-1)

    def b_max(self, eps) -> np.ndarray:
        """(budget, method) largest B of the grid for which some η has median tail ≤ ε;
        0 where no B qualifies. (At the top of the grid it is a lower bound: censored.)"""
        eps = check_eps(eps)
        ok = self.best_tail() <= eps
        out = np.zeros(ok.shape[:2], dtype=np.int64)
        for i in range(ok.shape[0]):
            for m in range(ok.shape[1]):
                idx = np.nonzero(ok[i, m])[0]
                out[i, m] = self.batch_sizes[idx[-1]] if idx.size else 0
        return out

    def hit_steps(self, eps) -> np.ndarray:
        """(budget, method, B, η, seed) first recorded step t ≤ T with ‖∇F(w_t)‖ ≤ ε
        (record granularity r; +inf if not reached by T = C/B or failed)."""
        eps = check_eps(eps)
        rec = self.gnorm_records  # (M, B, E, S, R)
        steps = np.arange(rec.shape[-1]) * self.record_every
        out = np.full((len(self.budgets),) + rec.shape[:-1], np.inf)
        below = np.nan_to_num(rec, nan=np.inf) <= eps
        for i, c in enumerate(self.budgets):
            for j, b in enumerate(self.batch_sizes):
                T = int(c // b)
                within = below[:, j, ..., : T // self.record_every + 1]
                any_hit = within.any(axis=-1)
                first = steps[np.argmax(within, axis=-1)]
                out[i, :, j] = np.where(any_hit & ~self.failed[i, :, j], first, np.inf)
        return out

    def steps_to_eps(self, eps) -> np.ndarray:
        """(budget, method, B) median over seeds of the first-hitting step at the best η
        (the η minimizing the median tail metric); +inf if the median run never hits."""
        hits = np.median(self.hit_steps(eps), axis=-1)  # (C, M, B, E)
        idx = self.best_eta_index()
        return np.take_along_axis(hits, idx[..., None], axis=-1)[..., 0]


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
    mi, bi, ei = (a.ravel() for a in np.indices((M, NB, NE)))
    hp = dict(learning_rate=etas[mi, ei],
              momentum=np.full(mi.size, beta),
              noise_std=sigma / np.sqrt(d * bs[bi].astype(np.float64)),
              normalize=np.array([1.0 if methods[m] == "sngm" else 0.0 for m in mi]))
    before = engine.trace_count()
    start = time.perf_counter()
    res = engine.simulate(testbed, make_momentum_method, hp, key=key, n_seeds=n_seeds,
                          n_steps=n_steps, record_every=r, seed_chunk=seed_chunk,
                          metrics={"gnorm_at": grad_norm},
                          window_metrics={"gnorm": grad_norm, "gnorm_sq": grad_norm_sq})
    wall = time.perf_counter() - start
    shape = (M, NB, NE, n_seeds)
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
