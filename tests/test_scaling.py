"""The batch-size frame: the NQM and regression testbeds and optimizers in the engine (one
program for every B, η, β, p, γ), the shared sweep helpers, and every outcome of every
rule (theorems violated by evidence against them; hypotheses confirmed, refuted and
inconclusive from hand-edited evidence of the quick runs)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import quick
from simulations import batch_scaling as bsc
from simulations import engine, optimizers, stats
from simulations.claims.scaling import rules, runs
from simulations.registry import Evidence, get_claims
from simulations.testbeds import batch_regression as br
from simulations.testbeds import nqm as nqm_tb
from theory.validation import InvalidParameter


def _edit(ev, path, value):
    """Evidence with ``ev[path[0]][path[1]]… = value``."""
    d = ev.to_dict()
    node = d
    for k in path[:-1]:
        node[k] = dict(node[k].to_dict() if isinstance(node[k], Evidence) else node[k])
        node = node[k]
    node[path[-1]] = value
    return Evidence(d)


# ------------------------------------------------------------ testbeds and optimizers
def _nqm_hp(n, d, **kw):
    hp = dict(method=np.ones(n, np.int32), learning_rate=np.full(n, 0.3), momentum=np.zeros(n),
              precond=np.ones((n, d)), ema_decay=np.zeros(n), batch_size=np.full(n, 4.0))
    hp.update({k: np.asarray(v) for k, v in kw.items()})
    return hp


def test_nqm_program_covers_every_variant_without_recompiling():
    tb = nqm_tb.make_nqm(6)
    kw = dict(n_seeds=4, n_steps=20, record_every=5, metrics={"loss": nqm_tb.loss, "loss_ema": nqm_tb.loss_ema})
    engine.simulate(tb, optimizers.make_nqm_optimizer, _nqm_hp(4, 6), key=jax.random.key(0), **kw)
    before = engine.trace_count()
    hp = _nqm_hp(4, 6, method=[0, 1, 1, 1], momentum=[0.9, 0.5, 0, 0], ema_decay=[0, 0, 0.9, 0],
                 precond=np.stack([np.ones(6), np.ones(6), np.ones(6), np.asarray(tb.h) ** -0.5]),
                 batch_size=[1.0, 16.0, 64.0, 256.0])
    engine.simulate(tb, optimizers.make_nqm_optimizer, hp, key=jax.random.key(1), **kw)
    assert engine.trace_count() == before


def test_nqm_optimizer_steps_match_their_definitions():
    """One step by hand: θ' = θ − η(p ⊙ g) (+ momentum), θ̄' = γθ̄ + (1 − γ)θ', SNGM g/‖g‖."""
    h = jnp.array([1.0, 0.5, 0.25])
    params = {"w": jnp.array([1.0, -2.0, 3.0]), "ema": jnp.array([0.5, 0.5, 0.5])}
    g = {"w": jnp.array([0.3, -0.1, 0.2]), "ema": jnp.zeros(3)}
    pre = h ** -0.5
    opt = optimizers.nqm_optimizer(1, 0.1, 0.0, pre, 0.8)
    u, _ = opt.update(g, opt.init(params), params)
    new_w = params["w"] - 0.1 * pre * g["w"]
    np.testing.assert_allclose(u["w"], new_w - params["w"], rtol=1e-6, atol=1e-6)  # float32
    np.testing.assert_allclose(params["ema"] + u["ema"], 0.8 * params["ema"] + 0.2 * new_w, rtol=1e-6, atol=1e-6)  # float32
    opt = optimizers.nqm_optimizer(0, 0.1, 0.9, jnp.ones(3), 0.0)
    u, _ = opt.update(g, opt.init(params), params)
    np.testing.assert_allclose(u["w"], -0.1 * g["w"] / jnp.linalg.norm(g["w"]), rtol=1e-6, atol=1e-6)  # float32
    np.testing.assert_allclose(params["ema"] + u["ema"], params["w"] + u["w"], rtol=1e-6, atol=1e-6)  # float32  # γ = 0


def test_accumulate_is_multisteps_with_a_traced_k():
    """k = 3: zero updates on two micro-steps, then one SGD step on their mean gradient."""
    opt = optimizers.accumulate(optax_sgd := optimizers.normalized_or_plain_momentum(1, 0.5, 0.0), jnp.asarray(3))
    del optax_sgd
    p = jnp.array([1.0, 1.0])
    st = opt.init(p)
    grads = [jnp.array([1.0, 0.0]), jnp.array([0.0, 2.0]), jnp.array([2.0, 1.0])]
    outs = []
    for g in grads:
        u, st = opt.update(g, st, p)
        outs.append(u)
    np.testing.assert_allclose(outs[0], 0.0)
    np.testing.assert_allclose(outs[1], 0.0)
    np.testing.assert_allclose(outs[2], -0.5 * np.mean(grads, axis=0), rtol=1e-6)


def test_regression_sampler_minibatch_moments_and_label_noise():
    """E g = ∇L and E‖g − ∇L‖² = tr Σ/B + σ_ℓ²·mean‖x‖²/B at a fixed w (with replacement;
    Σ exact), Student-t family-wise rule as the other testbed checks."""
    tb = br.make_regression_sampler(n=64, d=4, noise_std=0.5, lambda_max=1.0, lambda_min=0.1, w0_distance=2.0,
                                    max_batch=32, key=jax.random.key(3))
    ex = tb.exact()
    w = np.asarray(tb.w0, np.float64)
    X, y = np.asarray(tb.features, np.float64), np.asarray(tb.targets, np.float64)
    G = X.T @ (X @ w - y) / 64
    tr_sigma = np.trace(ex.gradient_covariance(w))
    K = 20_000
    for B, sig in ((5.0, 0.0), (32.0, 0.7)):
        with jax.enable_x64(True):
            tb64 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), tb)
            g = jax.vmap(lambda k: tb64.gradient(jnp.asarray(w), key=k, hparams={"batch_size": B, "label_noise": sig}))(
                jax.random.split(jax.random.key(4), K))
        g = np.asarray(g)
        t = stats.critical_t(n_comparisons=5, dof=K - 1)
        m, se, _ = stats.mean_stderr(g, axis=0)
        assert np.all(np.abs(m - G) <= t * se)
        sq = np.sum((g - G) ** 2, axis=1)
        pred = tr_sigma / B + sig ** 2 * np.mean(np.sum(X * X, axis=1)) / B
        m2, se2, _ = stats.mean_stderr(sq)
        assert abs(m2 - pred) <= t * se2


# --------------------------------------------------------------- the shared helpers
def test_first_crossing_tune_allowable_and_optimizer_steps():
    curves = np.array([[5.0, 3, 1, 0.5], [5, 4, 4, 4], [1, 2, 0.1, 3]])
    np.testing.assert_array_equal(bsc.first_crossing(curves, 1.0, [0, 10, 20, 30]), [20, np.inf, 0])
    np.testing.assert_array_equal(bsc.first_crossing(curves, 4.0, [0, 10, 20, 30], below=False), [0, 0, np.inf])
    idx, edge = bsc.tune(np.array([[0.1, 0.5, np.nan], [0.9, 0.2, 0.3]]), maximize=True)
    assert idx.tolist() == [1, 0] and edge.tolist() == [False, True]
    idx, _ = bsc.tune(np.array([[np.inf, 3, 3]]), maximize=False)
    assert idx.tolist() == [1]  # ties to the smaller η
    acc = np.array([0.95, 0.96, 0.955, 0.94, 0.90])
    assert bsc.allowable_index(acc, n_reference=2, margin=0.01) == 2
    assert bsc.allowable_index(acc, n_reference=2, margin=0.03) == 3
    np.testing.assert_array_equal(bsc.optimizer_steps([27, 54, np.inf], [27, 9, 1]), [1, 6, np.inf])
    assert bsc.take(np.arange(24).reshape(2, 3, 4), np.array([[0, 1, 2], [3, 3, 3]])).tolist() == \
        [[0, 5, 10], [15, 19, 23]]


def test_seed_bootstrap_crossings_equals_the_unwindowed_bootstrap():
    """The windowed resampling gives the same interval as resampling whole curves with the
    same multinomial weights (the window only drops records where no crossing can occur)."""
    rng = np.random.default_rng(0)
    steps = np.arange(80)
    base = 10 * np.exp(-steps / 15.0)
    records = base[None, None] * rng.lognormal(0, 0.3, size=(3, 12, 80)) * np.array([1, 1.5, 0.7])[:, None, None]
    stat = lambda S: S[:, :1] - S[:, 1:2]
    a = bsc.seed_bootstrap_crossings(records, 1.0, steps, rng=np.random.default_rng(5), n_boot=300,
                                     confidence=0.9, statistic=stat)

    def full(m, v):
        del v
        hit = m <= 1.0
        return stat(np.where(hit.any(-1), np.argmax(hit, -1), np.inf).astype(float))
    b = stats.bootstrap_moments_ci(np.moveaxis(records, 1, 0), full, rng=np.random.default_rng(5), n_boot=300,
                                   confidence=0.9, chunk=int(max(1, min(200, 2_000_000 // (3 * 80)))))
    widths = [a, b]
    np.testing.assert_array_equal(widths[0][0], widths[1][0])
    np.testing.assert_array_equal(widths[0][1], widths[1][1])
    np.testing.assert_array_equal(widths[0][2], widths[1][2])


def test_eta_grid_rule():
    cfg = dict(n_eta=3, eta_ratio=2.0, eta_batch_exponent={"a": 0.5, "b": 0.0}, eta_centres={"a": 0.1, "b": 1.0})
    g = bsc.eta_grid(cfg, ["a", "b"], [8, 32])
    np.testing.assert_allclose(g[0, 1], 0.1 * 2 * np.array([0.5, 1, 2]))
    np.testing.assert_allclose(g[1, 1], [0.5, 1, 2])
    with pytest.raises(InvalidParameter, match="^eta_centres = "):
        bsc.eta_grid(cfg, ["a", "c"], [8])


# ------------------------------------------------------------------------- theorems
def test_estimators_holds_and_is_violated_by_a_biased_mean():
    _, cfg, ev, v = quick("scaling.estimators_unbiased")
    assert v.status == "holds"
    for name in ev.testbeds:
        assert ev[name].pairs_needed <= ev.n_pairs
        # the exact per-pair sd planned beforehand vs the sample sd: 5% (3e4 pairs: SE of an sd ~0.4%)
        np.testing.assert_allclose(ev[name].sample_sd, ev[name].planned_sd, rtol=0.1)
    t = ev.regression
    bad = t.mean.copy()
    bad[1] = t.exact[1] + 6 * ev.critical * t.se[1]
    assert rules.estimators(_edit(ev, ["regression", "mean"], bad), cfg).status == "violated"
    comb = t.combination_mean.copy()
    comb[0] = 6 * ev.critical * t.combination_se[0]
    assert rules.estimators(_edit(ev, ["regression", "combination_mean"], comb), cfg).status == "violated"


def test_estimators_reject_an_underpowered_configuration():
    claim = get_claims(["scaling.estimators_unbiased"])[0]
    with pytest.raises(InvalidParameter, match=r"^n_pairs = 100 .*to resolve the single-batch bias"):
        claim.run(dict(claim.config("quick"), n_pairs=100), key=jax.random.key(0))


def test_nqm_closed_form_holds_and_each_check_can_fail():
    _, cfg, ev, v = quick("scaling.nqm_closed_form")
    assert v.status == "holds", v.summary
    n = ev.nqm
    assert np.all(n.planned_interval[..., 0] <= n.cf_steps)
    ex = n.max_excess.copy()
    ex[1, 2] = 1.5
    assert rules.nqm_closed_form(_edit(ev, ["nqm", "max_excess"], ex), cfg).status == "violated"
    late = n.mc_steps_late.copy()
    j = int(np.argmax(np.isfinite(late[0])))
    late[0, j] = n.exact_steps[0, j] - 1
    assert rules.nqm_closed_form(_edit(ev, ["nqm", "mc_steps_late"], late), cfg).status == "violated"
    assert rules.nqm_closed_form(_edit(ev, ["nqm", "stationary_rel_err"], [1e-6, 0, 0]), cfg).status == "violated"


# ----------------------------------------------------------------------- hypotheses
def _iv(*x):
    return np.array(x, np.float64)


def test_tradeoff_outcomes():
    _, cfg, ev, v = quick("scaling.tradeoff_curve")
    n = ev.nqm
    good = _edit(_edit(ev, ["nqm", "max_log_residual"], np.tile(_iv(0.05, 0.03, 0.08), (5, 1))),
                 ["digits_sgd", "estimate"], _iv(5.0, 0.05, 1.0, 0.0))
    good = _edit(_edit(good, ["digits_sgd", "low"], _iv(4.0, 0.02, 0.8, -1)), ["digits_sgd", "high"], _iv(6, 0.1, 1.2, 1))
    rel = np.log2(n.noise_scale_avg)
    bc = n.b_crit_log2.copy()
    bc[0] = [rel + 0.5, rel + 0.2, rel + 0.8]
    good = _edit(good, ["nqm", "b_crit_log2"], bc)
    assert rules.tradeoff(good, cfg).status == "confirmed"
    bc2 = bc.copy()
    bc2[0] = [rel + 3, rel + 2.5, rel + 3.5]                    # B_crit 8× B_noise
    assert rules.tradeoff(_edit(good, ["nqm", "b_crit_log2"], bc2), cfg).status == "refuted"
    bad_fit = _edit(good, ["digits_sgd", "low"], _iv(4.0, 0.3, 0.8, -1))   # residual interval above log 1.25
    bad_fit = _edit(bad_fit, ["digits_sgd", "high"], _iv(6, 0.5, 1.2, 1))
    assert rules.tradeoff(bad_fit, cfg).status == "refuted"
    bc3 = bc.copy()
    bc3[0] = [rel + 1.5, rel + 1.0, rel + 2.0]                  # straddles log2 3
    assert rules.tradeoff(_edit(good, ["nqm", "b_crit_log2"], bc3), cfg).status == "inconclusive"
    narrow = _edit(good, ["nqm", "batch_sizes"], np.array([16.0, 32, 64, 128, 256, 512, 1024]))
    assert "premise" in rules.tradeoff(narrow, cfg).summary.split("→")[-1]


def test_predictions_outcomes():
    _, cfg, ev, v = quick("scaling.nqm_predictions")
    n = ev.nqm
    V = len(n.variants)
    # closed form edited so that every prediction holds, then one part at a time broken
    cf = n.cf_steps.copy()
    cf[1, 0] = cf[0, 0]
    cf[2, 0] = cf[0, 0] * 1.1
    cf[3, 0] = cf[0, 0] * 0.5
    fit = {k: dict(n.cf_fit[k].to_dict()) for k in n.variants}
    fit["momentum"]["b_crit"] = fit["preconditioned"]["b_crit"] = 2 * fit["sgd"]["b_crit"]
    good = _edit(_edit(ev, ["nqm", "cf_steps"], cf), ["nqm", "cf_fit"], fit)
    ratio = np.tile(_iv(1.0, 0.9, 1.1), (V + 1, 1))
    ratio[3] = [0.5, 0.4, 0.6]
    good = _edit(_edit(good, ["nqm", "small_batch_ratio"], ratio), ["nqm", "b_crit_log2_vs_sgd"],
                 np.tile(_iv(1.0, 0.5, 1.5), (V + 1, 1)))
    dig = {m: dict(good.digits_fits[m].to_dict()) for m in good.digits_methods}
    for m in dig:
        if m != "sgd":
            dig[m].update(estimate=_iv(5, 0.1, 1.0, 1.0), low=_iv(4, 0.05, 0.9, 0.5), high=_iv(6, 0.2, 1.1, 1.5))
    good = _edit(good, ["digits_fits"], dig)
    assert rules.predictions(good, cfg).status == "confirmed"
    cf_bad = cf.copy()
    cf_bad[2, 0] = cf[0, 0] * 0.47                                 # preconditioning helps at small B
    assert rules.predictions(_edit(good, ["nqm", "cf_steps"], cf_bad), cfg).status == "refuted"
    open_ = np.tile(_iv(1.0, 0.5, 1.5), (V + 1, 1))
    open_[1] = [0.2, -0.3, 0.7]                                    # MC momentum B_crit ratio straddles 0
    assert rules.predictions(_edit(good, ["nqm", "b_crit_log2_vs_sgd"], open_), cfg).status == "inconclusive"


def test_one_plot_outcomes():
    _, cfg, ev, v = quick("scaling.optimizers_on_one_plot")
    n, r = ev.nqm, ev.regression
    inside_n = np.tile(_iv(5, 4, 6), (len(n.variants) + 1, 1))
    inside_r = np.tile(_iv(3, 2, 4), (len(r.methods), 1))
    good = _edit(_edit(ev, ["nqm", "b_crit_log2"], inside_n), ["regression", "b_crit_log2"], inside_r)
    good = _edit(_edit(good, ["regression", "label_noise_vs_sgd_log2"], _iv(1, 0.5, 1.5)), ["regression", "covnoise_ratio"],
                 np.tile(_iv(1, 0.9, 1.1), (len(r.covnoise_batches), 1)))
    assert rules.one_plot(good, cfg).status == "confirmed"
    assert rules.one_plot(_edit(good, ["regression", "label_noise_vs_sgd_log2"], _iv(-1, -1.5, -0.5)), cfg).status == "refuted"
    cov = np.tile(_iv(1, 0.9, 1.1), (len(r.covnoise_batches), 1))
    cov[-1] = [0.3, 0.2, 0.4]                                      # covariance noise does speed up
    assert rules.one_plot(_edit(good, ["regression", "covnoise_ratio"], cov), cfg).status == "refuted"
    out = inside_n.copy()
    out[0] = [14, 13, 15]                                          # B_crit beyond the grid
    assert rules.one_plot(_edit(good, ["nqm", "b_crit_log2"], out), cfg).status == "refuted"
    out[0] = [11, 10, 13]
    assert rules.one_plot(_edit(good, ["nqm", "b_crit_log2"], out), cfg).status == "inconclusive"


@pytest.mark.parametrize("claim_id, change, name", [
    ("scaling.estimators_unbiased", dict(b_big=4), "b_big"),
    ("scaling.estimators_unbiased", dict(n_pairs=1), "n_pairs"),
])
def test_claims_reject_bad_config_before_compiling(claim_id, change, name):
    claim = get_claims([claim_id])[0]
    before = engine.trace_count()
    with pytest.raises(InvalidParameter, match=rf"^{name} = "):
        claim.run(dict(claim.config("quick"), **change), key=jax.random.key(0))
    assert engine.trace_count() == before


def test_shared_runs_reject_bad_config_before_compiling():
    from simulations.claims.scaling import runs_nqm
    cfg = get_claims(["scaling.nqm_closed_form"])[0].config("quick")["nqm"]
    before = engine.trace_count()
    for bad, name in ((dict(target_fraction=0.0), "target_fraction"), (dict(n_seeds=1), "n_seeds"),
                      (dict(momenta=[1.0]), "momentum")):
        with pytest.raises(InvalidParameter, match=rf"^{name} = "):
            runs_nqm.nqm.fn(dict(cfg, **bad), key=jax.random.key(0))
    rcfg = get_claims(["scaling.optimizers_on_one_plot"])[0].config("quick")["regression"]
    for bad, name in ((dict(batch_sizes=[1, 4, 128]), "batch_sizes"), (dict(n_seeds=1), "n_seeds"),
                      (dict(target_fraction=1.5), "target_fraction")):
        with pytest.raises(InvalidParameter, match=rf"^{name} = "):
            runs.regression.fn(dict(rcfg, **bad), key=jax.random.key(0))
    assert engine.trace_count() == before
