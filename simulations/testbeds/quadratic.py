"""The noisy quadratic of the covnoise claims (Wen et al. 2020): f(x) = ½ xᵀ A x with a
rotated spectrum.

A = Q diag(λ) Qᵀ, λ log-spaced in [λ_min, λ_max], Q a Haar-random rotation, so that A is
not diagonal in the coordinate basis and the diagonal and full noise structures differ.
The gradient oracle is exact (A x); the noise of Wen et al. is added by the optimizer
(:func:`simulations.optimizers.noisy_sgd`), giving x ← (I − αA)x − αDξ.
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np
from scipy import stats as sps

from simulations.keys import numpy_rng
from theory import validation as check


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class NoisyQuadratic:
    """f(x) = ½ xᵀ A x with a deterministic start x₀.

    Attributes:
      hessian: (d, d) symmetric positive definite A.
      x0: (d,) starting point.
    """

    hessian: jax.Array
    x0: jax.Array

    def init(self, *, key=None):
        del key
        return self.x0

    def gradient(self, params, *, key=None):
        """∇f(x) = A x (exact; the structured noise lives in the optimizer)."""
        del key
        return self.hessian @ params

    def loss(self, params):
        """f(x) = ½ xᵀ A x."""
        return 0.5 * params @ (self.hessian @ params)

    @property
    def dim(self) -> int:
        return int(np.shape(self.x0)[0])

    def eigh(self):
        """(λ ascending, Q) of A in float64."""
        return np.linalg.eigh(np.asarray(self.hessian, dtype=np.float64))


def make_noisy_quadratic(*, d: int = 32, lambda_max: float = 1.0, lambda_min: float = 0.01,
                         x0_norm: float = 0.0, key) -> NoisyQuadratic:
    """Build the rotated log-spectrum quadratic.

    Args:
      d: dimension (≥ 2).
      lambda_max, lambda_min: extreme eigenvalues, 0 < λ_min ≤ λ_max; the spectrum is
        log-spaced between them.
      x0_norm: ‖x₀‖; x₀ is a random direction of that length (0 gives x₀ = 0).
      key: typed JAX key for the rotation and the start direction.
    """
    d = check.integer_at_least("d", d, 2)
    lambda_max = check.positive("lambda_max", lambda_max)
    lambda_min = check.positive("lambda_min", lambda_min)
    if lambda_min > lambda_max:
        check.fail("lambda_min", lambda_min, f"0 < lambda_min <= lambda_max = {lambda_max:g}")
    x0_norm = check.nonnegative("x0_norm", x0_norm)
    rng = numpy_rng(key)
    Q = sps.special_ortho_group.rvs(d, random_state=rng)
    lam = np.geomspace(lambda_max, lambda_min, d)
    A = Q @ np.diag(lam) @ Q.T
    A = 0.5 * (A + A.T)
    u = rng.standard_normal(d)
    x0 = x0_norm * u / np.linalg.norm(u)
    return NoisyQuadratic(hessian=A, x0=x0)
