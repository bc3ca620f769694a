"""``sngm.test_accuracy``: the digits finite-sum testbed samples true minibatches (with
replacement), one engine program serves every (method, η) grid of one B, the data splits
come from the key, and the verdict follows its stated rule with splits as its units."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import quick
from simulations import engine, stats
from simulations.claims.sngm import rules_digits, runs_digits
from simulations.registry import Evidence, get_claims
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
    gradients at a fixed w. Rule: Monte-Carlo mean within t·SE of the exact value, t =
    critical_t over the compared numbers (family-wise 1e-4, 999 dof), plus a float32 slack."""
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
    t = stats.critical_t(n_comparisons=g.shape[1] + 1, dof=K - 1)
    mean, se, _ = stats.mean_stderr(g, axis=0)
    assert np.all(np.abs(mean - full) <= t * se + 1e-6)
    sq = np.sum((g - full) ** 2, axis=1)
    m, s, _ = stats.mean_stderr(sq)
    assert abs(m - tr_sigma / B) <= t * s + 1e-4 * tr_sigma / B
    # and far from the without-replacement value (a check that the test can tell them apart)
    assert abs(m - tr_sigma / B * (n - B) / (n - 1)) > t * s


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


def test_split_seeds_come_from_the_key_and_change_the_data():
    a = runs_digits.split_seeds(jax.random.key(0), 3)
    assert a == runs_digits.split_seeds(jax.random.key(0), 3)
    assert a != runs_digits.split_seeds(jax.random.key(1), 3) and len(set(a)) == 3
    t0, t1 = (dm.make_digits_mlp(256, split_seed=s) for s in a[:2])
    assert t0.n_train == t1.n_train and not np.array_equal(t0.y_test, t1.y_test)


# -------------------------------------------------------------------- train_grid
def test_train_grid_new_grid_does_not_recompile_pairs_seeds_and_flags_divergence(testbed):
    cfg = get_claims(["sngm.test_accuracy"])[0].config("quick")
    n_seeds, shape = cfg["n_seeds"], (3, cfg["n_eta"])
    kw = dict(key=jax.random.key(5), beta=0.9, n_steps=cfg["n_steps"], n_seeds=n_seeds)
    dm.train_grid(testbed, runs_digits.eta_grid(cfg), **kw)  # the claim's tuning shape
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
def test_claim_quick_measurement():
    _, cfg, ev, v = quick("sngm.test_accuracy")
    S, M, n = cfg["n_splits"], 3, cfg["n_seeds"]
    assert ev.test.shape == (S, M, n) and np.all((ev.test >= 0) & (ev.test <= 1))
    assert ev.val.shape == (S, M, cfg["n_eta"], n)
    assert len(set(ev.split_seeds.tolist())) == S
    assert ev.compilations <= 1  # every call is three methods × one η × n seeds: one program
    assert ev.gradient_computations == cfg["n_steps"] * cfg["batch_size"]  # same C for all
    # on each split, the tuned η maximizes the mean validation accuracy over its tuning seeds
    mean_val = ev.val.mean(-1)  # (split, method, η)
    best = ev.best_index.astype(int)
    assert np.all(np.take_along_axis(mean_val, best[..., None], -1)[..., 0] == mean_val.max(-1))
    np.testing.assert_array_equal(ev.tuned_eta, np.take_along_axis(ev.etas[None], best[..., None], -1)[..., 0])
    # the verdict's interval is the Student-t interval over the per-split mean differences
    per = (ev.test[:, 0] - ev.test[:, 1]).mean(-1)
    _, lo, hi = stats.mean_ci(per, 1 - 0.05 / 2)
    d = v.measured["diff_vs_msgd"]
    assert (d["low"], d["high"]) == pytest.approx((lo, hi), rel=1e-12)


@pytest.mark.parametrize("change, name", [
    (dict(batch_size=1080), "B"), (dict(batch_size=0), "B"), (dict(beta=1.0), "beta"),
    (dict(n_splits=1), "n_splits"), (dict(n_seeds=0), "n_seeds"), (dict(margin=0.0), "margin"),
    (dict(eta_ranges={"sngm": (0.0, 1.0), "msgd": (1e-3, 1.0), "lars": (0.1, 10.0)}), r"eta_ranges\['sngm'\]"),
])
def test_claim_rejects_bad_config_before_compiling(change, name):
    claim = get_claims(["sngm.test_accuracy"])[0]
    before = engine.trace_count()
    with pytest.raises(InvalidParameter, match=rf"^{name} = "):
        claim.run(dict(claim.config("quick"), **change), key=jax.random.key(0))
    assert engine.trace_count() == before


def _evidence(diff_msgd, diff_lars, best=(3, 3, 3), n_eta=8, edge_split=None):
    """Hand-made per-split differences SNGM − baseline (two test seeds per split, equal)."""
    S = len(diff_msgd)
    base = np.linspace(0.95, 0.97, S)[:, None].repeat(2, 1)
    test = np.stack([base, base - np.asarray(diff_msgd)[:, None], base - np.asarray(diff_lars)[:, None]], 1)
    best_index = np.tile(best, (S, 1))
    if edge_split is not None:
        best_index[edge_split, 1] = n_eta - 1
    return Evidence(dict(methods=list(dm.METHODS), test=test, best_index=best_index,
                         etas=np.tile(np.geomspace(1e-3, 1, n_eta), (3, 1)), n_train=1079,
                         n_diverged=np.zeros((S, 3), int), split_seeds=list(range(S))))


@pytest.mark.parametrize("d_msgd, d_lars, best, edge, status", [
    ([0.003, 0.004, 0.002, 0.003, 0.005], [0.0, 0.001, -0.001, 0.002, 0.0], (3, 3, 3), None, "confirmed"),
    ([-0.03, -0.031, -0.029, -0.032, -0.03], [0.0, 0.001, -0.001, 0.002, 0.0], (3, 3, 3), None, "refuted"),
    ([-0.004, -0.005, -0.003, -0.006, -0.004], [0.01] * 5, (3, 3, 3), None, "refuted"),
    ([0.05, -0.05, 0.04, -0.06, 0.0], [0.0, 0.001, -0.001, 0.002, 0.0], (3, 3, 3), None, "inconclusive"),
    ([0.003, 0.004, 0.002, 0.003, 0.005], [0.0, 0.001, -0.001, 0.002, 0.0], (3, 3, 3), 2, "inconclusive"),
    ([-0.03, -0.031, -0.029, -0.032, -0.03], [0.0] * 5, (0, 3, 3), None, "inconclusive"),
])
def test_verdict_follows_its_rule(d_msgd, d_lars, best, edge, status):
    """Confirmed = non-inferior to both (interval over splits above −1 pp, not below 0);
    refuted = interval below 0 for any baseline, even by less than the margin; inconclusive
    = an interval reaching below −1 pp and above 0, or a tuned η at its grid's end on a split."""
    cfg = get_claims(["sngm.test_accuracy"])[0].config("quick")
    v = rules_digits.test_accuracy(_evidence(d_msgd, d_lars, best, edge_split=edge), cfg)
    assert v.status == status, v.summary
    mean, lo, hi = stats.mean_ci(np.asarray(d_msgd), 1 - 0.05 / 2)  # Bonferroni over 2 baselines
    assert v.measured["diff_vs_msgd"]["low"] == pytest.approx(lo, rel=1e-12)
    assert v.measured["diff_vs_msgd"]["mean"] == pytest.approx(np.mean(d_msgd), rel=1e-12)


def test_splits_are_the_units_of_the_interval():
    """Seeds within a split share its data and its tuning: the rule's interval is over the
    per-split means (4 dof for 5 splits), not over the 10 split × seed differences as if they
    were independent (which would understate the uncertainty)."""
    cfg = get_claims(["sngm.test_accuracy"])[0].config("quick")
    d = [0.02, -0.01, 0.01, -0.005, 0.007]
    v = rules_digits.test_accuracy(_evidence(d, [0.0] * 5), cfg)
    got = v.measured["diff_vs_msgd"]
    _, lo, hi = stats.mean_ci(d, 1 - 0.05 / 2)
    _, naive_lo, naive_hi = stats.mean_ci(np.repeat(d, 2), 1 - 0.05 / 2)
    assert (got["low"], got["high"]) == pytest.approx((lo, hi), rel=1e-12)
    assert got["high"] - got["low"] > 1.5 * (naive_hi - naive_lo)
