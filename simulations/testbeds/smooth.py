"""Separable nonconvex testbeds for SNGM vs MSGD (Zhao, Shi, Xie, Li, arXiv 2007.13985).

* ``lsmooth``: F(w) = Σ_j (w_j²/2 + 3 cos w_j), L = max|1 − 3 cos x| = 4 (L-smooth).
* ``l0l1``:    F(w) = Σ_j (cosh w_j + 3 cos w_j), (L0, L1)-smooth, not L-smooth.

The gradient oracle is exact (∇F); the minibatch noise N(0, σ²/(dB) I) (so that
E‖g − ∇F‖² = σ²/B) is added by the optimizer
(:func:`simulations.optimizers.make_noisy_sngm_or_msgd`) with its standard deviation as a
*traced* hyperparameter, so that batch size B is a value, not a shape: a whole (B, η)
grid is one compiled program (:mod:`simulations.sweep`). The metrics of a sweep,
‖∇F(w)‖ and ‖∇F(w)‖², are :func:`gradient_norm` and :func:`gradient_norm_sq`.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from theory import validation as check

KINDS = ("lsmooth", "l0l1")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SmoothNonconvex:
    """F(w) = Σ_j (φ(w_j) + 3 cos w_j), φ = x²/2 (``lsmooth``) or cosh (``l0l1``).

    Attributes:
      x0: (d,) deterministic start.
      kind: static, one of ``KINDS``.
    """

    x0: jax.Array
    kind: str = dataclasses.field(metadata=dict(static=True), default="lsmooth")

    def init(self, *, key=None):
        del key
        return self.x0

    def gradient(self, params, *, key=None):
        """Exact ∇F (noise is added by the optimizer, see module docstring)."""
        del key
        if self.kind == "lsmooth":
            return params - 3.0 * jnp.sin(params)
        return jnp.sinh(params) - 3.0 * jnp.sin(params)

    def loss(self, params):
        if self.kind == "lsmooth":
            return jnp.sum(0.5 * params ** 2 + 3.0 * jnp.cos(params))
        return jnp.sum(jnp.cosh(params) + 3.0 * jnp.cos(params))

    def grad_norm(self, params):
        """‖∇F(w)‖ (exact)."""
        return jnp.linalg.norm(self.gradient(params))

    @property
    def dim(self) -> int:
        return int(np.shape(self.x0)[0])


def make_smooth_testbed(kind: str = "lsmooth", *, x0: float = 3.0, d: int = 10) -> SmoothNonconvex:
    """The testbed with start w₀ = x0·1 in d dimensions."""
    if kind not in KINDS:
        check.fail("kind", kind, f"one of {KINDS}")
    d = check.integer_at_least("d", d, 1)
    x0 = float(x0)
    if not np.isfinite(x0):
        check.fail("x0", x0, "a finite start")
    return SmoothNonconvex(x0=np.full(d, x0), kind=kind)


# ------------------------------------------------------------------------ metrics
def gradient_norm(testbed: SmoothNonconvex, params):
    """‖∇F(w)‖ (exact gradient), an engine metric."""
    return jnp.linalg.norm(testbed.gradient(params))


def gradient_norm_sq(testbed: SmoothNonconvex, params):
    """‖∇F(w)‖², an engine metric."""
    g = testbed.gradient(params)
    return jnp.sum(g * g)
