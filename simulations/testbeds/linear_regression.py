"""Well-specified linear regression with real minibatch sampling (Wen et al. 2020; the
testbed of ``covnoise.emulates_small_batch``).

    y_i = ⟨w*, x_i⟩ + σ ξ_i,   L(w) = (1/n) Σ_i ½ (⟨x_i, w⟩ − y_i)²,
    g_B(w) = (1/B) Σ_{i∈batch} x_i (⟨x_i, w⟩ − y_i).

Features are anisotropic: x = R Λ^{1/2} u with u ~ N(0, I), a log-spaced spectrum Λ and
a rotation R: Haar-random by default, or R = exp(θK) with K a random skew-symmetric
matrix of spectral norm 1 (θ = ``rotation_angle``). A Haar rotation makes diag(Σ) nearly
isotropic; a partial rotation keeps full, diagonal and isotropic structures distinct. The exact per-example gradient covariance is

    Σ(w) = (1/n) Σ_i g_i g_iᵀ − ḡ ḡᵀ,   g_i = x_i (⟨x_i, w⟩ − y_i),

and a minibatch gradient has covariance Σ/B with replacement and Σ (n − B)/(B (n − 1))
without replacement (finite-population correction).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from scipy import linalg
from scipy import stats as sps

from simulations.keys import numpy_rng
from theory import validation as check


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LinearRegression:
    """Finite-sum least squares with a minibatch gradient oracle.

    Attributes:
      features: (n, d) design matrix X.
      targets: (n,) labels y.
      w0: (d,) starting point.
      batch_size: B (static: a new B compiles once).
      replace: sample the batch with replacement (True) or without (False; static).
    """

    features: jax.Array
    targets: jax.Array
    w0: jax.Array
    batch_size: int = dataclasses.field(metadata=dict(static=True), default=1)
    replace: bool = dataclasses.field(metadata=dict(static=True), default=False)

    def __post_init__(self):
        shape = np.shape(self.features)  # leaves may be placeholders inside JAX transforms
        n = shape[0] if len(shape) == 2 else None
        if n is not None and isinstance(self.batch_size, (int, np.integer)):
            check.integer_at_least("batch_size", self.batch_size, 1)
            if self.batch_size > n:
                check.fail("batch_size", self.batch_size, f"1 <= batch_size <= n = {n}")

    @property
    def n(self) -> int:
        return int(np.shape(self.features)[0])

    def with_batch(self, batch_size: int, replace: bool | None = None) -> "LinearRegression":
        """The same data with another batch size (and sampling rule)."""
        return dataclasses.replace(self, batch_size=batch_size,
                                   replace=self.replace if replace is None else replace)

    def init(self, *, key=None):
        del key
        return self.w0

    def sample_batch(self, *, key):
        """Indices of one minibatch (with or without replacement)."""
        if self.replace:
            return jax.random.randint(key, (self.batch_size,), 0, self.n)
        return jax.random.choice(key, self.n, (self.batch_size,), replace=False)

    def gradient(self, params, *, key):
        """g_B(w) = (1/B) Σ_{i∈batch} x_i (⟨x_i, w⟩ − y_i).

        Small batches gather their rows; a batch of at least n/8 examples is computed as
        Xᵀ(m ⊙ (Xw − y))/B with m the multiplicity of each example in the batch, which
        under vmap becomes two matrix products instead of B row copies per trajectory.
        """
        idx = self.sample_batch(key=key)
        if 8 * self.batch_size < self.n:
            xb, yb = self.features[idx], self.targets[idx]
            return xb.T @ (xb @ params - yb) / self.batch_size
        counts = jnp.zeros(self.n, jnp.result_type(params)).at[idx].add(1.0)
        residual = self.features @ params - self.targets
        return self.features.T @ (counts * residual) / self.batch_size

    def gradient_noise(self, params, structure: str, *, key):
        """A sample ζ ~ N(0, P(Σ(w))) of the per-example gradient covariance at w.

        With r = Xw − y and ḡ = Xᵀr/n (no per-example gradient matrix is formed):
        ``full``: ζ = (Xᵀ(ξ ⊙ r) − ḡ Σ_i ξ_i)/√n, ξ ~ N(0, I_n), so Cov ζ = Σ(w);
        ``diagonal``: ζ = (diag Σ(w))^{1/2} ⊙ ξ, diag Σ = (X⊙X)ᵀ r²/n − ḡ²;
        ``isotropic``: ζ = (tr Σ(w)/d)^{1/2} ξ, ξ ~ N(0, I_d).
        """
        r = self.features @ params - self.targets
        gbar = self.features.T @ r / self.n
        if structure == "full":
            xi = jax.random.normal(key, (self.n,), r.dtype)
            return (self.features.T @ (xi * r) - gbar * xi.sum()) / jnp.sqrt(self.n)
        diag = jnp.clip((self.features ** 2).T @ (r * r) / self.n - gbar ** 2, 0.0)
        xi = jax.random.normal(key, gbar.shape, r.dtype)
        if structure == "diagonal":
            return jnp.sqrt(diag) * xi
        if structure == "isotropic":
            return jnp.sqrt(diag.sum() / diag.shape[0]) * xi
        raise check.InvalidParameter(
            f"structure = {structure!r} is not allowed: need 'full', 'diagonal' or 'isotropic'")

    def loss(self, params):
        r = self.features @ params - self.targets
        return 0.5 * jnp.mean(r * r)

    # ------------------------------------------------- exact quantities (float64 NumPy)
    def _np(self):
        return np.asarray(self.features, np.float64), np.asarray(self.targets, np.float64)

    def hessian(self) -> np.ndarray:
        """H = XᵀX / n."""
        X, _ = self._np()
        return X.T @ X / self.n

    def optimum(self) -> np.ndarray:
        """The empirical least-squares minimizer ŵ."""
        X, y = self._np()
        return np.linalg.lstsq(X, y, rcond=None)[0]

    def excess_loss(self, w) -> np.ndarray:
        """L(w) − L(ŵ) = ½ (w − ŵ)ᵀ H (w − ŵ) (exact for least squares)."""
        delta = np.asarray(w, np.float64) - self.optimum()
        return 0.5 * np.einsum("...i,ij,...j->...", delta, self.hessian(), delta)

    def gradient_covariance(self, w=None) -> np.ndarray:
        """Σ(w) = (1/n) Σ g_i g_iᵀ − ḡḡᵀ (at ŵ if w is None, where ḡ = 0)."""
        X, y = self._np()
        w = self.optimum() if w is None else np.asarray(w, np.float64)
        g = X * (X @ w - y)[:, None]
        gbar = g.mean(axis=0)
        return g.T @ g / self.n - np.outer(gbar, gbar)

    def minibatch_covariance(self, w=None) -> np.ndarray:
        """Covariance of g_B(w): Σ/B, times (n − B)/(n − 1) without replacement."""
        fpc = 1.0 if self.replace else (self.n - self.batch_size) / (self.n - 1)
        return self.gradient_covariance(w) * fpc / self.batch_size


def make_linear_regression(*, n: int = 2000, d: int = 50, noise_std: float = 0.5,
                           lambda_max: float = 1.0, lambda_min: float = 0.02,
                           batch_size: int = 16, replace: bool = False,
                           w0_distance: float = 0.0, rotation_angle: float | None = None,
                           key) -> LinearRegression:
    """Generate the well-specified regression problem.

    Args:
      n, d: examples and dimension (n > d).
      noise_std: label noise σ (Gaussian).
      lambda_max, lambda_min: population feature-covariance spectrum (log-spaced).
      batch_size, replace: the minibatch sampler.
      w0_distance: start at ŵ + a random direction of this length (0: start at ŵ).
      rotation_angle: θ of a partial rotation exp(θK) (None: Haar-random rotation).
      key: typed JAX key.
    """
    n = check.integer_at_least("n", n, 2)
    d = check.integer_at_least("d", d, 1)
    if n <= d:
        check.fail("n", n, f"n > d = {d}")
    noise_std = check.nonnegative("noise_std", noise_std)
    lambda_max = check.positive("lambda_max", lambda_max)
    lambda_min = check.positive("lambda_min", lambda_min)
    rng = numpy_rng(key)
    if d == 1:
        R = np.ones((1, 1))
    elif rotation_angle is None:
        R = sps.special_ortho_group.rvs(d, random_state=rng)
    else:
        G = rng.standard_normal((d, d))
        K = (G - G.T) / np.linalg.norm(G - G.T, 2)
        R = linalg.expm(check.nonnegative("rotation_angle", rotation_angle) * K)
    scales = np.sqrt(np.geomspace(lambda_max, lambda_min, d))
    X = (rng.standard_normal((n, d)) * scales) @ R.T
    w_star = rng.standard_normal(d) / np.sqrt(d)
    y = X @ w_star + noise_std * rng.standard_normal(n)
    w_hat = np.linalg.lstsq(X, y, rcond=None)[0]
    u = rng.standard_normal(d)
    w0 = w_hat + w0_distance * u / np.linalg.norm(u)
    return LinearRegression(features=X, targets=y, w0=w0, batch_size=batch_size, replace=replace)
