"""DReg (Yuan, Hua, Zhou, Yu 2020): the replicated-layer testbed, the classifier and mixture
testbeds, the optax pieces, the sweep's read-off, and every outcome of the three rules
(the theorems hold at quick fidelity through the registry-wide contract test)."""
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import quick
from simulations import engine, optimizers
from simulations.claims.dreg import rules, runs, runs_sweep
from simulations.registry import Evidence
from simulations.testbeds import digits, digits_mlp, dreg, mixture
from theory import dreg as th
from theory.validation import InvalidParameter

LAYERS = ("w1", "w2")


@pytest.fixture(scope="module")
def base():
    return mixture.make_digits_classifier(64)


def _f32(tree):
    return jax.tree_util.tree_map(
        lambda x: jnp.asarray(x, jnp.float32) if np.issubdtype(np.asarray(x).dtype, np.floating)
        else jnp.asarray(x), tree)


# ---------------------------------------------------------------------- testbeds
@pytest.mark.parametrize("kappa, offset", [(1.0, 1.0), (2.0, 0.01), (1.0, 0.0)])
def test_dreg_gradient_is_autodiff_of_the_replicated_forward(base, kappa, offset):
    """The pulled-back oracle equals jax.grad of the explicit forward (W + W′)x/κ on the
    same minibatch, and both copies get the same gradient G/κ (fact 1)."""
    tb = _f32(dreg.make_dreg(base, kappa=kappa, offset=offset))
    b = _f32(base)
    params = tb.init(key=jax.random.key(3))
    key = jax.random.key(4)
    idx = jax.random.randint(key, (b.batch_size,), 0, b.y_train.shape[0])  # DigitsMLP's draw

    def forward(p):
        net = dict(p["net"])
        for n in LAYERS:
            net[n] = (p["net"][n] + p["copy"][n]) / kappa
        return digits.cross_entropy(net, b.x_train[idx], b.y_train[idx])

    got, want = tb.gradient(params, key=key), jax.grad(forward)(params)
    flat = lambda t: np.asarray(jax.flatten_util.ravel_pytree(t)[0])
    np.testing.assert_allclose(flat(got), flat(want), rtol=1e-5, atol=1e-7)
    for n in LAYERS:
        np.testing.assert_array_equal(got["net"][n], got["copy"][n])


def test_dreg_init_keeps_the_plain_networks_function(base):
    key = jax.random.key(5)
    w0 = base.init(key=key)
    for kappa, offset in [(1.0, 0.0), (2.0, 0.0), (1.0, 1.0), (2.0, 0.5)]:
        tb = dreg.make_dreg(base, kappa=kappa, offset=offset)
        p = tb.init(key=key)
        merged = tb.merge(p)
        for n in w0:
            np.testing.assert_allclose(merged[n], w0[n], rtol=0, atol=2e-7 * (1 + offset))
        if offset == 0:  # powers of two: an exact replica, bit for bit
            for n in LAYERS:
                np.testing.assert_array_equal(merged[n], w0[n])
                np.testing.assert_array_equal(p["net"][n], p["copy"][n])
    # independent copies (ρ = 1): W − W′ is κ·D with D a second draw of the init law
    p = dreg.make_dreg(base, kappa=1.0, offset=1.0).init(key=key)
    d = p["net"]["w1"] - p["copy"]["w1"]
    assert abs(float(jnp.std(d)) / np.sqrt(2 / 64) - 1) < 0.1
    assert abs(float(jnp.corrcoef(d.ravel(), w0["w1"].ravel())[0, 1])) < 0.1


def test_inactive_dreg_is_the_plain_network_bit_for_bit(base):
    tb = _f32(dreg.make_dreg(base, active=False))
    b = _f32(base)
    key = jax.random.key(6)
    p = tb.init(key=key)
    w0 = b.init(key=key)
    for n in w0:
        np.testing.assert_array_equal(tb.merge(p)[n], w0[n])
    for n in LAYERS:
        assert not np.asarray(p["copy"][n]).any()
    g, g0 = tb.gradient(p, key=key), b.gradient(w0, key=key)
    for n in g0:
        np.testing.assert_array_equal(g["net"][n], g0[n])
    assert float(tb.loss(p)) == float(b.loss(w0))


@pytest.mark.parametrize("kw, match", [
    (dict(kappa=0.0), "kappa = 0 is not allowed"),
    (dict(offset=-0.5), "offset = -0.5 is not allowed"),
    (dict(layers=("w3",)), "layer = 'w3' is not allowed"),
    (dict(layers=("b1",)), "need a 2-d weight"),
    (dict(layers=()), "layers = 0 is not allowed"),
    (dict(active=1), "active = 1 is not allowed"),
])
def test_make_dreg_rejects_bad_input(base, kw, match):
    with pytest.raises(InvalidParameter, match=match):
        dreg.make_dreg(base, **kw)


def test_classifier_full_batch_is_the_exact_gradient_and_small_batches_match_digits_mlp():
    full = _f32(mixture.make_digits_classifier(1079))
    p = full.init(key=jax.random.key(0))
    g, exact = full.gradient(p, key=jax.random.key(1)), jax.grad(full.loss)(p)
    for n in p:
        np.testing.assert_array_equal(g[n], exact[n])
    small = _f32(mixture.make_digits_classifier(32))
    ref = _f32(digits_mlp.make_digits_mlp(32))
    for n in p:
        np.testing.assert_array_equal(small.gradient(p, key=jax.random.key(2))[n],
                                      ref.gradient(p, key=jax.random.key(2))[n])
    with pytest.raises(InvalidParameter, match="B = 1080 is not allowed"):
        mixture.make_digits_classifier(1080)


def test_mixture_splits(key):
    s = mixture.mixture_splits(key=key, clusters=3, label_noise=0.2)
    assert [len(x.labels) for x in s] == [1079, 359, 359]
    assert s.train.features.shape == (1079, 64) and s.test.labels.max() < 10
    again = mixture.mixture_splits(key=key, clusters=3, label_noise=0.2)
    np.testing.assert_array_equal(again.train.features, s.train.features)
    other = mixture.mixture_splits(key=jax.random.key(1), clusters=3, label_noise=0.2)
    assert not np.array_equal(other.train.features, s.train.features)
    # the noiseless labels are those of the nearest centre far more often than chance
    tb = mixture.make_classifier(s, 1079)
    assert tb.n_train == 1079
    for kw, match in [(dict(clusters=0), "clusters = 0"), (dict(noise=0.0), "noise = 0"),
                      (dict(label_noise=1.0), "label_noise = 1"), (dict(n_test=0), "n_test = 0")]:
        with pytest.raises(InvalidParameter, match=match):
            mixture.mixture_splits(key=key, **kw)


# ----------------------------------------------------------------- optax pieces
def _dreg_params(rng, zero_copy=False):
    net = {"w1": rng.standard_normal((4, 3)), "b1": rng.standard_normal(3),
           "w2": rng.standard_normal((3, 2)), "b2": rng.standard_normal(2)}
    copy = {n: (np.zeros_like(net[n]) if zero_copy else rng.standard_normal(net[n].shape)) for n in LAYERS}
    return {"net": net, "copy": copy}


def test_contrastive_penalty_adds_the_closed_form_gradient(rng):
    params = _dreg_params(rng)
    weights = np.array([[0.3, 0.0, 0.2], [0.0, 1.5, 0.0]])
    margin = 1e3
    zeros = jax.tree_util.tree_map(np.zeros_like, params)
    with jax.enable_x64(True):
        t = optimizers.contrastive_penalty(jnp.asarray(weights), margin, LAYERS)
        upd, _ = t.update(zeros, t.init(params), params)
    for i, n in enumerate(LAYERS):
        W, Wc = params["net"][n], params["copy"][n]
        gW = sum(weights[i, k] * th.regularizer_grad(r, W, Wc, margin)[0] for k, r in enumerate(th.REGULARIZERS))
        gWc = sum(weights[i, k] * th.regularizer_grad(r, W, Wc, margin)[1] for k, r in enumerate(th.REGULARIZERS))
        np.testing.assert_allclose(upd["net"][n], gW, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(upd["copy"][n], gWc, rtol=1e-10, atol=1e-13)
    assert not np.asarray(upd["net"]["b1"]).any()


def test_zero_weight_adds_an_exact_zero_even_at_a_zero_copy(rng):
    params = _dreg_params(rng, zero_copy=True)
    updates = jax.tree_util.tree_map(lambda x: np.full_like(x, 0.25), params)
    t = optimizers.contrastive_penalty(jnp.zeros((2, 3)), 10.0, LAYERS)
    out, _ = t.update(updates, t.init(params), params)
    for a, b in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(updates)):
        np.testing.assert_array_equal(a, b)  # no NaN, no change
    plain = params["net"]
    out, _ = t.update(plain, t.init(plain), plain)  # the plain network passes through
    assert out is plain


def test_scale_layers_on_both_parametrizations(rng):
    t = optimizers.scale_layers(jnp.array([2.0, 0.5]), LAYERS)
    params = _dreg_params(rng)
    out, _ = t.update(params, t.init(params), params)
    np.testing.assert_allclose(out["copy"]["w2"], 0.5 * params["copy"]["w2"], rtol=1e-6)
    np.testing.assert_allclose(out["net"]["w1"], 2.0 * params["net"]["w1"], rtol=1e-6)
    np.testing.assert_array_equal(out["net"]["b1"], params["net"]["b1"])
    out, _ = t.update(params["net"], t.init(params["net"]), params["net"])
    np.testing.assert_allclose(out["w2"], 0.5 * params["net"]["w2"], rtol=1e-6)


def test_dreg_sgd_on_the_plain_network_is_sgd_with_a_layer_learning_rate(rng):
    params = _dreg_params(rng)["net"]
    grads = jax.tree_util.tree_map(lambda x: rng.standard_normal(x.shape), params)
    hp = runs.hparams([dict(factor=[2.0, 1.0])], eta=0.1, beta=0.9, margin=1.0)
    opt = optimizers.dreg_sgd(LAYERS)({k: v[0] for k, v in hp.items()}, key=None)
    ref = optax.multi_transform({"fast": optax.sgd(0.2, momentum=0.9), "rest": optax.sgd(0.1, momentum=0.9)},
                                {n: ("fast" if n == "w1" else "rest") for n in params})
    s, s_ref = opt.init(params), ref.init(params)
    for _ in range(3):
        u, s = opt.update(grads, s, params)
        u_ref, s_ref = ref.update(grads, s_ref, params)
    for n in params:
        np.testing.assert_allclose(u[n], u_ref[n], rtol=1e-6)


def test_new_lambda_and_eta_values_do_not_recompile(base):
    tb = dreg.make_dreg(base)
    common = dict(n_seeds=2, n_steps=4, record_every=2, metrics={"loss": runs_sweep._loss})
    hp = runs.hparams([dict(factor=1.0, reg="cosine", lam=np.array([0.5, 0.0]))] * 3, eta=0.1, beta=0.0,
                      margin=10.0)
    engine.simulate(tb, optimizers.dreg_sgd(LAYERS), hp, key=jax.random.key(0), **common)
    before = engine.trace_count()
    hp2 = dict(hp, learning_rate=hp["learning_rate"] * 3, dreg_lambda=hp["dreg_lambda"][..., ::-1] * 2)
    engine.simulate(dreg.make_dreg(base, kappa=2.0, offset=0.3), optimizers.dreg_sgd(LAYERS), hp2,
                    key=jax.random.key(1), **common)
    assert engine.trace_count() == before  # new λ, η, R, κ, ρ: the same compiled program


# ------------------------------------------------------------------- the sweep
def test_budget_keeps_the_epoch_count():
    for B in (16, 64, 256, 1079):
        T, r = runs_sweep.budget(B, 1079, 20, 20)
        assert T % r == 0 and abs(T * B / 1079 - 20) <= 0.5 * r * B / 1079 + 1e-9
    assert runs_sweep.budget(1079, 1079, 20, 20) == (20, 1)


def test_arm_specs_and_hparams():
    arm = runs_sweep.check_arm(dict(kind="dreg", layer="w2", reg="unitwise", lam=0.5, beta=0.9))
    hp = runs_sweep.arm_hparams(arm, kappa=1.0)
    np.testing.assert_array_equal(hp["factor"], [0.5, 1.0])
    np.testing.assert_array_equal(hp["lam"], [0.0, 0.5])
    assert runs_sweep.arm_label(arm) == "DReg (w2, unitwise, λ = 0.5), β = 0.9"
    np.testing.assert_array_equal(runs_sweep.arm_hparams(dict(kind="baseline"), 2.0)["factor"], [2.0, 2.0])
    for bad, match in [(dict(kind="sgd"), "arm kind"), (dict(kind="control", layer="w9"), "arm layer"),
                       (dict(kind="dreg", layer="w1", reg="l1", lam=1.0), "arm reg"),
                       (dict(kind="dreg", layer="w1", reg="cosine", lam=0.0), "arm lam")]:
        with pytest.raises(InvalidParameter, match=match):
            runs_sweep.check_arm(bad)


def test_steps_to_target_and_tuning():
    steps = np.array([0, 10, 20, 30])
    assert runs_sweep.steps_to_target(steps, np.array([4.0, 2.0, 1.0, 0.5]), 1.0) == (20.0, False)
    s, c = runs_sweep.steps_to_target(steps, np.array([4.0, 2.0, 0.5, 0.25]), 1.0)
    assert s == pytest.approx(15.0) and not c  # halfway in log-loss between 2 and 0.5
    assert runs_sweep.steps_to_target(steps, np.array([4.0, 3.0, 2.0, 1.5]), 1.0) == (30.0, True)
    val = np.zeros((1, 3, 4))
    val[0, 1] = 0.9
    val[0, 2, 0] = 5.0  # split 0 prefers η index 2, but its own data never tunes its η
    idx = runs_sweep.loo_tuned_index(val, np.zeros_like(val))
    np.testing.assert_array_equal(idx, [[1, 2, 2, 2]])


def test_sweep_rejects_bad_configurations():
    cfg = quick("dreg.large_batch")[1]["sweep"]
    for change, match in [(dict(n_splits=2), "n_splits = 2"), (dict(testbeds=["cifar"]), "testbed"),
                          (dict(large_batch=512), "large_batch = 512"), (dict(eta_exponents=[0, 1]), "eta_exponents")]:
        before = engine.trace_count()
        with pytest.raises(InvalidParameter, match=match):
            runs_sweep.sweep.fn(dict(cfg, **change), key=jax.random.key(0))
        assert engine.trace_count() == before


def test_exact_run_rejects_bad_configurations():
    cfg = quick("dreg.reparametrization")[1]["exact"]
    for change, match in [(dict(kappas=[1.0, 0.0]), "kappa = 0"), (dict(offsets=[-1.0]), "offset = -1"),
                          (dict(momenta=[1.0]), "momentum = 1"), (dict(n_steps=1), "n_steps = 1")]:
        before = engine.trace_count()
        with pytest.raises(InvalidParameter, match=match):
            runs.exact.fn(dict(cfg, **change), key=jax.random.key(0))
        assert engine.trace_count() == before


# --------------------------------------------------------------------- theorems
def _edit(ev, **changes):
    d = ev.to_dict()
    d["exact"] = {**d["exact"], **changes}
    return Evidence(d)


@pytest.mark.parametrize("name", ["control_ratio", "baseline_ratio", "margin_ratio", "delta_const_ratio"])
def test_reparametrization_is_violated_beyond_the_float_rule(name):
    _, cfg, ev, v = quick("dreg.reparametrization")
    assert v.status == "holds"
    x = np.array(ev.exact[name])
    x[0, -1, -1] = 1.5
    assert rules.reparametrization(_edit(ev, **{name: x}), cfg).status == "violated"


def test_reparametrization_needs_the_wrong_factor_resolved():
    _, cfg, ev, _ = quick("dreg.reparametrization")
    assert rules.reparametrization(_edit(ev, wrong_factor_ratio=np.ones_like(ev.exact.wrong_factor_ratio)),
                                   cfg).status == "violated"


@pytest.mark.parametrize("name, value", [("inert_delta_ratio", 2.0), ("inert_weff_ratio", 2.0),
                                         ("first_step_ratio", 2.0), ("first_step_size_ratio", 10.0)])
def test_inert_at_copy_is_violated_by_contradicting_evidence(name, value):
    _, cfg, ev, v = quick("dreg.inert_at_copy")
    assert v.status == "holds"
    x = np.array(ev.exact[name])
    x[...] = value
    assert rules.inert_at_copy(_edit(ev, **{name: x}), cfg).status == "violated"


# ------------------------------------------------------------------- hypothesis
def _block(rng, B, *, dreg_speed=1.0, ctrl_speed=1.0, gain=0.0, noise=0.002, base_acc=0.9,
           censor=False, edge=False, S=6):
    """A hand-made sweep block: arms baseline, LR control (w1), DReg (w1, cosine, 1); η grid
    of 3 with the middle one best in validation; loss 2·exp(−t·speed/20) over 40 steps."""
    specs = [dict(kind="baseline", layer=None, reg=None, lam=0.0, beta=0.0),
             dict(kind="control", layer="w1", reg=None, lam=0.0, beta=0.0),
             dict(kind="dreg", layer="w1", reg="cosine", lam=1.0, beta=0.0)]
    steps = np.arange(0, 41, 2)
    speeds = [1.0, ctrl_speed, dreg_speed]
    loss = np.stack([np.broadcast_to(2 * np.exp(-steps * s / 20), (3, S, steps.size)) for s in speeds])
    loss = loss * np.exp(0.01 * rng.standard_normal(loss.shape))
    if censor:  # DReg never reaches the target: censored, and slower than it looks
        loss[2] = 2.0
    val = np.full((3, 3, S), 0.5)
    val[:, 1] = 0.9
    if edge:
        val[2, 0] = 0.95
    acc = base_acc + noise * rng.standard_normal((3, 3, S))
    acc[2] += gain
    acc[1] += 0.0
    return dict(batch_size=B, steps=steps, n_steps=40, arms=["baseline", "LR control (w1)", "DReg"],
                specs=specs, loss=loss, val=val, test=acc, diverged=np.zeros((3, 3, S)))


def _evidence(rng, *, gap=0.03, **kw):
    small = _block(rng, 16, base_acc=0.9 + gap)
    return Evidence({"sweep": dict(testbeds=["digits"], batch_sizes=[16, 256], etas=[0.5, 1, 2],
                                   digits={"B16": small, "B256": _block(rng, 256, **kw)})})


_CFG = {"sweep": dict(large_batch=256, small_batch=16, kappa=1.0, offset=1.0, epochs=20),
        "primary": dict(layer="w1", reg="cosine", lam=1.0)}


@pytest.mark.parametrize("kw, expected, reason", [
    (dict(dreg_speed=2.0, gain=0.03), "confirmed", "all parts supported"),
    (dict(dreg_speed=0.7, gain=0.03), "refuted", "faster than the baseline"),
    (dict(dreg_speed=2.0, ctrl_speed=2.0, gain=0.03), "refuted", "faster than the LR control"),
    (dict(dreg_speed=2.0, gain=-0.02), "refuted", "more accurate"),
    (dict(dreg_speed=2.0, gain=0.03, noise=0.05), "inconclusive", "unresolved"),
    (dict(dreg_speed=2.0, gain=0.03, gap=-0.02), "inconclusive", "no gap to close"),
    (dict(dreg_speed=2.0, gain=0.03, censor=True), "refuted", "DReg misses the target"),
    (dict(dreg_speed=2.0, gain=0.03, edge=True), "inconclusive", "end of the grid"),
])
def test_large_batch_rule_outcomes(rng, kw, expected, reason):
    gap = kw.pop("gap", 0.03)
    v = rules.large_batch(_evidence(rng, gap=gap, **kw), _CFG)
    assert v.status == expected, v.summary
    assert reason in v.summary


def test_large_batch_at_quick_fidelity():
    claim, cfg, ev, v = quick("dreg.large_batch")
    sw = ev.sweep
    assert sw.compilations <= len(sw.batch_sizes)  # one program per batch size, both testbeds
    for name in sw.testbeds:  # the gate needs two batch sizes
        assert v.measured[name]["gate"] == "no small batch at this fidelity"
    assert v.status in ("inconclusive", "refuted")  # never confirmed without the gate
    # the margin regularizer depends on W − W′ only: DReg with it IS the LR control
    for name in sw.testbeds:
        margin = [c for c in v.measured[name]["map"] if "margin" in c["arm"]][0]
        assert margin["control"]["speed"][0] == pytest.approx(0.0, abs=0.02)
        assert margin["control"]["gain"][0] == pytest.approx(0.0, abs=0.005)


@pytest.mark.parametrize("speed, censored, expected", [
    ((0.5, 0.4, 0.6), [0.0, 0.0], True),     # clearly faster, nothing censored
    ((0.5, 0.4, 0.6), [0.2, 0.0], None),     # DReg censored: its speed-up is only an upper bound
    ((-0.5, -0.6, -0.4), [1.0, 0.0], False),  # ... which suffices to show it is not faster
    ((0.0, -0.1, 0.05), [0.0, 0.2], None),   # the other arm censored: a lower bound, not "not faster"
    ((0.5, 0.4, 0.6), [0.0, 0.6], True),     # ... which suffices to show DReg is faster
])
def test_censored_steps_are_bounds(speed, censored, expected):
    c = dict(speed=speed, gain=(0.0, 0.0, 0.0), censored=censored, edge=False)
    assert rules._speed_finding("x", c).supported is expected
    assert rules._speed_finding("x", dict(c, edge=True)).supported is None
