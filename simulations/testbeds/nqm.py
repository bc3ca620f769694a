"""The noisy quadratic model (NQM) of Zhang et al. (NeurIPS 2019) as an engine testbed.

    L(θ) = ½ Σ_i h_i θ_i²,    g(θ) = Hθ + ξ,    ξ ~ N(0, C/B),  C = diag(c),

with the batch size B a *traced* hyperparameter (``hparams["batch_size"]``): the oracle is
the model's Gaussian minibatch noise, so every B, learning rate, momentum, preconditioner
and averaging constant is one configuration of one compiled program.

Parameters are ``{"w": θ, "ema": θ̄}``: the iterate and its exponential moving average
θ̄_{t+1} = γθ̄_t + (1 − γ)θ_{t+1}, θ̄₀ = θ₀ (kept by the optimizer, see
:func:`simulations.optimizers.iterate_ema`; the oracle's gradient for θ̄ is zero). The
exact moments of both are in :mod:`theory.scaling`.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from theory import nqm as nqm_th
from theory import validation as check


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class NQM:
    """Curvatures h, noise variances c (per example) and the start θ₀, all (d,)."""

    h: jax.Array
    c: jax.Array
    theta0: jax.Array
    gradient_uses_hyperparams = True

    @property
    def dim(self) -> int:
        return int(np.shape(self.h)[0])

    def init(self, *, key=None):
        del key
        return {"w": self.theta0, "ema": self.theta0}

    def gradient(self, params, *, key, hparams, step=None):
        """Hθ + √(c/B)·ζ, ζ ~ N(0, I), B = ``hparams["batch_size"]``; zero for θ̄."""
        del step
        w = params["w"]
        noise = jnp.sqrt(self.c / hparams["batch_size"]) * jax.random.normal(key, w.shape, w.dtype)
        return {"w": self.h * w + noise, "ema": jnp.zeros_like(params["ema"])}

    def loss(self, params):
        return 0.5 * jnp.sum(self.h * params["w"] ** 2)


def make_nqm(d: int = 32, *, x0: str = "equal_loss") -> NQM:
    """h_i = 1/i, c_i = h_i (:func:`theory.nqm.nqm_problem`)."""
    h, c, theta0 = nqm_th.nqm_problem(check.integer_at_least("d", d, 1), x0=x0)
    return NQM(h=h, c=c, theta0=theta0)


# ------------------------------------------------------------------------ metrics
def loss(testbed, params):
    """L(θ_t)."""
    return 0.5 * jnp.sum(testbed.h * params["w"] ** 2)


def loss_ema(testbed, params):
    """L(θ̄_t): the loss of the moving average of the iterates."""
    return 0.5 * jnp.sum(testbed.h * params["ema"] ** 2)
