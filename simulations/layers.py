"""Normalization layers as pure functions of (params, state, inputs, key).

Stochastic normalization (Kou, You, Long, Wang, "Stochastic Normalization", NeurIPS
2020) refactors batch normalization into two branches. For inputs x of shape (m, C)
(m examples, C channels), with batch statistics μ_B, σ²_B (biased variance over the m
examples) and moving statistics μ, σ² (the layer's state)::

    x̂_batch  = (x − μ_B) / √(σ²_B + ε)          x̂_moving = (x − μ) / √(σ² + ε)
    s_c ~ Bernoulli(p), one draw per channel per forward pass (shared by all m examples)
    y = γ ⊙ [(1 − s) ⊙ x̂_moving + s ⊙ x̂_batch] + β

In training mode the moving statistics are then updated from the batch statistics,
whatever s is: μ ← (1 − λ)μ + λμ_B, σ² ← (1 − λ)σ² + λ·m/(m − 1)·σ²_B (momentum λ = 0.1,
unbiased variance, the PyTorch convention of the paper's code); the moving branch uses
the statistics *before* this update. In evaluation mode y = γ ⊙ x̂_moving + β and the
state is unchanged. p = 1 is batch normalization (:func:`batch_norm`); p = 0 trains
with the moving statistics only. The paper's default is p = 0.5.

Params ``{"scale": γ, "offset": β}``, state ``{"mean": μ, "var": σ²}``, each of shape (C,).
A batch may be padded: ``weights`` (m,) in {0, 1} marks the real examples, and the batch
statistics (and the count m in the unbiased factor) use those only.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

MOMENTUM = 0.1  #: λ, the weight of the new batch statistics in the moving average
EPS = 1e-5      #: ε added to the variances before the square root


def init_norm(n_channels: int, dtype=jnp.float32):
    """(params, state) of a fresh layer: γ = 1, β = 0, μ = 0, σ² = 1 (PyTorch's defaults)."""
    return ({"scale": jnp.ones(n_channels, dtype), "offset": jnp.zeros(n_channels, dtype)},
            {"mean": jnp.zeros(n_channels, dtype), "var": jnp.ones(n_channels, dtype)})


def batch_statistics(x, weights=None):
    """(μ_B, σ²_B, m): per-channel mean and biased variance over the examples of x (m, C)
    with weight 1 (all of them if ``weights`` is None), and their count m."""
    if weights is None:
        mean = jnp.mean(x, axis=0)
        return mean, jnp.mean((x - mean) ** 2, axis=0), jnp.asarray(x.shape[0], x.dtype)
    w = jnp.asarray(weights, x.dtype)[:, None]
    m = jnp.sum(w)
    mean = jnp.sum(w * x, axis=0) / m
    return mean, jnp.sum(w * (x - mean) ** 2, axis=0) / m, m


def normalize(x, mean, var, eps: float = EPS):
    """(x − mean)/√(var + ε), per channel."""
    return (x - mean) / jnp.sqrt(var + eps)


def mask_from_uniform(u, p, dtype=jnp.float32):
    """s = [u < p] for uniforms u ∈ [0, 1): Bernoulli(p) entries (p = 1 gives s = 1 and
    p = 0 gives s = 0 exactly). A network that draws all its random numbers at once
    passes its slice of them here."""
    return (u < p).astype(dtype)


def draw_mask(key, p, n_channels: int, dtype=jnp.float32):
    """s ∈ {0, 1}^C, s_c ~ Bernoulli(p) independently: ONE draw per channel per forward
    pass (the whole batch shares it). p may be traced."""
    return mask_from_uniform(jax.random.uniform(key, (n_channels,)), p, dtype)


def stoch_norm(params, state, x, *, key=None, p=0.5, train: bool = True, mask=None,
               weights=None, momentum: float = MOMENTUM, eps: float = EPS,
               unbiased: bool = True):
    """Stochastic normalization of x (m, C): returns (y, new_state); see the module docstring.

    Args:
      params: ``{"scale": γ, "offset": β}``.
      state: ``{"mean": μ, "var": σ²}``, the moving statistics.
      x: (m, C) inputs.
      key: typed key of this forward pass (draws s); not needed when ``mask`` is given or
        p is the Python number 1.
      p: probability of the batch-statistics branch (may be traced).
      train: training mode (static); False uses the moving statistics and keeps the state.
      mask: an explicit s (C,) instead of a draw (to enumerate masks).
      weights: optional (m,) 0/1 marks of the real examples of a padded batch.
      momentum: λ of the moving-average update.
      unbiased: update σ² with the unbiased batch variance m/(m − 1)·σ²_B (as PyTorch).
    """
    moving = normalize(x, state["mean"], state["var"], eps)
    if not train:
        return params["scale"] * moving + params["offset"], state
    mean_b, var_b, m = batch_statistics(x, weights)
    batch = normalize(x, mean_b, var_b, eps)
    if mask is None:
        if key is None:
            if isinstance(p, (int, float)) and p == 1:
                mask = jnp.ones(x.shape[1], x.dtype)
            else:
                raise ValueError(f"p = {p!r} needs a key (or an explicit mask): only p = 1 "
                                 "(batch normalization) is deterministic")
        else:
            mask = draw_mask(key, p, x.shape[1], x.dtype)
    y = params["scale"] * ((1 - mask) * moving + mask * batch) + params["offset"]
    var_new = var_b * m / (m - 1) if unbiased else var_b
    new_state = {"mean": (1 - momentum) * state["mean"] + momentum * mean_b,
                 "var": (1 - momentum) * state["var"] + momentum * var_new}
    return y, jax.lax.stop_gradient(new_state)


def batch_norm(params, state, x, *, train: bool = True, weights=None,
               momentum: float = MOMENTUM, eps: float = EPS, unbiased: bool = True):
    """Batch normalization: :func:`stoch_norm` with p = 1 (the batch branch always)."""
    return stoch_norm(params, state, x, p=1, train=train, weights=weights,
                      momentum=momentum, eps=eps, unbiased=unbiased)
