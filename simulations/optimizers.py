"""Optimizers as ``optax.GradientTransformation``s: what the toolkit adds to optax.

* :func:`gaussian_noise` — add D ξ, ξ ~ N(0, I), to the gradient: noise of covariance
  C = D Dᵀ (Wen et al. 2020's structured covariance noise). The PRNG key lives in the
  transform's state, as in ``optax.add_noise``.
* :func:`noisy_sgd` — x ← x − α (g + D ξ).
* :func:`gradient_covariance_noise` — add √s ζ, ζ ~ N(0, P(Σ(w_t))): Wen et al.'s noise
  shaped by the gradient covariance *at the current iterate* (state-dependent), sampled
  by the testbed (``testbed.gradient_noise``), which the engine passes as an extra arg.
* :func:`momentum_sgd` — MSGD, u ← βu + g, w ← w − ηu (``optax.sgd`` with momentum).
* :func:`sngm` — SNGM (Zhao et al. 2020), u ← βu + g/‖g‖, w ← w − ηu, composed exactly
  from ``optax.normalize_by_update_norm`` and ``optax.sgd``.

Factories used by :func:`simulations.engine.simulate` take the hyperparameters of one
configuration (traced arrays) and a key: ``make(hparams, *, key) -> GradientTransformation``.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from theory import quadratic
from theory import validation as check


class NoiseState(NamedTuple):
    key: jax.Array


def gaussian_noise(factor, *, key) -> optax.GradientTransformation:
    """Add D ξ to the (flattened) updates, ξ ~ N(0, I_m), so the noise has covariance DDᵀ.

    Args:
      factor: (d, m) matrix D, d = number of parameters (a pytree is flattened with
        ``ravel_pytree``). May be a traced array (swept in a grid).
      key: typed PRNG key; the stream is carried in the state.
    """

    def init_fn(params):
        del params
        return NoiseState(key=key)

    def update_fn(updates, state, params=None):
        del params
        flat, unravel = ravel_pytree(updates)
        next_key, sample_key = jax.random.split(state.key)
        xi = jax.random.normal(sample_key, (factor.shape[-1],), dtype=flat.dtype)
        return unravel(flat + factor @ xi), NoiseState(key=next_key)

    return optax.GradientTransformation(init_fn, update_fn)


def gradient_covariance_noise(scale, structure: str, *, key) -> optax.GradientTransformationExtraArgs:
    """Add √s ζ with ζ ~ N(0, P(Σ(w))), Σ(w) the per-example gradient covariance at the
    current parameters w and P the structure (``full``, ``diagonal``, ``isotropic``).

    On a large batch M_L with s = 1/M_S − 1/M_L, the update's conditional covariance is
    Σ(w)/M_L + sΣ(w) = Σ(w)/M_S at every w: exactly that of small-batch SGD (with
    replacement). Requires ``testbed=`` in ``update`` (the engine passes it).
    """

    def init_fn(params):
        del params
        return NoiseState(key=key)

    def update_fn(updates, state, params=None, *, testbed, **extra_args):
        del extra_args
        next_key, sample_key = jax.random.split(state.key)
        zeta = testbed.gradient_noise(params, structure, key=sample_key)
        return updates + jnp.sqrt(scale) * zeta, NoiseState(key=next_key)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@functools.lru_cache(maxsize=None)
def sgd_with_gradient_noise(structure: str):
    """Engine factory (one per structure, cached so its identity is stable): SGD with
    :func:`gradient_covariance_noise`; hparams ``learning_rate`` and ``noise_scale``."""

    def make(hparams, *, key):
        return optax.chain(gradient_covariance_noise(hparams["noise_scale"], structure, key=key),
                           optax.sgd(hparams["learning_rate"]))

    make.__name__ = f"sgd_with_{structure}_gradient_noise"
    return make


def noisy_sgd(learning_rate, factor, *, key) -> optax.GradientTransformation:
    """x ← x − α (g + D ξ): gradient descent with additive noise of covariance DDᵀ."""
    return optax.chain(gaussian_noise(factor, key=key), optax.sgd(learning_rate))


def momentum_sgd(learning_rate, momentum) -> optax.GradientTransformation:
    """MSGD: u_{t+1} = β u_t + g_t, w_{t+1} = w_t − η u_{t+1} (heavy ball, u₀ = 0)."""
    return optax.sgd(learning_rate, momentum=momentum)


def sngm(learning_rate, momentum) -> optax.GradientTransformation:
    """SNGM (Zhao, Shi, Xie, Li 2020): u_{t+1} = β u_t + g_t/‖g_t‖, w_{t+1} = w_t − η u_{t+1}.

    ‖·‖ is one global Euclidean norm over all parameters; ‖u_t‖ ≤ 1/(1 − β). The jitter of
    the normalization is the smallest normal float, so g/(‖g‖ + tiny) = g/‖g‖ exactly
    for any representable ‖g‖ ≥ 2⁻¹⁰⁰ and a zero gradient gives a zero step (not NaN).
    """
    tiny = float(np.finfo(np.float32).tiny)
    return optax.chain(optax.normalize_by_update_norm(scale_factor=1.0, eps=tiny),
                       optax.sgd(learning_rate, momentum=momentum))


# ------------------------------------------------------------- noise factors (NumPy)
def covariance_factor(C) -> np.ndarray:
    """The symmetric PSD square root D = C^{1/2} (so D Dᵀ = C; works when C is singular).

    The symmetric root varies continuously with C, so two nearby covariances driven by the
    same ξ give nearby noise: common-random-number comparisons are then sharply paired.
    """
    C = check.psd("C", C)
    w, V = np.linalg.eigh(C)
    D = (V * np.sqrt(np.clip(w, 0.0, None))) @ V.T
    return 0.5 * (D + D.T)


def structured_noise_factor(matrix, structure: str, scale: float, blocks=None) -> np.ndarray:
    """Factor of C = s · P(matrix), P one of ``theory.quadratic.STRUCTURES``."""
    return covariance_factor(quadratic.structured_covariance(matrix, structure, scale, blocks))


# ------------------------------------------------------- factories for the engine
def make_noisy_sgd(hparams, *, key) -> optax.GradientTransformation:
    """Engine factory: hparams ``learning_rate`` (scalar) and ``noise_factor`` (d, m)."""
    return noisy_sgd(hparams["learning_rate"], hparams["noise_factor"], key=key)


def make_sgd(hparams, *, key) -> optax.GradientTransformation:
    """Engine factory: plain SGD with hparams ``learning_rate``."""
    del key
    return optax.sgd(hparams["learning_rate"])


def make_momentum_sgd(hparams, *, key) -> optax.GradientTransformation:
    """Engine factory: heavy ball (:func:`momentum_sgd`) with traced hparams
    ``learning_rate`` and ``momentum`` (β = 0 is plain SGD)."""
    del key
    return momentum_sgd(hparams["learning_rate"], hparams["momentum"])
