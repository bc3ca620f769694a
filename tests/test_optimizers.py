"""simulations.optimizers: optax compositions vs hand-written recursions; noise moments."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from simulations import optimizers
from simulations.stats import critical_z
from theory.validation import InvalidParameter


def _run(opt, grads):
    w = jnp.zeros(grads.shape[1])
    state = opt.init(w)
    out = []
    for g in grads:  # a test-only reference loop over 30 steps
        upd, state = opt.update(jnp.asarray(g), state, w)
        w = optax.apply_updates(w, upd)
        out.append(np.asarray(w))
    return np.array(out)


def test_sngm_matches_hand_recursion(rng):
    grads = rng.standard_normal((30, 5)) * np.geomspace(10, 0.01, 30)[:, None]
    eta, beta = 0.1, 0.9
    u, w, ref = np.zeros(5), np.zeros(5), []
    for g in grads:  # u ← βu + g/‖g‖, w ← w − ηu
        u = beta * u + g / np.linalg.norm(g)
        w = w - eta * u
        ref.append(w.copy())
    got = _run(optimizers.sngm(eta, beta), grads.astype(np.float32))
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=1e-6)  # float32 over 30 steps
    assert np.all(np.linalg.norm(np.diff(got, axis=0), axis=1) <= eta / (1 - beta) * (1 + 1e-6))


def test_sngm_zero_gradient_is_a_zero_step():
    opt = optimizers.sngm(0.1, 0.0)
    upd, _ = opt.update(jnp.zeros(3), opt.init(jnp.zeros(3)))
    assert np.all(np.asarray(upd) == 0)


def test_momentum_sgd_matches_heavy_ball(rng):
    grads = rng.standard_normal((30, 4))
    eta, beta = 0.05, 0.8
    u, w, ref = np.zeros(4), np.zeros(4), []
    for g in grads:
        u = beta * u + g
        w = w - eta * u
        ref.append(w.copy())
    got = _run(optimizers.momentum_sgd(eta, beta), grads.astype(np.float32))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_gaussian_noise_has_the_requested_covariance(rng):
    M = rng.standard_normal((4, 4))
    C = M @ M.T / 4
    D = optimizers.covariance_factor(C)
    np.testing.assert_allclose(D @ D.T, C, atol=1e-12)
    n = 200_000
    keys = jax.random.split(jax.random.key(0), n)
    noise = jax.vmap(lambda k: optimizers.gaussian_noise(jnp.asarray(D, jnp.float32), key=k)
                     .update(jnp.zeros(4), optimizers.NoiseState(k))[0])(keys)
    x = np.asarray(noise, np.float64)
    prod = x[:, :, None] * x[:, None, :]
    se = prod.std(axis=0) / np.sqrt(n)
    z = critical_z(n_comparisons=16)  # each entry within z SE (Bonferroni, 1e-4)
    assert np.all(np.abs(prod.mean(axis=0) - C) <= z * se)


def test_noise_key_advances_in_state():
    opt = optimizers.gaussian_noise(jnp.eye(2), key=jax.random.key(1))
    s0 = opt.init(jnp.zeros(2))
    a, s1 = opt.update(jnp.zeros(2), s0)
    b, _ = opt.update(jnp.zeros(2), s1)
    assert not np.array_equal(np.asarray(a), np.asarray(b))


def test_covariance_factor_rejects_non_psd():
    with pytest.raises(InvalidParameter, match=r"C = .*positive semi-definite"):
        optimizers.covariance_factor(np.diag([1.0, -0.5]))
