"""Finite-data linear regression with the batch size and the label noise as traced values.

The data are those of :mod:`simulations.testbeds.linear_regression` (well-specified,
anisotropic features, n examples):

    L(w) = (1/n) Σ_i ½(⟨x_i, w⟩ − y_i)²,
    g(w) = (1/B) Σ_{j < B} x_{i_j}(⟨x_{i_j}, w⟩ − y_{i_j} − σ_ℓ ε_j),

i_j uniform on 1..n *with replacement* (real minibatch sampling: Cov g = Σ(w)/B exactly,
Σ the per-example gradient covariance) and ε_j ~ N(0, 1) fresh label noise (label-noise
SGD; σ_ℓ = 0 is plain SGD). B = ``hparams["batch_size"]`` and σ_ℓ = ``hparams["label_noise"]``
are traced: ``max_batch`` indices are drawn each step and the first B kept, so every batch
size, learning rate and label-noise level is one configuration of one compiled program.

:meth:`RegressionSampler.gradient_noise` samples N(0, P(Σ(w))) for the structured
covariance noise of Wen et al. (:func:`simulations.optimizers.sgd_with_gradient_noise`), as
:meth:`LinearRegression.gradient_noise` does.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from simulations.testbeds.linear_regression import LinearRegression, make_linear_regression
from theory import validation as check


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RegressionSampler:
    """Features X (n, d), targets y (n,), start w0 (d,), the optimal loss L(ŵ) (a scalar);
    ``max_batch`` (static) bounds B."""

    features: jax.Array
    targets: jax.Array
    w0: jax.Array
    optimal_loss: jax.Array
    max_batch: int = dataclasses.field(metadata=dict(static=True), default=256)
    gradient_uses_hyperparams = True

    @property
    def n(self) -> int:
        return int(np.shape(self.features)[0])

    @property
    def dim(self) -> int:
        return int(np.shape(self.features)[1])

    def init(self, *, key=None):
        del key
        return self.w0

    def gradient(self, params, *, key, hparams, step=None):
        """(1/B) Σ_{j<B} x_{i_j}(⟨x_{i_j}, w⟩ − y_{i_j} − σ_ℓ ε_j), B and σ_ℓ from ``hparams``."""
        del step
        k_idx, k_noise = jax.random.split(key)
        idx = jax.random.randint(k_idx, (self.max_batch,), 0, self.features.shape[0])
        keep = (jnp.arange(self.max_batch) < hparams["batch_size"]).astype(params.dtype)
        eps = jax.random.normal(k_noise, (self.max_batch,), params.dtype)
        xb = self.features[idx]
        r = xb @ params - self.targets[idx] - hparams["label_noise"] * eps
        return xb.T @ (keep * r) / hparams["batch_size"]

    def gradient_noise(self, params, structure: str, *, key):
        """ζ ~ N(0, P(Σ(w))) (see :meth:`LinearRegression.gradient_noise`)."""
        return LinearRegression.gradient_noise(self, params, structure, key=key)

    def loss(self, params):
        r = self.features @ params - self.targets
        return 0.5 * jnp.mean(r * r)

    def exact(self) -> LinearRegression:
        """The same data as a :class:`LinearRegression` (exact H, Σ(w), optimum in float64)."""
        return LinearRegression(features=np.asarray(self.features), targets=np.asarray(self.targets),
                                w0=np.asarray(self.w0), batch_size=1, replace=True)


def make_regression_sampler(*, n: int, d: int, noise_std: float, lambda_max: float, lambda_min: float,
                            w0_distance: float, max_batch: int, rotation_angle: float | None = None,
                            key) -> RegressionSampler:
    """The data of :func:`make_linear_regression` (same arguments, same key → same data)."""
    lr = make_linear_regression(n=n, d=d, noise_std=noise_std, lambda_max=lambda_max, lambda_min=lambda_min,
                                batch_size=1, replace=True, w0_distance=w0_distance,
                                rotation_angle=rotation_angle, key=key)
    max_batch = check.integer_at_least("max_batch", max_batch, 1)
    X, y = np.asarray(lr.features, np.float64), np.asarray(lr.targets, np.float64)
    loss_hat = 0.5 * np.mean((X @ lr.optimum() - y) ** 2)
    return RegressionSampler(features=lr.features, targets=lr.targets, w0=lr.w0,
                             optimal_loss=np.asarray(loss_hat), max_batch=max_batch)


def excess_loss(testbed, params):
    """L(w) − L(ŵ), ŵ the least-squares optimum (L(ŵ) stored on the testbed)."""
    return testbed.loss(params) - testbed.optimal_loss
