"""Confidence intervals and comparison rules used by the verdicts.

Every statistical verdict states its rule in words (``Verdict.rule``). The conventions:

* A Monte-Carlo mean is compared with an exact value by
  ``|mean - exact| <= z * SE`` with ``z = critical_z(family_alpha, n_comparisons)``:
  a Bonferroni-corrected two-sided normal quantile, never below 4, so the chance that a
  correct theory fails anywhere in the family at a fresh key is <= ``family_alpha``
  (default 1e-4).
* A difference is *significant* when its one-sided z-score exceeds the same kind of
  critical value.
* Proportions get Wilson score intervals; paired differences get Student-t intervals.
"""
from __future__ import annotations

import numpy as np
from scipy import stats as sps

#: default family-wise false-alarm probability for a verdict's comparisons.
FAMILY_ALPHA = 1e-4


def critical_z(family_alpha: float = FAMILY_ALPHA, n_comparisons: int = 1, *,
               two_sided: bool = True, floor: float = 4.0) -> float:
    """Bonferroni critical value max(floor, Φ⁻¹(1 − α/(s·m))), s = 2 if two-sided."""
    sides = 2 if two_sided else 1
    z = float(sps.norm.isf(family_alpha / (sides * max(int(n_comparisons), 1))))
    return max(floor, z)


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


def mean_ci(x, confidence: float = 0.95):
    """Student-t interval for the mean of 1-D samples: (mean, low, high)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    m = x.mean()
    half = sps.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / np.sqrt(n)
    return m, m - half, m + half


def paired_difference_ci(a, b, confidence: float = 0.95):
    """Student-t interval for mean(a − b) over paired samples (same seeds)."""
    return mean_ci(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64), confidence)


def wilson_interval(k: int, n: int, confidence: float = 0.95):
    """Wilson score interval for a proportion k/n: (p_hat, low, high)."""
    if n <= 0:
        raise ValueError(f"n = {n} is not allowed: need n >= 1")
    z = sps.norm.isf((1 - confidence) / 2)
    p = k / n
    denom = 1 + z ** 2 / n
    centre = (p + z ** 2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z ** 2 / (4 * n ** 2)) / denom
    return p, centre - half, centre + half
