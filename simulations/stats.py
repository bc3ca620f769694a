"""Confidence intervals, critical values, power and interval-versus-band comparisons.

The one home for the statistics the verdicts use. Conventions:

* **Theorem checks** compare a Monte-Carlo mean with an exact value by
  ``|mean − exact| <= c·SE`` with ``c = critical_t(family_alpha, m, dof)``: a
  Bonferroni-corrected two-sided Student-t quantile (never below 4), so the chance that a
  correct theory fails anywhere in a family of m comparisons at a fresh key is at most
  ``family_alpha`` (default 1e-4) also for few seeds. :func:`critical_z` is its
  large-sample (normal) limit, for thousands of seeds.
* **Power.** A check that must *resolve* a predicted difference δ gets its sample size
  beforehand from :func:`required_samples`: n ≥ ((c + z_β)·sd/δ)², so the check
  resolves with probability ≥ 1 − β (default β = 1e-4).
* **Hypothesis rules** decide from intervals: Student-t for means and paired differences
  (:func:`mean_ci`), Wilson for proportions (:func:`wilson_interval`), percentile
  bootstrap over seeds or data draws for anything else (:func:`bootstrap_ci`), including
  grid-valued statistics such as a largest admissible batch size
  (:func:`bootstrap_grid_interval`). :func:`exceeds` and :func:`within` turn an interval
  and a band into True (supported) / False (contradicted) / None (straddles).
* **Figures** draw 95% intervals (:data:`FIGURE_CONFIDENCE`) unless they draw the
  verdict's own interval, and say which.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import stats as sps

#: default family-wise false-alarm probability for a verdict's comparisons.
FAMILY_ALPHA = 1e-4
#: default probability that a sized check fails to resolve its predicted difference.
POWER_BETA = 1e-4
#: the confidence of every band or error bar in a figure (unless the figure says otherwise).
FIGURE_CONFIDENCE = 0.95


# ------------------------------------------------------------------ critical values
def critical_z(family_alpha: float = FAMILY_ALPHA, n_comparisons: int = 1, *,
               two_sided: bool = True, floor: float = 4.0) -> float:
    """Bonferroni normal critical value max(floor, Φ⁻¹(1 − α/(s·m))), s = 2 if two-sided.
    Valid for means of many samples (the t quantile tends to it); see :func:`critical_t`."""
    sides = 2 if two_sided else 1
    z = float(sps.norm.isf(family_alpha / (sides * max(int(n_comparisons), 1))))
    return max(floor, z)


def critical_t(family_alpha: float = FAMILY_ALPHA, n_comparisons: int = 1, dof: float = np.inf,
               *, two_sided: bool = True, floor: float = 4.0) -> float:
    """Bonferroni Student-t critical value max(floor, t_dof⁻¹(1 − α/(s·m))).

    A mean of n samples standardized by its estimated SE is t-distributed with n − 1
    degrees of freedom (for normal samples); with 4 seeds and α = 1e-4 the quantile is
    ~5x the normal one, so a normal quantile would overstate the confidence.
    """
    if not dof > 0:
        raise ValueError(f"dof = {dof} is not allowed: need dof > 0 (at least 2 samples)")
    sides = 2 if two_sided else 1
    q = family_alpha / (sides * max(int(n_comparisons), 1))
    c = float(sps.norm.isf(q) if np.isinf(dof) else sps.t.isf(q, dof))
    return max(floor, c)


def required_samples(difference: float, sd: float, *, critical: float,
                     beta: float = POWER_BETA) -> int:
    """Smallest n with P(mean/SE > critical) ≥ 1 − β when the true mean is ``difference``
    and the per-sample standard deviation is ``sd`` (normal approximation):
    n = ⌈((critical + z_β)·sd/|difference|)²⌉."""
    if not difference:
        raise ValueError("difference = 0 cannot be resolved by any sample size")
    z_beta = float(sps.norm.isf(beta))
    return int(np.ceil(((critical + z_beta) * sd / abs(difference)) ** 2))


# ------------------------------------------------------------------------ estimates
def mean_stderr(x, axis: int = -1, *, valid=None):
    """Mean and standard error of the mean over ``axis``, using only ``valid`` entries.

    Args:
      x: samples (e.g. one value per seed).
      axis: the sample axis.
      valid: optional boolean mask of the same shape; False entries (diverged
        trajectories) are excluded. NaNs in valid entries propagate (they are bugs).
    Returns:
      (mean, stderr, n): arrays with ``axis`` removed; stderr uses the unbiased variance.
    """
    x = np.asarray(x, dtype=np.float64)
    if valid is None:
        valid = np.ones(x.shape, dtype=bool)
    valid = np.broadcast_to(np.asarray(valid, dtype=bool), x.shape)
    n = valid.sum(axis=axis)
    xs = np.where(valid, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = xs.sum(axis=axis) / n
        dev = np.where(valid, x - np.expand_dims(mean, axis), 0.0)
        var = (dev ** 2).sum(axis=axis) / (n - 1)
        se = np.sqrt(var / n)
    return mean, se, n


def z_scores(mean, stderr, exact):
    """(mean − exact)/stderr, elementwise."""
    return (np.asarray(mean) - np.asarray(exact)) / np.asarray(stderr)


def difference_z(mean_a, se_a, mean_b, se_b):
    """z-score of mean_a − mean_b for independent estimates."""
    return (np.asarray(mean_a) - mean_b) / np.sqrt(np.asarray(se_a) ** 2 + np.asarray(se_b) ** 2)


def ratio_ci(mean_a, se_a, mean_b, se_b, z: float):
    """Delta-method interval for mean_a/mean_b (independent, mean_b away from 0).

    Var(a/b) ≈ (a/b)² (se_a²/a² + se_b²/b²).
    Returns (ratio, low, high).
    """
    r = np.asarray(mean_a) / mean_b
    rel = np.sqrt((np.asarray(se_a) / mean_a) ** 2 + (np.asarray(se_b) / mean_b) ** 2)
    return r, r - z * np.abs(r) * rel, r + z * np.abs(r) * rel


def mean_ci(x, confidence: float = FIGURE_CONFIDENCE, axis: int | None = None):
    """Student-t interval for the mean: (mean, low, high).

    ``axis`` None takes all samples of ``x``; otherwise the interval is over that axis
    (arrays with it removed). Needs at least 2 samples.
    """
    x = np.asarray(x, dtype=np.float64)
    if axis is None:
        x, axis = x.ravel(), 0
    n = x.shape[axis]
    if n < 2:
        raise ValueError(f"mean_ci needs at least 2 samples, got {n}")
    m = x.mean(axis=axis)
    half = sps.t.ppf(0.5 + confidence / 2, n - 1) * x.std(axis=axis, ddof=1) / np.sqrt(n)
    return m, m - half, m + half


def paired_difference_ci(a, b, confidence: float = FIGURE_CONFIDENCE):
    """Student-t interval for mean(a − b) over paired samples (same seeds)."""
    return mean_ci(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64), confidence)


def wilson_interval(k: int, n: int, confidence: float = FIGURE_CONFIDENCE):
    """Wilson score interval for a proportion k/n: (p_hat, low, high)."""
    if n <= 0:
        raise ValueError(f"n = {n} is not allowed: need n >= 1")
    z = sps.norm.isf((1 - confidence) / 2)
    p = k / n
    denom = 1 + z ** 2 / n
    centre = (p + z ** 2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z ** 2 / (4 * n ** 2)) / denom
    return p, centre - half, centre + half


# ------------------------------------------------------------------------ bootstrap
def bootstrap_ci(samples, statistic: Callable[[np.ndarray], float], *, rng: np.random.Generator,
                 n_boot: int = 2000, confidence: float = FIGURE_CONFIDENCE, axis: int = 0):
    """Percentile bootstrap interval of ``statistic(samples)`` resampling along ``axis``
    (the independent units: seeds, or data draws with their seeds kept together).

    Returns (estimate, low, high). The generator comes from the claim's key
    (:func:`simulations.keys.numpy_rng`), so the interval is reproducible.
    """
    x = np.asarray(samples)
    n = x.shape[axis]
    if n < 2:
        raise ValueError(f"bootstrap_ci needs at least 2 units along axis {axis}, got {n}")
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = np.array([statistic(np.take(x, i, axis=axis)) for i in idx], dtype=np.float64)
    lo, hi = np.quantile(boots, [(1 - confidence) / 2, (1 + confidence) / 2], method="inverted_cdf")
    return float(statistic(x)), float(lo), float(hi)


def bootstrap_grid_interval(samples, grid_index: Callable[[np.ndarray], int], *,
                            rng: np.random.Generator, n_boot: int = 2000,
                            confidence: float = FIGURE_CONFIDENCE, axis: int = -1):
    """Bootstrap interval of a grid-valued statistic (e.g. the index of the largest batch
    size that reaches ε): resample the units along ``axis``, recompute the index, and
    take the percentile interval of the indices. Returns (index, low index, high index),
    integers; an index of −1 means "no grid point qualifies"."""
    est, lo, hi = bootstrap_ci(samples, lambda s: float(grid_index(s)), rng=rng, n_boot=n_boot,
                               confidence=confidence, axis=axis % np.ndim(samples))
    return int(est), int(lo), int(hi)


# ---------------------------------------------------------- intervals against bands
def exceeds(low, high, threshold) -> bool | None:
    """Is the true value above ``threshold``? True if the interval lies above it, False if
    it lies at or below it, None if it straddles (unresolved)."""
    if low > threshold:
        return True
    if high <= threshold:
        return False
    return None


def within(low, high, band_low, band_high) -> bool | None:
    """Is the true value inside [band_low, band_high]? True if the interval lies inside
    the band, False if it lies entirely outside, None if it overlaps an edge."""
    if band_low <= low and high <= band_high:
        return True
    if high < band_low or low > band_high:
        return False
    return None


def all_of(parts) -> bool | None:
    """Tri-state AND: False if any part is False, True if all are True, else None."""
    parts = list(parts)
    if any(p is False for p in parts):
        return False
    if all(p is True for p in parts):
        return True
    return None


def any_of(parts) -> bool | None:
    """Tri-state OR: True if any part is True, False if all are False, else None."""
    parts = list(parts)
    if any(p is True for p in parts):
        return True
    if all(p is False for p in parts):
        return False
    return None


# ------------------------------------------------- label-noise SGD (vector bootstrap)
def bootstrap_moments_ci(samples, statistic: Callable[[np.ndarray, np.ndarray], np.ndarray], *,
                         rng: np.random.Generator, n_boot: int = 10_000,
                         confidence: float = FIGURE_CONFIDENCE, chunk: int = 2000):
    """Percentile bootstrap intervals of a vector statistic of the mean and variance over
    the units of ``samples`` (axis 0: seeds; the other axes are kept).

    ``statistic(mean, var)`` gets arrays of shape (b, *samples.shape[1:]) (b resamples;
    ``var`` is the unbiased variance over the resampled units) and returns (b, k). A
    resample is a row of multinomial multiplicities, so b resamples cost one matrix product,
    and many intervals (Bonferroni-corrected ``confidence``) need no Python loop per
    resample. Returns (estimate, low, high), arrays of length k.
    """
    x = np.asarray(samples, np.float64)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"bootstrap_moments_ci needs at least 2 units along axis 0, got {n}")
    flat = x.reshape(n, -1)
    both = np.concatenate([flat, flat ** 2], axis=1)

    def moments(weights):  # weights: (b, n), rows sum to n
        m1, m2 = np.split(weights @ both / n, 2, axis=1)
        mean, var = m1, np.maximum(m2 - m1 ** 2, 0.0) * n / (n - 1)
        shape = (len(weights),) + x.shape[1:]
        return mean.reshape(shape), var.reshape(shape)

    est = np.asarray(statistic(*moments(np.ones((1, n)))), np.float64)[0]
    boots = []
    for lo in range(0, n_boot, chunk):
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=min(chunk, n_boot - lo))
        boots.append(np.asarray(statistic(*moments(counts.astype(np.float64))), np.float64))
    boots = np.concatenate(boots)
    low, high = np.quantile(boots, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0,
                            method="inverted_cdf")
    return est, low, high


# ----------------------------- the batch-size frame: means of Gaussian quadratic forms
def quadratic_form_halfwidths(sd, max_weight, n, *, family_alpha: float = FAMILY_ALPHA,
                              n_comparisons: int = 1):
    """Family-wise bounds for the mean of n i.i.d. copies of X = Σ_i a_i(Z_i + b_i)²
    (a_i >= 0, Z_i standard normal; e.g. a quadratic loss of Gaussian iterates), whose
    exact sd and largest weight max a_i are known (Birgé 2001, Lemma 8.1, after Laurent &
    Massart 2000): P(X̄ − EX >= √(2t)·sd/√n + 2t·max a_i/n) <= e^−t and
    P(EX − X̄ >= √(2t)·sd/√n) <= e^−t. With t = log(2m/α) all m comparisons hold at once
    with probability >= 1 − α, whatever the skewness (a Student-t or normal critical value
    on a few dozen seeds understates the right tail of such a heavy-tailed mean).
    Returns (below, above): the allowed EX − X̄ and X̄ − EX."""
    n = np.asarray(n, np.float64)
    t = float(np.log(2 * max(int(n_comparisons), 1) / family_alpha))
    below = np.sqrt(2 * t) * np.asarray(sd, np.float64) / np.sqrt(n)
    return below, below + 2 * t * np.asarray(max_weight, np.float64) / n
