"""Testbeds: exact quantities vs Monte Carlo and dense computations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simulations.stats import critical_z
from simulations.testbeds import make_linear_regression, make_noisy_quadratic
from theory.validation import InvalidParameter


def test_quadratic_is_rotated_with_the_requested_spectrum(key):
    tb = make_noisy_quadratic(d=16, lambda_max=2.0, lambda_min=0.02, x0_norm=3.0, key=key)
    A = np.asarray(tb.hessian)
    np.testing.assert_allclose(np.linalg.eigvalsh(A), np.geomspace(0.02, 2.0, 16), rtol=1e-12)
    off = A - np.diag(np.diag(A))
    assert np.linalg.norm(off) > 0.3 * np.linalg.norm(A)  # diagonal ≠ full structure
    assert np.linalg.norm(np.asarray(tb.x0)) == pytest.approx(3.0, rel=1e-12)


def _minibatch_moments(tb, w, n_draws=20_000):
    keys = jax.random.split(jax.random.key(5), n_draws)
    g = jax.vmap(lambda k: tb.gradient(jnp.asarray(w, jnp.float32), key=k))(keys)
    return np.asarray(g, np.float64)


@pytest.mark.parametrize("replace, batch", [(True, 4), (False, 4), (True, 16), (False, 16)])
def test_minibatch_gradient_mean_and_covariance(replace, batch):
    # n = 32 so that B = 16 takes the counts path (B >= n/8) and B = 4 the gather path
    tb = make_linear_regression(n=32, d=3, noise_std=0.5, batch_size=batch, replace=replace,
                                key=jax.random.key(1))
    w = tb.optimum() + np.array([0.3, -0.2, 0.1])
    g = _minibatch_moments(tb, w)
    X, y = np.asarray(tb.features), np.asarray(tb.targets)
    full = X.T @ (X @ w - y) / tb.n
    cov = tb.minibatch_covariance(w)
    n = len(g)
    z = critical_z(n_comparisons=3 + 9)
    assert np.all(np.abs(g.mean(0) - full) <= z * g.std(0) / np.sqrt(n) + 1e-5)  # + float32
    d = g - full
    prod = d[:, :, None] * d[:, None, :]
    assert np.all(np.abs(prod.mean(0) - cov) <= z * prod.std(0) / np.sqrt(n) + 1e-5)


def test_gradient_paths_agree():
    tb = make_linear_regression(n=64, d=5, batch_size=8, replace=True, key=jax.random.key(2))
    w = jnp.asarray(tb.w0 + 0.1, jnp.float32)
    k = jax.random.key(9)
    idx = tb.sample_batch(key=k)
    X, y = jnp.asarray(tb.features, jnp.float32), jnp.asarray(tb.targets, jnp.float32)
    direct = X[idx].T @ (X[idx] @ w - y[idx]) / 8
    np.testing.assert_allclose(np.asarray(tb.with_batch(8).gradient(w, key=k)), direct, rtol=1e-5)
    big = tb.with_batch(16)  # counts path
    idx = big.sample_batch(key=k)
    direct = X[idx].T @ (X[idx] @ w - y[idx]) / 16
    np.testing.assert_allclose(np.asarray(big.gradient(w, key=k)), direct, rtol=1e-4, atol=1e-6)


def test_exact_quantities_of_regression():
    tb = make_linear_regression(n=200, d=4, key=jax.random.key(3))
    X, y = np.asarray(tb.features), np.asarray(tb.targets)
    w = tb.optimum() + 0.2
    loss = lambda v: 0.5 * np.mean((X @ v - y) ** 2)  # noqa: E731
    assert tb.excess_loss(w) == pytest.approx(loss(w) - loss(tb.optimum()), rel=1e-10)
    g = X * (X @ w - y)[:, None]
    np.testing.assert_allclose(tb.gradient_covariance(w), np.cov(g.T, bias=True), rtol=1e-10)


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), r"batch_size = 0"),
    (dict(batch_size=300), r"batch_size = 300 .*<= n = 200"),
    (dict(n=3, d=4), r"n = 3 .*n > d"),
])
def test_regression_bad_input(kwargs, match):
    args = dict(n=200, d=4, key=jax.random.key(0))
    args.update(kwargs)
    with pytest.raises(InvalidParameter, match=match):
        make_linear_regression(**args)


def test_quadratic_bad_input(key):
    with pytest.raises(InvalidParameter, match=r"lambda_min = 2 .*<= lambda_max"):
        make_noisy_quadratic(d=4, lambda_max=1.0, lambda_min=2.0, key=key)


@pytest.mark.parametrize("structure", ["full", "diagonal", "isotropic"])
def test_gradient_noise_has_projected_covariance_at_w(structure):
    from theory.quadratic import project
    tb = make_linear_regression(n=40, d=3, batch_size=4, replace=True, rotation_angle=0.7,
                                key=jax.random.key(1))
    w = tb.optimum() + 0.3
    target = project(tb.gradient_covariance(w), structure)
    keys = jax.random.split(jax.random.key(2), 40_000)
    z = np.asarray(jax.vmap(lambda k: tb.gradient_noise(jnp.asarray(w, jnp.float32), structure, key=k))(keys),
                   np.float64)
    prod = z[:, :, None] * z[:, None, :]
    crit = critical_z(n_comparisons=9)
    # each entry of E[ζζᵀ] within crit SE of P(Σ(w)) (+1e-6 absolute for float32)
    assert np.all(np.abs(prod.mean(0) - target) <= crit * prod.std(0) / np.sqrt(len(z)) + 1e-6)


def test_gradient_noise_rejects_unknown_structure():
    tb = make_linear_regression(n=40, d=3, key=jax.random.key(1))
    with pytest.raises(InvalidParameter, match="structure = 'block'"):
        tb.gradient_noise(jnp.zeros(3), "block", key=jax.random.key(0))
