"""Stochastic Normalization (Kou, You, Long, Wang 2020): the layer against a well-kept
library's batch norm (Equinox, a test-only dependency), the mask draw, the fine-tuning
testbed and optimizer, and every outcome of both rules."""
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import quick
from simulations import engine, layers, optimizers
from simulations.claims.stochnorm import rules, runs
from simulations.keys import numpy_rng
from simulations.registry import Evidence
from simulations.testbeds import digits_finetune as dft
from theory.validation import InvalidParameter

F32 = float(np.finfo(np.float32).eps)


def _layer(seed=0, m=8, c=5):
    rng = np.random.default_rng(seed)
    f = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    x = f(rng.normal(size=(m, c)) * 1.5 + rng.normal(size=c))
    params = {"scale": f(rng.uniform(0.5, 2, c)), "offset": f(rng.normal(size=c))}
    state = {"mean": f(rng.normal(size=c)), "var": f(rng.uniform(0.3, 3, c))}
    return x, params, state


def _equinox_bn(params, state, c):
    """Equinox's BatchNorm in 'batch' mode with our layer's values. Its conventions,
    translated: ``momentum`` is the weight of the OLD statistics (0.9 here = our 0.1); the
    running variance moves towards the biased batch variance; inference divides the running
    statistics by 1 − momentum^counter (zero-debiasing), which is exactly 1 once the counter
    is large (0.9^10000 underflows), so a large counter makes them our moving statistics."""
    bn, st = eqx.nn.make_with_state(eqx.nn.BatchNorm)(c, "batch", momentum=0.9, mode="batch")
    bn = eqx.tree_at(lambda b: (b.weight, b.bias), bn, (params["scale"], params["offset"]))
    st = st.set(bn.batch_state_index, (state["mean"], state["var"]))
    st = st.set(bn.batch_counter, jnp.array(10_000))
    train = jax.vmap(lambda x, s: bn(x, s, inference=False), axis_name="batch", in_axes=(0, None),
                     out_axes=(0, None))
    infer = jax.vmap(lambda x, s: bn(x, s, inference=True), axis_name="batch", in_axes=(0, None),
                     out_axes=(0, None))
    return bn, st, train, infer


def _close(a, b, k=64):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.max(np.abs(a - b) / np.maximum(1, np.abs(b))) <= k * F32


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_p1_equals_equinox_batch_norm_in_training_and_evaluation(seed):
    x, params, state = _layer(seed)
    c = x.shape[1]
    bn, st, train, infer = _equinox_bn(params, state, c)
    y_eqx, st_eqx = train(x, st)
    mean_eqx, var_eqx = st_eqx.get(bn.batch_state_index)
    # training output and running statistics, biased-variance convention: equal
    y, new = layers.stoch_norm(params, state, x, p=1, unbiased=False)
    _close(y, y_eqx)
    _close(new["mean"], mean_eqx)
    _close(new["var"], var_eqx)
    # the PyTorch convention (unbiased variance) translated from Equinox's biased one:
    # new − (1 − λ)·old = λσ²_B, scaled by m/(m − 1)
    y_u, new_u = layers.stoch_norm(params, state, x, key=jax.random.key(seed), p=1.0)
    m = x.shape[0]
    old = np.asarray(state["var"], np.float64)
    _close(y_u, y_eqx)
    _close(np.asarray(new_u["var"]) - 0.9 * old, (np.asarray(var_eqx) - 0.9 * old) * m / (m - 1))
    # evaluation: Equinox inference with the same running statistics, for any p
    y_inf, _ = infer(x, st)
    for p in (0.0, 0.5, 1.0):
        y_ev, st_ev = layers.stoch_norm(params, state, x, key=jax.random.key(3), p=p, train=False)
        _close(y_ev, y_inf)
        assert all(np.array_equal(st_ev[k], state[k]) for k in state)
    # batch_norm is the p = 1 case, bitwise
    y_bn, new_bn = layers.batch_norm(params, state, x)
    assert np.array_equal(y_bn, y_u) and np.array_equal(new_bn["var"], new_u["var"])


def test_the_mask_is_drawn_per_channel_per_forward_pass():
    x, params, state = _layer(4, m=16, c=8)
    y1 = layers.stoch_norm(params, state, x, mask=jnp.ones(8))[0]
    y0 = layers.stoch_norm(params, state, x, mask=jnp.zeros(8))[0]
    masks = []
    for i in range(200):
        y = layers.stoch_norm(params, state, x, key=jax.random.key(i), p=0.5)[0]
        batch = np.isclose(y, y1, rtol=0, atol=1e-6)
        moving = np.isclose(y, y0, rtol=0, atol=1e-6)
        assert np.all(batch | moving)          # every entry is one of the two branches
        # one s per channel: all 16 examples of a channel took the same branch
        assert np.all(batch.all(axis=0) | moving.all(axis=0))
        masks.append(batch.all(axis=0))
        # and it is the documented draw: Bernoulli(p) of shape (C,) from the pass's key
        assert np.array_equal(batch.all(axis=0), np.asarray(layers.draw_mask(jax.random.key(i), 0.5, 8)) == 1)
    masks = np.array(masks)
    assert 0 < masks.mean() < 1 and len({tuple(r) for r in masks}) > 100  # passes differ
    # the same key gives the same mask; p = 0 and p = 1 are deterministic
    k = jax.random.key(7)
    assert np.array_equal(layers.stoch_norm(params, state, x, key=k, p=0.5)[0],
                          layers.stoch_norm(params, state, x, key=k, p=0.5)[0])
    assert np.array_equal(layers.stoch_norm(params, state, x, key=k, p=0.0)[0], y0)
    assert np.array_equal(layers.stoch_norm(params, state, x, key=k, p=1.0)[0], y1)
    with pytest.raises(ValueError, match="p = 0.5 needs a key"):
        layers.stoch_norm(params, state, x, p=0.5)


def test_the_moving_branch_is_affine_in_x_and_carries_no_gradient_to_the_statistics():
    x, params, state = _layer(5)
    f = lambda x: layers.stoch_norm(params, state, x, mask=jnp.zeros(5))[0].sum()  # noqa: E731
    expect = np.broadcast_to(params["scale"] / np.sqrt(state["var"] + layers.EPS), x.shape)
    np.testing.assert_allclose(jax.jit(jax.grad(f))(x), expect, rtol=1e-6)
    g = jax.jit(jax.grad(lambda s: layers.stoch_norm(params, s, x, mask=jnp.ones(5))[1]["mean"].sum()))(state)
    assert all(np.all(np.asarray(v) == 0) for v in g.values())


def test_padded_batch_uses_its_real_examples_only():
    x, params, state = _layer(6)
    pad = jnp.concatenate([x, 100 + x])
    y, new = layers.stoch_norm(params, state, pad, p=1, weights=jnp.arange(16) < 8)
    y_ref, new_ref = layers.batch_norm(params, state, x)
    np.testing.assert_allclose(y[:8], y_ref, rtol=1e-5, atol=1e-6)
    for k in new:
        np.testing.assert_allclose(new[k], new_ref[k], rtol=1e-6)


# --------------------------------------------------------------------- the network
@pytest.mark.parametrize("widths", [(32,), (32, 16)])
def test_bn_mlp_two_and_three_layers(widths):
    net, stats = dft.init_bn_mlp(key=jax.random.key(0), widths=widths, n_out=10)
    x = jax.random.uniform(jax.random.key(1), (12, 64))

    @jax.jit
    def both(net, stats, x):
        logits, new = dft.bn_mlp(net, stats, x, key=jax.random.key(2), p=0.5)
        h = x  # p = 1 composes batch norm layer by layer
        for layer, st in zip(net["hidden"], stats):
            h = jax.nn.relu(layers.batch_norm(layer["norm"], st, h @ layer["w"])[0])
        return logits, new, dft.bn_mlp(net, stats, x, p=1)[0], h @ net["head"]["w"] + net["head"]["b"]
    logits, new, bn, by_hand = both(net, stats, x)
    assert logits.shape == (12, 10) and len(new) == len(widths)
    np.testing.assert_allclose(bn, by_hand, rtol=1e-6, atol=1e-6)


def test_finetune_sgd_applies_the_state_and_trains_the_rest():
    params = {"body": jnp.ones(3), "head": jnp.ones(2), "state": {"stats": jnp.arange(3.0)}}
    grads = {"body": jnp.ones(3), "head": jnp.ones(2),
             "state": {"stats": jnp.arange(3.0) - jnp.array([5.0, 6.0, 7.0])}}  # old − new
    opt = optimizers.finetune_sgd(0.1, head_multiplier=10.0, weight_decay=0.0, momentum=0.0)
    upd, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(upd["body"], -0.1)
    np.testing.assert_allclose(upd["head"], -1.0)
    np.testing.assert_array_equal(params["state"]["stats"] + upd["state"]["stats"], [5.0, 6.0, 7.0])
    with pytest.raises(ValueError, match="exactly the parts"):
        opt.init({"body": jnp.ones(1)})


def test_transfer_tasks_and_the_trajectory_partition(key):
    (xs, ys), (xt, yt) = dft.transfer_tasks(numpy_rng(key), gamma=2.0)
    assert np.array_equal(np.bincount(ys), np.bincount(yt)) and len(ys) == len(yt) > 800
    src_rows = {r.tobytes() for r in xs}
    assert not any((np.sqrt(r)).tobytes() in src_rows for r in xt)  # disjoint images
    tb = dft.make_finetune(xs, ys, dft.scratch_start(2), he_init=True, batch_size=20)
    params = jax.jit(lambda k: tb.init(key=k))(key)
    rank, y = np.asarray(params["state"]["rank"]), np.asarray(tb.y)
    for c in range(10):  # within a class the ranks are a permutation of 0 .. count − 1
        assert sorted(rank[y == c]) == list(range(int((y == c).sum())))
    # one step: the gradient of the loss, the state's entry old − new (ranks: 0)
    hp = dict(p=jnp.float32(0.5), shots=jnp.float32(1.0))
    g = jax.jit(lambda p, k: tb.gradient(p, key=k, hparams=hp, step=0))(params, jax.random.key(1))
    assert set(g) == {"body", "head", "state"} and np.all(np.asarray(g["state"]["rank"]) == 0)
    assert np.all(np.isfinite(np.asarray(g["body"][0]["w"])))
    assert np.any(np.asarray(g["state"]["stats"][0]["mean"]) != 0)
    for bad, match in [(dict(n_max=80, n_val=15), "n_max \\+ n_val = 95"),
                       (dict(batch_size=5000), "batch_size = 5000")]:
        with pytest.raises(InvalidParameter, match=match):
            dft.make_finetune(xs, ys, dft.scratch_start(1), he_init=True, **bad)


def test_three_layer_network_fine_tunes_in_the_engine(key):
    (xs, ys), _ = dft.transfer_tasks(numpy_rng(key))
    tb = dft.make_finetune(xs, ys, dft.scratch_start(2, (32, 32)), he_init=True, widths=(32, 32))
    hp = {k: np.full(2, v) for k, v in dict(learning_rate=0.05, head_multiplier=1.0, weight_decay=5e-4,
                                            momentum=0.9, p=0.5, shots=20.0).items()}
    res = engine.simulate(tb, optimizers.make_finetune_sgd, hp, key=key, n_seeds=2, n_steps=40,
                          record_every=40, metrics={"test": dft.test_accuracy})
    assert res.n_diverged.sum() == 0 and np.all(res.records["test"][..., -1] > 0.5)


# ---------------------------------------------------------------- stochnorm.layer
def _edit(ev, **changes):
    return Evidence({**ev.to_dict(), **changes})


def test_layer_rule_is_violated_by_contradicting_evidence():
    _, cfg, ev, v = quick("stochnorm.layer")
    assert v.status == "holds" and ev.distinct_masks > 1
    bad_bn = dict(ev.bn_errors.to_dict(), output=1e-3)
    assert rules.layer(_edit(ev, bn_errors=bad_bn), cfg).status == "violated"
    assert rules.layer(_edit(ev, shared_by_examples=False), cfg).status == "violated"
    assert rules.layer(_edit(ev, state_spread_over_masks=1e-9), cfg).status == "violated"
    # channel frequencies far off p (as if p were 0.6)
    off = ev.first_moment_mean + 0.1
    assert rules.layer(_edit(ev, first_moment_mean=off), cfg).status == "violated"
    moments = [dict(m.to_dict(), var_err=1e-3) for m in ev.moments]
    assert rules.layer(_edit(ev, moments=moments), cfg).status == "violated"


def test_layer_run_rejects_bad_sizes_before_compiling():
    _, cfg, _, _ = quick("stochnorm.layer")
    with pytest.raises(InvalidParameter, match="channels = 12"):
        runs.layer(dict(cfg, channels=12), key=jax.random.key(0))
    with pytest.raises(InvalidParameter, match="p = 1.2"):
        runs.layer(dict(cfg, ps=[0.5, 1.2]), key=jax.random.key(0))


# ------------------------------------------------------------- stochnorm.few_shot
def test_few_shot_measurement():
    _, cfg, ev, v = quick("stochnorm.few_shot")
    assert ev.compilations <= 1  # pretraining and every arm: one program
    assert ev.test_at_best.shape == (len(ev.arms), len(cfg["shots"]), cfg["n_eval_seeds"])
    assert ev.source_test_accuracy > 0.8 and ev.pretrain_diverged == 0
    # BN is not affected by its starting statistics while training: control BN and BN
    # differ only through the evaluation-time moving statistics, which forget their start
    names = list(ev.arms)
    gap = np.abs(ev.test_mean[names.index("BN")] - ev.test_mean[names.index("control BN")])
    assert np.max(gap) < 0.02


def test_a_new_grid_does_not_recompile():
    _, cfg, _, _ = quick("stochnorm.few_shot")
    before = engine.trace_count()
    ev = runs.few_shot(dict(cfg, etas=[2e-3, 2e-2], p_grid=[0.5]), key=jax.random.key(1))
    assert engine.trace_count() == before and ev["compilations"] == 0


@pytest.mark.parametrize("bad, match", [
    (dict(shots=[1, 60]), "shots = 60"), (dict(shots=[5, 1]), "increasing"),
    (dict(p_main=0.3), "p_main = 0.3"), (dict(etas=[0.01]), "etas"),
    (dict(shots=[10, 20]), "small_max")])
def test_few_shot_rejects_bad_configs_before_compiling(bad, match):
    _, cfg, _, _ = quick("stochnorm.few_shot")
    before = engine.trace_count()
    with pytest.raises(InvalidParameter, match=match):
        runs.few_shot(dict(cfg, **bad), key=jax.random.key(0))
    assert engine.trace_count() == before


def _arms_evidence(gate, gain_small, gain_large, gain_ctrl, sd=0.01, n_seeds=24, seed=0):
    """Hand-made evidence: per-seed accuracies with the given mean differences (paired
    noise of sd per seed), n = 1, 5, 20."""
    rng = np.random.default_rng(seed)
    names = ["BN", "StochNorm(0.5)", "scratch", "control BN", "control StochNorm(0.5)"]
    base = np.array([0.75, 0.88, 0.91])[:, None] + rng.normal(0, 0.05, (3, n_seeds))
    noise = lambda: rng.normal(0, sd, (3, n_seeds))  # noqa: E731
    gain = np.array([gain_small, gain_small, gain_large])[:, None]
    acc = np.stack([base, base + gain + noise(), base - gate + noise(), base + noise(),
                    base + noise() + gain_ctrl])
    return Evidence(dict(arms=names, shots=[1, 5, 20], etas=[0.003, 0.01], test_at_best=acc,
                         test_mean=acc.mean(-1), best_index=np.zeros((5, 3), int),
                         best_eta=np.full((5, 3), 0.003), diverged_at_best=np.zeros((5, 3)),
                         source_test_accuracy=0.93, n_source=890, n_target=890))


_FEW_CFG = dict(small_max=5, large_min=20, threshold=0.01, confidence=0.95, p_main=0.5,
                n_tune_seeds=4, n_eval_seeds=24, n_steps=60, batch_size=20, widths=[64], gamma=2.0)


@pytest.mark.parametrize("args, expected, reason", [
    ((0.2, 0.04, 0.0, 0.0), "confirmed", "all parts supported"),
    ((0.2, 0.0, 0.0, 0.0), "refuted", "beats BN"),                   # no gain at small n
    ((0.2, 0.04, 0.08, 0.0), "refuted", "shrinks"),                  # the gain grows with n
    ((0.2, 0.04, 0.0, 0.04), "refuted", "vanishes"),                 # control keeps the gain
    ((0.0, 0.04, 0.0, 0.0), "inconclusive", "no transfer"),         # gate: nothing to protect
    ((0.2, 0.012, 0.0, 0.0), "inconclusive", "unresolved"),          # gain straddles 1 pp
])
def test_few_shot_rule_outcomes(args, expected, reason):
    v = rules.few_shot(_arms_evidence(*args), _FEW_CFG)
    assert v.status == expected, v.summary
    assert reason in (v.summary if expected != "confirmed" else "all parts supported")
