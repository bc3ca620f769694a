"""CLAIMS.md §2, ``sngm.test_accuracy``: the digits finite-sum testbed samples true
minibatches (with replacement), the three methods are exactly the optimizers they name,
one engine program serves every (method, η) grid, and the verdict follows its stated rule."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st

import simulations.claims.sngm as claims
from simulations import engine, optimizers, stats
from simulations.registry import get_claims
from simulations.report import jsonable
from simulations.testbeds import digits, digits_mlp as dm
from theory.validation import InvalidParameter

HYP = settings(max_examples=25, deadline=None, derandomize=True)


@pytest.fixture(scope="module")
def testbed():
    return dm.make_digits_mlp(256)


def _f32(tree):
    return jax.tree_util.tree_map(
        lambda x: jnp.asarray(x, jnp.float32) if np.issubdtype(np.asarray(x).dtype, np.floating)
        else jnp.asarray(x), tree)


# ------------------------------------------------------------------------- testbed
def test_minibatch_gradient_is_unbiased_with_covariance_sigma_over_b(testbed):
    """E g = ∇F and E‖g − ∇F‖² = tr Σ / B exactly for sampling WITH replacement (without
    replacement it would be smaller by (n − B)/(n − 1) = 0.76 here). Σ from per-example
    gradients at a fixed w. Rule: Monte-Carlo mean within z·SE of the exact value, z =
    critical_z over the compared numbers (family-wise 1e-4), plus a float32 slack."""
    tb = _f32(testbed)
    params = tb.init(key=jax.random.key(3))
    n, B, K = tb.n_train, tb.batch_size, 1000
    flat = lambda t: jax.flatten_util.ravel_pytree(t)[0]
    per_ex = jax.vmap(lambda x, y: flat(jax.grad(digits.cross_entropy)(params, x[None], y[None])))(
        tb.x_train, tb.y_train)                                               # (n, P)
    full = flat(jax.grad(tb.loss)(params))
    np.testing.assert_allclose(per_ex.mean(0), full, atol=1e-6)               # float32 sums
    tr_sigma = float(jnp.sum((per_ex - full) ** 2) / n)
    g = jax.vmap(lambda k: flat(tb.gradient(params, key=k)))(jax.random.split(jax.random.key(4), K))
    g, full = np.asarray(g, np.float64), np.asarray(full, np.float64)
    z = stats.critical_z(n_comparisons=g.shape[1] + 1)
    mean, se, _ = stats.mean_stderr(g, axis=0)
    assert np.all(np.abs(mean - full) <= z * se + 1e-6)
    sq = np.sum((g - full) ** 2, axis=1)
    m, s, _ = stats.mean_stderr(sq)
    assert abs(m - tr_sigma / B) <= z * s + 1e-4 * tr_sigma / B
    # and far from the without-replacement value (a check that the test can tell them apart)
    assert abs(m - tr_sigma / B * (n - B) / (n - 1)) > z * s


@HYP
@given(b=st.one_of(st.integers(-10 ** 6, 0), st.integers(1080, 10 ** 6),
                   st.floats(1.0, 1079.0).filter(lambda x: x != int(x)), st.just(True)))
def test_property_testbed_rejects_batch_outside_1_to_n(b):
    with pytest.raises(InvalidParameter, match=r"^B = .* need an integer batch size 1 <= B <= n = 1079"):
        dm.make_digits_mlp(b)


def test_batch_of_n_is_allowed_and_init_has_he_scales():
    tb = dm.make_digits_mlp(1079)
    assert tb.batch_size == tb.n_train == 1079
    p = tb.init(key=jax.random.key(0))
    assert {k: v.shape for k, v in p.items()} == {"w1": (64, 64), "b1": (64,), "w2": (64, 10), "b2": (10,)}
    # sample variances of 4096 and 640 N(0, s²) entries: within 5 standard errors
    # (SE of a variance estimate = s²·√(2/m))
    for name, s2, m in (("w1", 2 / 64, 4096), ("w2", 1 / 64, 640)):
        assert abs(float(jnp.var(p[name])) - s2) <= 5 * s2 * np.sqrt(2 / m)


def test_select_is_exactly_each_optimizer(testbed):
    """make_method with method index k runs the k-th optimizer exactly (same float ops)."""
    tb = _f32(testbed)
    refs = (optimizers.sngm(0.05, 0.9), optimizers.momentum_sgd(0.05, 0.9), optax.lars(0.05, momentum=0.9))
    for k, ref in enumerate(refs):
        hp = dict(method=jnp.int32(k), learning_rate=jnp.float32(0.05), momentum=jnp.float32(0.9))
        opt = dm.make_method(hp, key=jax.random.key(0))
        w1 = w2 = tb.init(key=jax.random.key(1))
        s1, s2 = opt.init(w1), ref.init(w2)
        for t in range(3):
            g1 = tb.gradient(w1, key=jax.random.key(t))
            g2 = tb.gradient(w2, key=jax.random.key(t))
            u1, s1 = opt.update(g1, s1, w1)
            u2, s2 = ref.update(g2, s2, w2)
            w1, w2 = optax.apply_updates(w1, u1), optax.apply_updates(w2, u2)
        for a, b in zip(jax.tree_util.tree_leaves(w1), jax.tree_util.tree_leaves(w2)):
            np.testing.assert_array_equal(a, b)


# -------------------------------------------------------------------- train_grid
def test_train_grid_new_grid_does_not_recompile_pairs_seeds_and_flags_divergence(testbed):
    cfg = get_claims(["sngm.test_accuracy"])[0].config("quick")
    n_seeds, shape = cfg["n_tune_seeds"] + cfg["n_eval_seeds"], (3, cfg["n_eta"])
    kw = dict(key=jax.random.key(5), beta=0.9, n_steps=cfg["n_steps"], n_seeds=n_seeds)
    etas = claims._acc_etas(cfg)
    dm.train_grid(testbed, etas, **kw)  # the claim's shapes: compiled at most once here
    before = engine.trace_count()
    grid = np.ones(shape) * np.array([[0.05], [0.5], [5.0]])
    grid[2, -1] = 1e6  # LARS at η = 10⁶: ‖w‖ grows ~10³-fold per step, overflows float32
    out = dm.train_grid(testbed, grid, **kw)
    assert engine.trace_count() == before and out["compilations"] == 0
    # common random numbers: equal η in one row → identical trajectories seed by seed
    for m in range(3):
        same = slice(0, shape[1] - 1)
        assert np.all(out["val"][m, same] == out["val"][m, 0])
        assert np.all(out["test"][m, same] == out["test"][m, 0])
    assert np.all(out["diverged"][2, -1]) and np.all(out["val"][2, -1] == 0)
    assert not out["diverged"][:, :-1].any()
    # trained, non-diverged runs beat chance (10 classes) by far: accuracy well above 0.5
    assert np.all(out["test"][0, 0] > 0.5)


@pytest.mark.parametrize("kwargs, name", [
    (dict(beta=1.0), "beta"), (dict(beta=-0.1), "beta"), (dict(n_steps=0), "n_steps"),
    (dict(methods=("sngm", "adam", "lars")), "method"), (dict(etas=np.zeros((3, 2))), "etas"),
    (dict(etas=np.ones((2, 2))), "etas"),
])
def test_train_grid_bad_input(testbed, kwargs, name):
    args = dict(etas=np.ones((3, 2)), key=jax.random.key(0), beta=0.9, n_steps=10, n_seeds=2)
    args.update(kwargs)
    etas = args.pop("etas")
    before = engine.trace_count()
    with pytest.raises(InvalidParameter, match=rf"^{name} = "):
        dm.train_grid(testbed, etas, **args)
    assert engine.trace_count() == before


# ------------------------------------------------------------------------ the claim
def test_claim_quick_reproducible_with_figure(tmp_path):
    claim = get_claims(["sngm.test_accuracy"])[0]
    cfg = dict(claim.config("quick"), seed=0)
    ev = jsonable(claim.run(cfg, key=jax.random.key(0)))
    v = claim.make_verdict(ev, cfg)
    assert v.status in ("confirmed", "refuted", "inconclusive")
    assert ev["compilations"] <= 1
    acc = np.asarray(ev["test_at_best"])
    assert acc.shape == (3, cfg["n_eval_seeds"]) and np.all((acc >= 0) & (acc <= 1))
    assert ev["gradient_computations"] == cfg["n_steps"] * cfg["batch_size"]  # same C for all
    # the tuned η maximizes the mean validation accuracy over the tuning seeds
    val = np.asarray(ev["val"])
    assert np.all(val.mean(-1)[np.arange(3), ev["best_index"]] == val.mean(-1).max(-1))
    claim.figure(ev, v, tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_size > 10_000
    before = engine.trace_count()
    ev2 = jsonable(claim.run(cfg, key=jax.random.key(0)))  # same key: same numbers, no compile
    assert engine.trace_count() == before
    assert ev2["test_at_best"] == ev["test_at_best"] and ev2["val"] == ev["val"]
    assert claim.make_verdict(ev2, cfg) == v


@pytest.mark.parametrize("change, name", [
    (dict(batch_size=1080), "B"), (dict(batch_size=0), "B"), (dict(beta=1.0), "beta"),
    (dict(n_eval_seeds=1), "n_eval_seeds"), (dict(margin=0.0), "margin"),
    (dict(eta_ranges={"sngm": (0.0, 1.0), "msgd": (1e-3, 1.0), "lars": (0.1, 10.0)}), r"eta_ranges\['sngm'\]"),
])
def test_claim_rejects_bad_config_before_compiling(change, name):
    claim = get_claims(["sngm.test_accuracy"])[0]
    before = engine.trace_count()
    with pytest.raises(InvalidParameter, match=rf"^{name} = "):
        claim.run(dict(claim.config("quick"), **change), key=jax.random.key(0))
    assert engine.trace_count() == before


def _evidence(diff_msgd, diff_lars, best=(3, 3, 3), n_eta=8):
    base = np.linspace(0.95, 0.97, len(diff_msgd))
    acc = np.stack([base, base - np.asarray(diff_msgd), base - np.asarray(diff_lars)])
    return dict(methods=list(dm.METHODS), test_at_best=acc, best_index=list(best),
                etas=np.tile(np.geomspace(1e-3, 1, n_eta), (3, 1)), n_train=1079,
                n_diverged=np.zeros((3, n_eta), int))


@pytest.mark.parametrize("d_msgd, d_lars, best, status", [
    ([0.003, 0.004, 0.002, 0.003, 0.005], [0.0, 0.001, -0.001, 0.002, 0.0], (3, 3, 3), "confirmed"),
    ([-0.03, -0.031, -0.029, -0.032, -0.03], [0.0, 0.001, -0.001, 0.002, 0.0], (3, 3, 3), "refuted"),
    ([-0.004, -0.005, -0.003, -0.006, -0.004], [0.01, 0.01, 0.01, 0.01, 0.01], (3, 3, 3), "refuted"),
    ([0.05, -0.05, 0.04, -0.06, 0.0], [0.0, 0.001, -0.001, 0.002, 0.0], (3, 3, 3), "inconclusive"),
    ([0.003, 0.004, 0.002, 0.003, 0.005], [0.0, 0.001, -0.001, 0.002, 0.0], (3, 7, 3), "inconclusive"),
    ([-0.03, -0.031, -0.029, -0.032, -0.03], [0.0, 0.0, 0.0, 0.0, 0.0], (0, 3, 3), "inconclusive"),
])
def test_verdict_follows_its_rule(d_msgd, d_lars, best, status):
    """Hand-made paired differences (SNGM − baseline per seed): confirmed = non-inferior to
    both (CI above −1 pp, not below 0); refuted = CI below 0 for any baseline, even by less
    than the margin; inconclusive = a CI reaching below −1 pp and above 0, or a tuned η at
    its grid's end."""
    cfg = get_claims(["sngm.test_accuracy"])[0].config("quick")
    v = claims.verdict_test_accuracy(jsonable(_evidence(d_msgd, d_lars, best)), cfg)
    assert v.status == status, v.summary
    d = np.asarray(d_msgd)
    mean, lo, hi = stats.mean_ci(d, 1 - 0.05 / 2)  # Bonferroni over the 2 baselines
    assert v.measured["diff_vs_msgd"]["low"] == pytest.approx(lo, rel=1e-12)
    assert v.measured["diff_vs_msgd"]["mean"] == pytest.approx(d.mean(), rel=1e-12)
