"""Label-noise SGD in the engine (Damian, Ma, Lee; CLAIMS.md §3): the oracle's moments vs
closed form, the compiled reference flows vs the NumPy float64 reference, the Hessian
metrics vs dense Hessians, the claims at quick fidelity, and bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simulations import engine, flows
from simulations.claims import label_noise as claims
from simulations.optimizers import make_momentum_sgd
from simulations.registry import get_claims
from simulations.stats import critical_z
from simulations.testbeds import label_noise as tbs
from theory import label_noise as th
from theory.validation import InvalidParameter


def _oracle_draws(tb, theta, hparams, n_draws, key):
    keys = jax.random.split(key, n_draws)
    g = jax.vmap(lambda k: tb.gradient(theta, key=k, hparams=hparams))(keys)
    return np.concatenate([np.asarray(x, np.float64).reshape(n_draws, -1)
                           for x in jax.tree_util.tree_leaves(g)], axis=1)


def _flat_grad(tb, theta):
    g = jax.grad(tb.loss)(theta)
    return np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree_util.tree_leaves(g)])


@pytest.mark.parametrize("noise, batch_size, langevin", [("rademacher", None, False), ("gaussian", None, False),
                                                         ("rademacher", 3, False), ("rademacher", None, True)])
def test_oracle_mean_and_second_moment_match_closed_form(key, noise, batch_size, langevin):
    tb = tbs.make_sparse_regression(key=key, d=6, n=8, k=2, batch_size=batch_size, noise=noise)
    tb = tb.with_langevin(langevin)
    with jax.enable_x64(True):
        theta = {"u": jnp.linspace(0.3, 1.2, 6), "v": jnp.linspace(0.9, 0.1, 6)}
        tb = jax.tree_util.tree_map(jnp.asarray, tb)
        hp = {"sigma": jnp.float64(0.7), "param_noise": jnp.float64(0.2)}
        n = 40_000
        g = _oracle_draws(tb, theta, hp, n, jax.random.key(5))
        exact_mean = _flat_grad(tb, theta)
        dev = g - exact_mean
        sq = (dev ** 2).sum(axis=1)
        if batch_size is None:
            # full batch: g − ∇L = −(σ/n) Σ_i ε_i ∇f_i (+ τξ), E‖·‖² = σ²/n² Σ_i ‖∇f_i‖² (+ τ² p)
            g2 = np.asarray(tb.per_example_gradient_sq_norms(theta), np.float64)
            exact_sq = 0.7 ** 2 * g2.sum() / tb.n ** 2 + (0.2 ** 2 * g.shape[1] if langevin else 0.0)
            z = critical_z()
            # rule: |mean − exact| <= z·SE (Monte Carlo over 40 000 independent draws; float64)
            assert abs(sq.mean() - exact_sq) <= z * sq.std(ddof=1) / np.sqrt(n)
    se = g.std(axis=0, ddof=1) / np.sqrt(n)
    z = critical_z(n_comparisons=g.shape[1])
    # rule: unbiased oracle, per coordinate |mean − ∇L| <= z·SE (Bonferroni over coordinates)
    assert np.all(np.abs(g.mean(axis=0) - exact_mean) <= z * se)


def test_sparse_trace_metric_equals_dense_hessian_trace(key):
    tb = tbs.make_sparse_regression(key=key, d=7, n=5, k=2)
    with jax.enable_x64(True):
        tb = jax.tree_util.tree_map(jnp.asarray, tb)
        theta = {"u": jnp.linspace(-0.5, 1.3, 7), "v": jnp.linspace(0.8, -0.2, 7)}  # nonzero residuals
        from simulations.hessian import dense_hessian
        dense = float(jnp.trace(dense_hessian(tb.loss, theta)))
        # float64 round-off on a 14 x 14 Hessian
        assert claims._sparse_trace(tb, theta) == pytest.approx(dense, rel=1e-12)
        H = np.asarray(dense_hessian(tb.loss, theta))
        lmax = float(claims._lambda_max(tb, theta))
        assert lmax == pytest.approx(np.linalg.eigvalsh(H)[-1], rel=1e-8)  # Lanczos, 14 < 20 steps: exact


def test_compiled_flow_matches_numpy_reference():
    theta0 = th.toy_manifold_point(2.0)
    for kind in flows.KINDS:
        ref = th.regularized_gradient_descent(th.toy_gradient, th.toy_hessian, theta0, eta=1.0, lam=0.02,
                                              n_steps=200, record_every=50, kind=kind,
                                              hessian_derivative=th.toy_hessian_derivative)
        out = flows.regularized_flow(claims._toy_loss_flat, theta0, eta=1.0, lam=0.02, n_steps=200,
                                     record_every=50, kind=kind)
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)  # float64, 200 steps of O(1) updates


def test_toy_hessian_derivative_matches_finite_differences():
    theta = np.array([1.3, 0.7, 0.9])
    fd = th.hessian_derivative_fd(th.toy_hessian, theta)
    # central differences, h = 1e-6: truncation 0 (H is quadratic in θ) + round-off ~1e-10
    np.testing.assert_allclose(th.toy_hessian_derivative(theta), fd, atol=1e-8)


def test_new_label_noise_strengths_do_not_recompile(key):
    tb = tbs.make_toy(q0=2.0)
    kw = dict(key=key, n_seeds=4, n_steps=20, record_every=10, metrics={"q": claims._q})
    engine.simulate(tb, make_momentum_sgd, tbs.label_noise_hyperparams([0.5, 1.0], [0.1, 0.0]), **kw)
    before = engine.trace_count()
    engine.simulate(tb, make_momentum_sgd, tbs.label_noise_hyperparams([0.3, 0.9], [0.2, 0.05], momentum=0.5), **kw)
    assert engine.trace_count() == before


def test_momentum_is_heavy_ball_on_the_toy(key):
    tb = tbs.make_toy(q0=2.0)
    theta0 = np.asarray(tb.theta0) * np.array([1.1, 1.0, 0.8])  # off the manifold: nonzero gradient
    tb = tbs.LabelNoiseRegression(tb.features, tb.targets, theta0, model="toy", batch_size=2)
    res = engine.simulate(tb, make_momentum_sgd, tbs.label_noise_hyperparams(0.3, 0.0, momentum=0.6),
                          key=key, n_seeds=2, n_steps=5, metrics={"theta": claims._theta}, dtype=jnp.float64)
    theta, v = theta0.copy(), np.zeros(3)
    for t in range(5):
        v = th.toy_gradient(theta) + 0.6 * v
        theta = theta - 0.3 * v
        np.testing.assert_allclose(res.records["theta"][0, 0, t + 1], theta, rtol=1e-12)  # float64


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs, name", [
    (dict(learning_rate=0.1, sigma=-1.0), "sigma"),
    (dict(learning_rate=0.0, sigma=1.0), "learning_rate"),
    (dict(learning_rate=0.1, sigma=1.0, momentum=1.0), "momentum"),
    (dict(learning_rate=0.1, sigma=1.0, param_noise=-0.1), "param_noise"),
])
def test_bad_hyperparameters_are_named(kwargs, name):
    with pytest.raises(InvalidParameter, match=name):
        tbs.label_noise_hyperparams(**kwargs)


@pytest.mark.parametrize("batch_size", [0, 41, 2.5])
def test_batch_size_outside_one_to_n(key, batch_size):
    with pytest.raises(InvalidParameter, match="batch_size"):
        tbs.make_sparse_regression(key=key, n=40, batch_size=batch_size)


def test_r_eta_flow_refuses_unstable_step():
    # at q = 2 on the toy λ_max = 1/q + q/2 = 1.5, so R_η = +∞ for η >= 4/3
    with pytest.raises(InvalidParameter, match=r"R_eta is \+inf"):
        flows.regularized_flow(claims._toy_loss_flat, th.toy_manifold_point(2.0), eta=1.4, lam=0.01,
                               n_steps=10)
    with pytest.raises(InvalidParameter, match="eta"):
        claims._toy_runs(dict(claims._TOY, etas=[1.5], eta_lambdas=[4e-3, 1e-3], time_units=1.0, n_seeds=2),
                         jax.random.key(0))
    with pytest.raises(InvalidParameter, match="kind"):
        flows.regularized_flow(claims._toy_loss_flat, th.toy_manifold_point(2.0), eta=0.5, lam=0.0,
                               n_steps=10, kind="hessian")


def test_lambda_only_rejects_batch_above_n(key):
    cfg = dict(get_claims(["labelnoise.lambda_only"])[0].config("quick"), configs=[[0.02, 40], [0.02, 80]])
    with pytest.raises(InvalidParameter, match="B"):
        claims.run_lambda_only(cfg, key=key)


# ------------------------------------------------------------- claims (quick fidelity)
def _run(claim_id, key):
    claim = get_claims([claim_id])[0]
    cfg = claim.config("quick")
    ev = claim.run(cfg, key=key)
    return claim, cfg, ev, claim.make_verdict(ev, cfg)


def test_toy_claims_are_reproducible_and_measure_q(key):
    claims._CACHE.clear()
    _, cfg, ev, v1 = _run("labelnoise.beyond_linear_scaling", key)
    claims._CACHE.clear()
    _, _, _, v2 = _run("labelnoise.beyond_linear_scaling", key)
    assert v1.to_json() == v2.to_json()  # same key, same numbers (fresh simulation)
    assert np.all(np.asarray(v1.predicted["q_star"]) > 1.0)
    for lv in ev["levels"]:
        assert np.all(np.asarray(lv["n_diverged"]) == 0)
        assert np.all(np.isfinite(lv["q_mean"]))
    _, _, _, vt = _run("labelnoise.tracks_regularized_flow", key)
    assert vt.status in ("confirmed", "refuted")
    assert len(vt.measured["rms_bias_over_sqrt_lambda"]) == 2


def test_sparse_claims_measure_every_arm(key):
    claims._CACHE.clear()
    _, cfg, ev, v = _run("labelnoise.sparse_recovery", key)
    assert v.status in ("confirmed", "refuted", "inconclusive")
    assert set(ev["arms"]) == {"label noise", "GD", "SGLD"}
    for arm in ev["arms"]:
        assert ev[arm]["n_valid"] == ev[arm]["n_seeds"]
        assert np.all(np.isfinite(ev[arm]["dist_lasso"]))
    # the GD arm is deterministic in full batch: both seeds agree exactly
    assert np.ptp(ev["GD"]["dist_lasso"]) == 0.0
    # the exact sparse trace at θ₀ = 1: tr ∇²L = 8 Σ_j m_j
    X = np.asarray(claims._sparse_testbed(cfg, key).features, np.float64)
    assert ev["GD"]["trace"][0, 0] == pytest.approx(8 * np.mean(X ** 2, axis=0).sum(), rel=1e-5)  # float32
    _, _, ev_f, vf = _run("labelnoise.flatness", key)  # reuses the sparse runs
    assert vf.status in ("confirmed", "refuted", "inconclusive")
    assert set(ev_f["mlp"]["arms"]) == {"label noise", "GD"}


def test_lambda_only_measurement(key):
    _, cfg, ev, v = _run("labelnoise.lambda_only", key)
    assert v.status in ("confirmed", "refuted", "inconclusive")
    assert len(ev["tail_mean"]) == len(cfg["configs"])
    assert np.all(np.asarray(ev["n_valid"]) == cfg["n_seeds"])


def test_shape_matters_variant_gradient(key):
    # f = ⟨v⊙v, x⟩: ∇_v L = (1/n) Σ_i (f_i − y_i) 2 v⊙x_i (σ = 0: the oracle is exact)
    tb = tbs.make_sparse_regression(key=key, d=5, n=6, k=2, variant="sparse_vv")
    with jax.enable_x64(True):
        tb = jax.tree_util.tree_map(jnp.asarray, tb)
        v = jnp.linspace(0.2, 1.4, 5)
        g = tb.gradient({"v": v}, key=key, hparams={"sigma": 0.0})["v"]
        X, y = np.asarray(tb.features), np.asarray(tb.targets)
        r = X @ np.asarray(v) ** 2 - y
        np.testing.assert_allclose(g, 2 * np.asarray(v) * (X.T @ r) / 6, rtol=1e-12)  # float64
