"""``sngm.allowable_batch_real``: the digits finite-sum testbeds sample true minibatches (with
replacement; accumulated micro-batches are a minibatch of kb; the full batch is exact
gradient descent), one engine program per optimizer family serves every (B, η) at a fixed
epoch budget, the data splits come from the key, and the verdict follows its stated rule
(bootstrap over splits, censoring at the full batch, a premise gate) for every outcome."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import quick
from simulations import engine, stats
from simulations import batch_scaling as bsc
from simulations.claims.sngm import rules_digits
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
    a = bsc.split_seeds(jax.random.key(0), 3)
    assert a == bsc.split_seeds(jax.random.key(0), 3)
    assert a != bsc.split_seeds(jax.random.key(1), 3) and len(set(a)) == 3
    t0, t1 = (dm.make_digits_mlp(256, split_seed=s) for s in a[:2])
    assert t0.n_train == t1.n_train and not np.array_equal(t0.y_test, t1.y_test)


# ------------------------------------------------------ micro-batches accumulated
@pytest.fixture(scope="module")
def micro():
    return dm.make_digits_microbatch(micro_batch=8, split_seed=0)


def _micro_grads(tb, params, k, full, keys, start=0):
    hp = {"accumulate": jnp.asarray(k, jnp.int32), "full_batch": jnp.asarray(int(full), jnp.int32)}
    flat = lambda t: jax.flatten_util.ravel_pytree(t)[0]
    return jnp.stack([flat(tb.gradient(params, key=kk, hparams=hp, step=jnp.asarray(start + j, jnp.int32)))
                      for j, kk in enumerate(keys)])


def test_full_batch_cycle_is_exactly_the_full_gradient(micro):
    """k = ⌈n/b⌉ = 135 consecutive micro-gradients of the full-batch oracle average to ∇F
    (the last block has 7 examples and one masked slot): float32 sums of 1079 terms."""
    tb = _f32(micro)
    params = tb.init(key=jax.random.key(1))
    k = tb.full_accumulate
    assert k == 135 and (k - 1) * 8 < tb.n_train <= k * 8
    g = _micro_grads(tb, params, k, True, jax.random.split(jax.random.key(2), k)).mean(0)
    full = jax.flatten_util.ravel_pytree(jax.grad(tb.loss)(params))[0]
    np.testing.assert_allclose(g, full, rtol=1e-4, atol=1e-6)
    # the cycle is positional: it starts again at step k
    again = _micro_grads(tb, params, k, True, jax.random.split(jax.random.key(3), k), start=k).mean(0)
    np.testing.assert_allclose(again, g, rtol=1e-6, atol=1e-8)


def test_accumulated_micro_batches_are_an_unbiased_minibatch_of_kb(micro):
    """k = 3 micro-batches of 8 with replacement: the mean of 3 micro-gradients has mean ∇F and
    E‖ḡ − ∇F‖² = tr Σ/(3·8) (a batch of 24 with replacement); t-rule as the test above."""
    tb = _f32(micro)
    params = tb.init(key=jax.random.key(4))
    K = 600
    flat = lambda t: jax.flatten_util.ravel_pytree(t)[0]
    hp = {"accumulate": jnp.asarray(3, jnp.int32), "full_batch": jnp.asarray(0, jnp.int32)}
    keys = jax.random.split(jax.random.key(5), 3 * K)
    g = jax.vmap(lambda kk: flat(tb.gradient(params, key=kk, hparams=hp, step=jnp.asarray(0, jnp.int32))))(keys)
    g = np.asarray(g, np.float64).reshape(K, 3, -1).mean(1)
    full = np.asarray(flat(jax.grad(tb.loss)(params)), np.float64)
    per_ex = jax.vmap(lambda x, y: flat(jax.grad(digits.cross_entropy)(params, x[None], y[None])))(tb.x_train, tb.y_train)
    tr_sigma = float(np.sum((np.asarray(per_ex, np.float64) - full) ** 2) / tb.n_train)
    t = stats.critical_t(n_comparisons=g.shape[1] + 1, dof=K - 1)
    mean, se, _ = stats.mean_stderr(g, axis=0)
    assert np.all(np.abs(mean - full) <= t * se + 1e-6)
    m, s, _ = stats.mean_stderr(np.sum((g - full) ** 2, axis=1))
    assert abs(m - tr_sigma / 24) <= t * s + 1e-4 * tr_sigma / 24
    assert abs(m - tr_sigma / 8) > t * s  # not the variance of one micro-batch


def _sweep(tb, etas, **kw):
    args = dict(methods=("sngm", "msgd", "sgd"), accumulate=[1, 3], full_batch=True, key=jax.random.key(6),
                momentum=0.9, n_micro_steps=270, record_every=27, n_seeds=2)
    args.update(kw)
    return dm.train_batch_sweep(tb, etas=etas, **args)


def test_batch_sweep_compiles_once_pairs_seeds_flags_divergence(micro):
    etas = np.ones((3, 3, 3)) * np.array([0.05, 0.03, 0.3])[:, None, None]
    _sweep(micro, etas * 0.5)                                       # warm the program
    before = engine.trace_count()
    etas[2, 0, 2] = 1e30                                           # SGD at B = 8: overflows float32
    out = _sweep(micro, etas)
    assert engine.trace_count() == before and out["compilations"] == 0
    # common random numbers: equal η in a (method, B) row → identical trajectories per seed
    for m in range(3):
        for j in range(3):
            same = slice(0, 2) if (m, j) == (2, 0) else slice(0, 3)
            assert np.all(out["test"][m, j, same] == out["test"][m, j, 0])
    assert np.all(out["diverged"][2, 0, 2]) and np.all(out["test"][2, 0, 2] == 0)
    assert np.all(out["val"][2, 0, 2, :, -1] == 0) and out["diverged"].sum() == 2
    # T = M/k optimizer steps: 270, 90 and 2 (full batch: k = 135)
    assert list(out["accumulate"]) == [1, 3, 135]
    assert out["steps_per_record"][:, -1].tolist() == [270, 90, 2]
    assert np.all(out["test"][:, :2, :2] > 0.5)  # trained runs beat chance (10 classes) by far


@pytest.mark.parametrize("kwargs, name", [
    (dict(accumulate=[1, 4]), "n_micro_steps"), (dict(record_every=25), "record_every"),
    (dict(accumulate=[3, 1]), "accumulate"), (dict(momentum=1.0), "momentum"),
    (dict(methods=("sngm", "adam", "sgd")), "method"), (dict(etas=np.ones((3, 2, 2))), "etas"),
    (dict(etas=-np.ones((3, 3, 2))), "etas"),
])
def test_batch_sweep_bad_input(micro, kwargs, name):
    etas = kwargs.pop("etas", np.ones((3, 3, 2)))
    before = engine.trace_count()
    with pytest.raises(InvalidParameter, match=rf"^{name} = "):
        _sweep(micro, etas, **kwargs)
    assert engine.trace_count() == before


# ------------------------------------------------------------------------ the claim
ID = "sngm.allowable_batch_real"


def test_claim_quick_measurement():
    _, cfg, ev, v = quick(ID)
    d = ev.digits
    S, M, NB = len(d.split_seeds), len(d.methods), len(d.batch_sizes)
    assert d.test.shape == (S, M, NB, cfg["digits"]["n_test"]) and np.all((d.test >= 0) & (d.test <= 1))
    assert d.batch_sizes.tolist() == [8, 24, 72, 216, 1079] and d.examples == 8 * d.n_micro_steps
    assert d.compilations <= 1  # SNGM, MSGD and SGD: one program for every (B, η) and split
    # the tuned η maximizes the tuning seeds' mean validation accuracy on each split
    assert np.all(np.take_along_axis(d.val_tune, d.tuned[..., None].astype(int), -1)[..., 0] == d.val_tune.max(-1))
    # the allowable batch of each method follows its definition on the split means
    acc = ev.split_accuracy.mean(0)
    for i, m in enumerate(ev.methods):
        ref = acc[i, :cfg["n_reference"]].max()
        ok = np.flatnonzero(acc[i] >= ref - cfg["margin"])
        assert ev.allowable[m]["estimate"] == ok.max()
    assert v.status in ("confirmed", "refuted", "inconclusive")


@pytest.mark.parametrize("change, name", [
    (dict(margin=0.0), "margin"), (dict(n_reference=5), "n_reference"), (dict(n_boot=10), "n_boot"),
    (dict(digits=dict(bsc.DIGITS["quick"], methods=["sgd", "msgd"])), "digits.methods"),
    (dict(digits=dict(bsc.DIGITS["quick"], n_splits=1)), "n_splits"),
    (dict(digits=dict(bsc.DIGITS["quick"], epochs=0)), "epochs"),
    (dict(digits=dict(bsc.DIGITS["quick"], eta_centres=dict(sngm=0.0, msgd=0.1, sgd=0.1))), r"eta_centres\['sngm'\]"),
])
def test_claim_rejects_bad_config_before_compiling(change, name):
    claim = get_claims([ID])[0]
    cfg = dict(claim.config("quick"), **change)
    before = engine.trace_count()
    with pytest.raises(InvalidParameter, match=rf"^{name} = "):
        claim.run(cfg, key=jax.random.key(0))  # validates, then calls the shared sweep
    assert engine.trace_count() == before


def _iv(est, low, high, top=4):
    return dict(estimate=est, low=low, high=high, censored=est >= top)


def _evidence(msgd=(2, 1, 3), sngm=(3, 2, 4), diff=(1, 0, 2), top=(0.03, 0.01, 0.05), edge=False):
    methods = ["sngm", "msgd"]
    acc = np.full((5, 2, 5), 0.9)
    tuned_edge = np.zeros((5, 2, 5), bool)
    tuned_edge[2, 0, 1] = edge
    paired = {"msgd": dict(mean=np.zeros(5), low=-np.ones(5) * 0.005, high=np.ones(5) * 0.005,
                           per_split=np.zeros((5, 5)))}
    return Evidence(dict(
        methods=methods, split_accuracy=acc, finding_confidence=0.9833,
        allowable={"sngm": _iv(*sngm), "msgd": _iv(*msgd)},
        sngm_minus_msgd=dict(estimate=diff[0], low=diff[1], high=diff[2], point_lower=diff[0],
                             point_upper=diff[0], censored=False),
        paired=paired, top_difference=dict(mean=top[0], low=top[1], high=top[2]),
        digits=dict(batch_sizes=[8, 24, 72, 216, 1079], methods=methods, tuned_at_edge=tuned_edge,
                    test=np.full((5, 2, 5, 2), 0.9), optimizer_steps=[540, 180, 60, 20, 4], diverged=np.zeros((5, 2, 5)),
                    split_seeds=list(range(5)), examples=4320)))


@pytest.mark.parametrize("kw, status", [
    (dict(), "confirmed"),
    (dict(diff=(-2, -3, -1)), "refuted"),                        # SNGM's allowable batch smaller
    (dict(top=(-0.02, -0.04, -0.01)), "refuted"),                # MSGD more accurate at the full batch
    (dict(diff=(0, -1, 1)), "inconclusive"),                     # Δ straddles
    (dict(top=(0.01, -0.01, 0.03)), "inconclusive"),             # difference at n straddles 0
    (dict(edge=True), "inconclusive"),                           # tuned η at a grid end
    (dict(msgd=(4, 3, bsc.OPEN)), "inconclusive"),               # premise: MSGD never degrades
    (dict(msgd=(3, 2, bsc.OPEN), diff=(-2, -3, -1)), "inconclusive"),  # premise not established
])
def test_verdict_follows_its_rule(kw, status):
    cfg = get_claims([ID])[0].config("full")
    v = rules_digits.allowable_batch(_evidence(**kw), cfg)
    assert v.status == status, v.summary
    if "premise" in v.summary.split("→")[-1]:
        assert status == "inconclusive"


def test_single_b_classes_are_mutually_exclusive():
    m = 0.01
    for low, high, cls in ((-0.005, 0.02, "non-inferior"), (-0.05, -0.02, "inferior"), (-0.02, 0.01, "undecided"),
                           (-0.05, -0.01, "undecided"), (-0.01, -0.01, "non-inferior")):
        assert rules_digits.single_b_class(low, high, m) == cls
    # an interval inside (−margin, 0) is non-inferior, never both inferior and non-inferior
    assert rules_digits.single_b_class(-0.003, -0.001, m) == "non-inferior"


def test_allowable_interval_uses_splits_as_units_and_leaves_the_top_open():
    rng = np.random.default_rng(0)
    acc = np.full((6, 5), 0.95) - np.array([0, 0, 0.002, 0.004, 0.006])[None]
    acc = acc + rng.normal(0, 0.001, acc.shape)
    fn = lambda s: int(bsc.allowable_index(s.mean(0), n_reference=2, margin=0.01))
    iv = bsc.grid_interval(acc, fn, top=4, rng=np.random.default_rng(1), n_boot=400, confidence=0.95)
    assert iv["estimate"] == 4 and iv["censored"] and iv["high"] == bsc.OPEN
    d = bsc.grid_difference_interval(acc[:, None].repeat(2, 1), lambda s: fn(s[:, 0]), lambda s: 2, top=4,
                                     rng=np.random.default_rng(1), n_boot=400, confidence=0.95)
    assert d["estimate"] == 2 and d["high"] == bsc.OPEN and d["point_upper"] == bsc.OPEN
