"""theory.dreg against independent computations: finite differences and JAX autodiff for
the regularizer gradients, and a NumPy least-squares model trained in both
parametrizations for the reparametrization facts."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simulations import optimizers
from theory import dreg as th
from theory.validation import InvalidParameter

U = np.finfo(np.float64).eps / 2


@pytest.fixture
def pair(rng):
    return rng.standard_normal((7, 5)), rng.standard_normal((7, 5))


@pytest.mark.parametrize("kind", th.REGULARIZERS)
def test_regularizer_gradient_matches_central_differences(kind, pair):
    W, Wc = pair
    margin = 2.0 * np.sum((W - Wc) ** 2)  # active: the distance is below the margin
    gW, gWc = th.regularizer_grad(kind, W, Wc, margin)
    h = 1e-6
    for (i, j) in [(0, 0), (3, 2), (6, 4)]:
        E = np.zeros_like(W)
        E[i, j] = h
        fd_w = (th.regularizer(kind, W + E, Wc, margin) - th.regularizer(kind, W - E, Wc, margin)) / (2 * h)
        fd_c = (th.regularizer(kind, W, Wc + E, margin) - th.regularizer(kind, W, Wc - E, margin)) / (2 * h)
        # central differences: O(h²) truncation + O(u/h) round-off, both < 1e-8 here
        assert abs(fd_w - gW[i, j]) < 1e-8 and abs(fd_c - gWc[i, j]) < 1e-8


@pytest.mark.parametrize("kind", th.REGULARIZERS)
def test_jax_regularizers_match_the_closed_forms(kind, pair):
    """The optax penalty's R (simulations.optimizers.dreg_regularizers) and its autodiff
    gradient equal the theory's closed forms in float64."""
    W, Wc = pair
    k = th.REGULARIZERS.index(kind)
    margin = 1.5 * np.sum((W - Wc) ** 2)
    with jax.enable_x64(True):
        value = float(optimizers.dreg_regularizers(jnp.asarray(W), jnp.asarray(Wc), margin)[k])
        gW, gWc = jax.grad(lambda w, c: optimizers.dreg_regularizers(w, c, margin)[k], argnums=(0, 1))(
            jnp.asarray(W), jnp.asarray(Wc))
    tW, tWc = th.regularizer_grad(kind, W, Wc, margin)
    assert value == pytest.approx(th.regularizer(kind, W, Wc, margin), rel=1e-13)
    np.testing.assert_allclose(np.asarray(gW), tW, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(np.asarray(gWc), tWc, rtol=1e-11, atol=1e-14)
    # outside the margin the margin form is flat
    if kind == "margin":
        gW, gWc = th.regularizer_grad(kind, W, Wc, 0.5 * np.sum((W - Wc) ** 2))
        assert not gW.any() and not gWc.any()


def test_gradients_vanish_at_an_exact_copy(pair):
    """Fact 5: ∇R(W, W) = 0. The cosine forms compute W/a² − c·W/a² with c = 1 up to
    rounding, so the residual is a few ulps of |W|/a² (per column for the unit-wise form);
    the margin form's −2(W − W) is exactly zero."""
    W, _ = pair
    for kind in ("cosine", "unitwise"):
        gW, gWc = th.regularizer_grad(kind, W, W.copy())
        a2 = np.sum(W ** 2) if kind == "cosine" else np.sum(W ** 2, axis=0) * W.shape[1]
        assert np.all(np.abs(gW) <= 8 * U * np.abs(W).max() / np.min(a2))
        np.testing.assert_array_equal(gW, gWc)  # the two copies see the same gradient
    gW, gWc = th.regularizer_grad("margin", W, W.copy(), 1.0)
    assert not gW.any() and not gWc.any()
    # and away from the copy the cosine gradient is of order 1/‖W‖ (the check above can fail)
    gW, _ = th.regularizer_grad("cosine", W, W + 0.1 * pair[1])
    assert np.abs(gW).max() > 1e-4 / np.linalg.norm(W)


def test_sum_component_is_zero_exactly_for_the_margin_form_only(pair):
    W, Wc = pair
    assert not th.sum_component("margin", W, Wc, 1e9).any()
    assert np.abs(th.sum_component("cosine", W, Wc)).max() > 1e-3
    # cosine: each gradient is orthogonal to its own argument (scale invariance)
    gW, gWc = th.regularizer_grad("cosine", W, Wc)
    assert abs(np.sum(gW * W)) < 1e-13 and abs(np.sum(gWc * Wc)) < 1e-13


def test_factors_and_initialization(pair):
    W0, D = pair
    assert th.effective_lr_factor(1.0) == 2.0 and th.effective_lr_factor(2.0) == 0.5
    assert th.baseline_copy_factor(1.0) * th.effective_lr_factor(1.0) == 1.0
    for kappa, rho in [(1.0, 0.0), (2.0, 0.0), (1.0, 1.0), (2.0, 0.3)]:
        W, Wc = th.split_init(W0, D, kappa, rho)
        np.testing.assert_allclose(th.merge(W, Wc, kappa), W0, rtol=0, atol=4 * U * np.abs(W0).max() * (1 + rho))
        np.testing.assert_allclose(W - Wc, kappa * rho * D, rtol=0, atol=4 * U * kappa * np.abs(W0).max() * (1 + rho))
    W, Wc = th.split_init(W0, D, 2.0, 0.0)
    np.testing.assert_array_equal(W, W0)  # κ = 2, ρ = 0: an exact replica, bit for bit
    np.testing.assert_array_equal(Wc, W0)


def _least_squares(rng, n=40, d=6, k=3):
    X, Y = rng.standard_normal((n, d)), rng.standard_normal((n, k))
    return lambda W: X.T @ (X @ W - Y) / n  # ∇ of (1/2n)‖XW − Y‖²


@pytest.mark.parametrize("kappa", [1.0, 2.0])
@pytest.mark.parametrize("beta", [0.0, 0.9])
def test_dreg_steps_equal_the_learning_rate_control_on_least_squares(rng, kappa, beta):
    """Facts 2-4 on an independent model: W_eff of λ = 0 DReg (and of margin-R DReg with
    λ > 0) follows SGD on the plain layer with learning rate × 2/κ²; W − W′ stays put at
    λ = 0; cosine DReg leaves that trajectory. Float rule: 16·(t + 1)·u·S."""
    grad = _least_squares(rng)
    W0, D = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    eta, T = 0.1, 60
    runs = {}
    for name, lam, kind in [("zero", 0.0, "cosine"), ("margin", 0.5, "margin"), ("cosine", 0.5, "cosine")]:
        W, Wc = th.split_init(W0, D, kappa, 1.0)
        state, traj = (W, Wc, np.zeros_like(W), np.zeros_like(W)), []
        for _ in range(T):
            state = th.dreg_step(state, grad(th.merge(state[0], state[1], kappa)), eta=eta, beta=beta,
                                 kappa=kappa, lam=lam, kind=kind, margin=1e3)
            traj.append((th.merge(state[0], state[1], kappa), state[0] - state[1],
                         np.abs(state[0]).max() + np.abs(state[1]).max()))
        runs[name] = traj
    ctrl, traj = (W0, np.zeros_like(W0)), []
    for _ in range(T):
        ctrl = th.control_step(ctrl, grad(ctrl[0]), eta=eta, beta=beta, factor=th.effective_lr_factor(kappa))
        traj.append(ctrl[0])
    tol = th.roundoff_tolerance(T, 1.0)[1:]
    for name in ("zero", "margin"):
        for t, ((weff, delta, mag), w) in enumerate(zip(runs[name], traj)):
            S = max(np.abs(w).max(), mag / kappa)
            assert np.abs(weff - w).max() <= tol[t] * S
            if name == "zero":
                assert np.abs(delta - kappa * D).max() <= tol[t] * S
    # the cosine regularizer's component along W + W′ moves W_eff off the control
    assert np.abs(runs["cosine"][-1][0] - traj[-1]).max() > 1e6 * tol[-1]


def test_roundoff_tolerance():
    tol = th.roundoff_tolerance(3, 2.0)
    np.testing.assert_allclose(tol, 16 * np.arange(1, 5) * U * 2.0)
    assert th.roundoff_tolerance(0, 1.0, dtype=np.float32)[0] == pytest.approx(16 * np.finfo(np.float32).eps / 2)


@pytest.mark.parametrize("call, match", [
    (lambda: th.effective_lr_factor(0.0), "kappa = 0 is not allowed"),
    (lambda: th.regularizer("l2", np.ones((2, 2)), np.ones((2, 2))), "regularizer = 'l2' is not allowed"),
    (lambda: th.merge(np.ones((2, 2)), np.ones((2, 3)), 1.0), "W_copy has shape"),
    (lambda: th.merge(np.ones(3), np.ones(3), 1.0), "2-d layer weight"),
    (lambda: th.split_init(np.ones((2, 2)), np.ones((2, 2)), 1.0, -1.0), "offset = -1 is not allowed"),
    (lambda: th.regularizer("margin", np.ones((2, 2)), np.ones((2, 2)), 0.0), "margin = 0 is not allowed"),
    (lambda: th.roundoff_tolerance(-1, 1.0), "n_steps = -1 is not allowed"),
])
def test_bad_input_is_rejected_with_a_clear_message(call, match):
    with pytest.raises(InvalidParameter, match=match):
        call()
