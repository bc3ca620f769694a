"""Stochastic normalization: batch normalization's reference equations and the exact
moments of the layer's output over its random mask.

Setting (Kou, You, Long, Wang, "Stochastic Normalization", NeurIPS 2020). For inputs x
(m examples × C channels), batch statistics μ_B = (1/m)Σ_i x_i, σ²_B = (1/m)Σ_i (x_i − μ_B)²
and moving statistics (μ, σ²):

    x̂_batch = (x − μ_B)/√(σ²_B + ε),   x̂_moving = (x − μ)/√(σ² + ε),
    y = γ ⊙ [(1 − s) ⊙ x̂_moving + s ⊙ x̂_batch] + β,   s_c ~ Bernoulli(p) i.i.d. per channel,

one s per forward pass (shared by the m examples). Training also updates
μ ← (1 − λ)μ + λμ_B and σ² ← (1 − λ)σ² + λ·m/(m − 1)·σ²_B whatever s is; evaluation
returns γ ⊙ x̂_moving + β. With p = 1, s = 1: batch normalization.

Exact moments over the mask (derived). Write d = x̂_batch − x̂_moving (m × C). Since
y_ic = γ_c x̂_moving,ic + β_c + γ_c s_c d_ic with E s_c = p, Var s_c = p(1 − p):

    E y_ic   = γ_c [(1 − p) x̂_moving,ic + p x̂_batch,ic] + β_c,
    Var y_ic = p(1 − p) γ_c² d_ic²,
    Cov(y_ic, y_kc') = p(1 − p) γ_c² d_ic d_kc  if c = c', else 0 (channels independent).

For a linear next layer z = y W (W: C × J), z_ij = Σ_c y_ic W_cj, so

    Cov(z_ij, z_kj') = p(1 − p) Σ_c γ_c² W_cj W_cj' d_ic d_kc,

in particular Var z_ij = p(1 − p) Σ_c (γ_c W_cj d_ic)². Because s is shared by the batch,
two examples' outputs co-vary (i ≠ k above); were s drawn per example, that covariance
would be 0. All functions are float64 NumPy and validate their inputs.
"""
from __future__ import annotations

import itertools

import numpy as np

from theory import validation as check


def _probability(p) -> float:
    return check.in_range("p", p, 0.0, 1.0, closed_high=True)


def _batch(name: str, x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or not np.all(np.isfinite(x)):
        check.fail(name, x, "a finite (m, C) array with m >= 2 examples")
    return x


def batch_norm_train(x, gamma, beta, mean, var, *, momentum: float = 0.1, eps: float = 1e-5,
                     unbiased: bool = True):
    """Batch normalization in training mode, float64: (y, new_mean, new_var).

    y = γ(x − μ_B)/√(σ²_B + ε) + β with the biased batch variance; the moving statistics
    move by the momentum λ towards (μ_B, σ²_B·m/(m − 1)) (``unbiased``) or (μ_B, σ²_B).
    """
    x = _batch("x", x)
    momentum = check.in_range("momentum", momentum, 0.0, 1.0, closed_high=True)
    check.positive("eps", eps)
    m = x.shape[0]
    mu_b = x.mean(axis=0)
    var_b = ((x - mu_b) ** 2).mean(axis=0)
    y = np.asarray(gamma) * (x - mu_b) / np.sqrt(var_b + eps) + np.asarray(beta)
    target_var = var_b * m / (m - 1) if unbiased else var_b
    return (y, (1 - momentum) * np.asarray(mean, np.float64) + momentum * mu_b,
            (1 - momentum) * np.asarray(var, np.float64) + momentum * target_var)


def batch_norm_eval(x, gamma, beta, mean, var, *, eps: float = 1e-5) -> np.ndarray:
    """Batch normalization in evaluation mode, float64: γ(x − μ)/√(σ² + ε) + β."""
    x = np.asarray(x, np.float64)
    check.positive("eps", eps)
    return np.asarray(gamma) * (x - np.asarray(mean)) / np.sqrt(np.asarray(var) + eps) + np.asarray(beta)


def branches(x, mean, var, *, eps: float = 1e-5):
    """(x̂_batch, x̂_moving), float64, for a batch x (m, C) and moving statistics (μ, σ²)."""
    x = _batch("x", x)
    check.positive("eps", eps)
    mu_b = x.mean(axis=0)
    var_b = ((x - mu_b) ** 2).mean(axis=0)
    return (x - mu_b) / np.sqrt(var_b + eps), (x - np.asarray(mean)) / np.sqrt(np.asarray(var) + eps)


def masks(n_channels: int, p):
    """All 2^C masks s ∈ {0, 1}^C (rows) and their probabilities p^|s| (1 − p)^(C − |s|)."""
    n_channels = check.integer_at_least("n_channels", n_channels, 1)
    if n_channels > 16:
        check.fail("n_channels", n_channels, "<= 16 (2^C masks are enumerated)")
    p = _probability(p)
    s = np.array(list(itertools.product((0.0, 1.0), repeat=n_channels)))
    k = s.sum(axis=1)
    return s, p ** k * (1 - p) ** (n_channels - k)


def output_moments(xhat_batch, xhat_moving, gamma, beta, p):
    """E y and Var y over the mask, elementwise (m, C): see the module docstring."""
    p = _probability(p)
    xb, xm = np.asarray(xhat_batch, np.float64), np.asarray(xhat_moving, np.float64)
    check.same_shape("xhat_batch", xb, "xhat_moving", xm)
    g = np.asarray(gamma, np.float64)
    mean = g * ((1 - p) * xm + p * xb) + np.asarray(beta, np.float64)
    return mean, p * (1 - p) * g ** 2 * (xb - xm) ** 2


def readout_covariance(xhat_batch, xhat_moving, gamma, weight, p):
    """Cov over the mask of z = y W: array (m, m, J, J) with entry [i, k, j, j'] =
    p(1 − p) Σ_c γ_c² W_cj W_cj' d_ic d_kc, d = x̂_batch − x̂_moving."""
    p = _probability(p)
    xb, xm = np.asarray(xhat_batch, np.float64), np.asarray(xhat_moving, np.float64)
    check.same_shape("xhat_batch", xb, "xhat_moving", xm)
    w = np.asarray(weight, np.float64)
    if w.ndim != 2 or w.shape[0] != xb.shape[1]:
        check.fail("weight", w, f"a (C, J) matrix with C = {xb.shape[1]} rows")
    d = (xb - xm) * np.asarray(gamma, np.float64)
    return p * (1 - p) * np.einsum("ic,kc,cj,cl->ikjl", d, d, w, w)


def readout_variance(xhat_batch, xhat_moving, gamma, weight, p):
    """Var over the mask of z_ij = (y W)_ij, (m, J): p(1 − p) Σ_c (γ_c W_cj d_ic)²."""
    p = _probability(p)
    d = (np.asarray(xhat_batch, np.float64) - np.asarray(xhat_moving, np.float64)) \
        * np.asarray(gamma, np.float64)
    return p * (1 - p) * (d ** 2) @ (np.asarray(weight, np.float64) ** 2)
