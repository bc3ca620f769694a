"""Li, Wei & Ma (2019): the P/Q testbed and its measurements (closed forms against autodiff,
padding, the η-scaled noise), the annealed schedules, one compiled program for all arms,
values and training-set sizes, bad input, randomness from the claim's key, the regime gate
and every outcome of every P/Q rule (hand-made evidence), and the quick verdicts that decide
like full fidelity. The map, the selected-cell claims and the patch: test_large_lr_map.py."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import quick
from simulations import engine, optimizers
from simulations.claims.large_lr import rules, runs
from simulations.keys import numpy_rng
from simulations.registry import Evidence, get_claims
from simulations.testbeds import pq
from theory import large_lr as th
from theory.validation import InvalidParameter

PQ_IDS = ("largelr.regime", "largelr.small_lr_learns_q_first", "largelr.large_lr_delays_q",
          "largelr.generalization", "largelr.activation_noise")


def _quick_pq_config():
    return get_claims([PQ_IDS[0]])[0].config("quick")["pq"]


def _tb(**kw):
    return pq.make_pq_testbed(th.PQSpec(d=16), key=jax.random.key(1), n=24, n_test=30, width=8,
                              batch_size=4, **kw)


def _hp(noise=0.0, anneal=5.0, scale=0.0, power=1.0):
    return dict(eta1=jnp.float32(1.0), eta2=jnp.float32(0.1), noise_std=jnp.float32(noise),
                anneal_step=jnp.float32(anneal), noise_scale=jnp.float32(scale),
                noise_power=jnp.float32(power))


# ---------------------------------------------------------------------- testbeds
def test_gradient_is_the_minibatch_logistic_gradient():
    tb = _tb(l2=1e-3)
    params = tb.init(key=jax.random.key(0))
    key = jax.random.key(5)
    g = tb.gradient(params, key=key, hparams=_hp(noise=0.0), step=jnp.int32(0))
    idx = np.asarray(jax.random.randint(jax.random.split(key)[0], (4,), 0, 24))
    x, y = np.asarray(tb.x_train)[idx], np.asarray(tb.y_train)[idx]
    w1, u = np.asarray(params["w1"], np.float64), np.asarray(params["w2"], np.float64)
    h = np.maximum(x @ w1, 0)
    s = -y / (1 + np.exp(y * (h @ u))) / 4      # d/df of mean softplus(−y f)
    gu = h.T @ s + 1e-3 * u
    gw = x.T @ (s[:, None] * u[None, :] * (x @ w1 > 0)) + 1e-3 * w1
    # float32 arithmetic vs float64 reference
    np.testing.assert_allclose(g["w2"], gu, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(g["w1"], gw, rtol=1e-4, atol=1e-6)


def test_padding_keeps_draws_gradients_and_metrics():
    """n real rows padded to n_pad: the same data (the key draws them before padding), the
    same minibatch gradients (indices from the real rows) and the same metrics."""
    a, b = _tb(), _tb(n_pad=40)
    assert b.x_train.shape == (40, 32) and int(b.n_active) == 24
    np.testing.assert_array_equal(np.asarray(b.x_train)[:24], a.x_train)
    assert np.all(np.asarray(b.x_train)[24:] == 0) and np.all(np.asarray(b.row_weights)[24:] == 0)
    params = a.init(key=jax.random.key(0))
    for step in (0, 7):
        ga = a.gradient(params, key=jax.random.key(step), hparams=_hp(0.3), step=jnp.int32(step))
        gb = b.gradient(params, key=jax.random.key(step), hparams=_hp(0.3), step=jnp.int32(step))
        for k in ga:
            np.testing.assert_array_equal(ga[k], gb[k])
    np.testing.assert_allclose(pq.all_metrics(b, params), pq.all_metrics(a, params), rtol=1e-5, atol=1e-7)
    with pytest.raises(InvalidParameter, match="^n_pad = "):
        _tb(n_pad=20)


def test_closed_form_metrics_match_autodiff_and_numpy():
    """all_metrics (one pass, closed-form ReLU gradients) against the per-metric functions
    (jax.grad) and, for the mechanism numbers, a float64 NumPy computation."""
    tb = _tb(n_pad=30)
    params = tb.init(key=jax.random.key(4))
    v = pq.split_all(np.asarray(pq.all_metrics(tb, params)))
    ref = dict(train_acc=pq.train_accuracy, test_acc=pq.test_accuracy, kappa=pq.q_margin,
               train_loss=pq.data_loss, fit_acc=pq.fit_accuracy, p_align=pq.p_alignment,
               both_share=pq.both_share)
    for name, fn in ref.items():
        np.testing.assert_allclose(v[name], fn(tb, params), rtol=2e-5, atol=1e-6, err_msg=name)
    w1, u = np.asarray(params["w1"], np.float64), np.asarray(params["w2"], np.float64)
    x, y = np.asarray(tb.x_train, np.float64)[:24], np.asarray(tb.y_train, np.float64)[:24]
    kind = np.argmax(np.asarray(tb.type_weights_train)[:, :24] > 0, axis=0)
    pre = x @ w1
    g = -y / (1 + np.exp(y * (np.maximum(pre, 0) @ u)))
    norm = {t: np.linalg.norm((x[kind == t, :16].T @ (g[kind == t, None] * (pre[kind == t] > 0) * u))) for t in (0, 2)}
    assert v["both_share"] == pytest.approx(norm[2] / (norm[0] + norm[2]), rel=1e-4)
    assert v["fit_acc"] == pytest.approx(np.mean(y * (np.maximum(pre, 0) @ u) > 0))
    assert -1.0 <= v["p_align"] <= 1.0


def test_noise_level_scales_with_eta_and_anneals():
    at = lambda hp, t: float(pq.noise_level(hp, jnp.int32(t)))  # noqa: E731
    assert at(_hp(noise=0.5), 4) == pytest.approx(0.5) and at(_hp(noise=0.5), 5) == 0.0
    # std = scale·η^{power/2}: √η for power 1 (variance ∝ η), η for power 2 (∝ η²)
    assert at(_hp(scale=2.0), 0) == pytest.approx(2.0) and at(_hp(scale=2.0), 9) == pytest.approx(2 * 0.1 ** 0.5)
    assert at(_hp(scale=2.0, power=2.0), 9) == pytest.approx(0.2, rel=1e-6)
    # the explicit noise enters the gradient, and scale 0 leaves it bit for bit unchanged
    tb = _tb()
    params = tb.init(key=jax.random.key(0))
    k = jax.random.key(2)
    plain = tb.gradient(params, key=k, hparams=dict(eta1=1.0, eta2=0.1, noise_std=0.0, anneal_step=5.0),
                        step=jnp.int32(3))
    zero = tb.gradient(params, key=k, hparams=_hp(scale=0.0), step=jnp.int32(3))
    noisy = tb.gradient(params, key=k, hparams=_hp(scale=1.0), step=jnp.int32(3))
    np.testing.assert_array_equal(plain["w1"], zero["w1"])
    assert not np.allclose(plain["w1"], noisy["w1"])


def test_preactivation_noise_is_annealed():
    tb = _tb()
    params = tb.init(key=jax.random.key(0))
    key = jax.random.key(2)
    clean = tb.gradient(params, key=key, hparams=_hp(0.0), step=jnp.int32(3))
    noisy = tb.gradient(params, key=key, hparams=_hp(3.0), step=jnp.int32(3))
    after = tb.gradient(params, key=key, hparams=_hp(3.0), step=jnp.int32(5))
    assert not np.allclose(clean["w1"], noisy["w1"])
    np.testing.assert_array_equal(clean["w1"], after["w1"])  # step >= anneal: no noise


def test_annealed_sgd_schedule():
    opt = optimizers.make_annealed_sgd(_hp(anneal=3.0), key=None)
    w = jnp.zeros(1)
    state = opt.init(w)
    steps = []
    for _ in range(5):
        u, state = opt.update(jnp.ones(1), state, w)
        steps.append(float(-u[0]))
    np.testing.assert_allclose(steps, [1.0, 1.0, 1.0, 0.1, 0.1], rtol=1e-6)


def test_annealed_nesterov_matches_hand_recursion():
    """g ← g + λw; m ← βm + g; w ← w − η_t(g + βm) (PyTorch's Nesterov SGD with weight decay),
    η_t = η₁ then η₂ from the anneal step."""
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((8, 3)).astype(np.float32)
    eta1, eta2, anneal, beta, lam = 0.5, 0.02, 4, 0.9, 5e-4
    opt = optimizers.make_annealed_nesterov(dict(eta1=eta1, eta2=eta2, anneal_step=anneal,
                                                 momentum=beta, weight_decay=lam), key=None)
    w, state = jnp.ones(3), None
    state = opt.init(w)
    wr, m = np.ones(3), np.zeros(3)
    for t, g in enumerate(grads):
        upd, state = opt.update(jnp.asarray(g), state, w)
        w = optax.apply_updates(w, upd)
        gt = g + lam * wr
        m = beta * m + gt
        wr = wr - (eta1 if t < anneal else eta2) * (gt + beta * m)
    np.testing.assert_allclose(w, wr, rtol=1e-5, atol=1e-6)


def test_metrics_match_numpy_and_theory():
    tb = _tb()
    params = tb.init(key=jax.random.key(4))
    f_tr = np.asarray(pq.forward(params, tb.x_train))
    kind = np.argmax(np.asarray(tb.type_weights_train) > 0, axis=0)
    correct = np.asarray(tb.y_train) * f_tr > 0
    np.testing.assert_allclose(pq.train_accuracy(tb, params), [correct[kind == k].mean() for k in range(3)],
                               rtol=1e-6)
    # κ of the testbed = theory.q_margin of the network restricted to the Q component
    # (x₁ = 0), evaluated in float64 NumPy on the generator's own geometry
    geo = th.make_geometry(th.PQSpec(d=16), numpy_rng(jax.random.key(1)))  # the testbed's draw
    np.testing.assert_allclose(tb.w_star, geo.w_star, rtol=1e-6)
    w1, u = np.asarray(params["w1"], np.float64), np.asarray(params["w2"], np.float64)
    f_q = lambda x2: np.maximum(np.concatenate([np.zeros(16), x2]) @ w1, 0) @ u  # noqa: E731
    assert float(pq.q_margin(tb, params)) == pytest.approx(th.q_margin(f_q, geo), rel=1e-4, abs=1e-6)
    # a network that is linear on the Q plane (all units active there) has κ = 0
    w1 = np.zeros((32, 8), np.float32)
    w1[16:, :] = np.asarray(tb.q_points[0, 16:])[:, None] * 5.0  # pre-activation 5 > 0 on all three
    assert abs(float(pq.q_margin(tb, {"w1": jnp.asarray(w1), "w2": jnp.ones(8)}))) < 1e-5


def test_first_crossing():
    steps = np.array([0, 10, 20, 30])
    acc = np.array([[0.5, 0.95, 1.0, 1.0], [0.5, 0.6, 0.7, 0.8], [0.1, 0.9, 0.2, 1.0]])
    t = runs.first_crossing(acc, steps)
    assert t[0] == 10 and np.isnan(t[1]) and t[2] == 10


# ----------------------------------------------------- one program, keys, bad input
def test_arms_values_and_sizes_share_one_program():
    quick(PQ_IDS[0])  # compiles the quick shapes
    cfg = _quick_pq_config()
    key = jax.random.key(7)
    before = engine.trace_count()
    a = runs.PQ.fn(dict(cfg, n_draws=2), key=key)
    assert a["train_acc"].shape == (7, 2, 21, 3) and a["t_first"].shape == (7, 2, 2, 3)
    # new η₁, η₂, noises, anneal step, p₀, r, ‖z‖, σ_P, λ, n (padded), arm order: traced
    # values or data, never a recompile
    b = runs.PQ.fn(dict(cfg, n_draws=2, eta1=3.0, eta2=0.05, noise_std=0.3, noise_scale=1.0,
                        anneal_step=300, p0=0.3, r=0.2, z_norm=3.0, p_noise=0.35, l2=1e-3, n=128,
                        arms=list(reversed(runs.ALL_ARMS))), key=key)
    assert engine.trace_count() == before
    assert not np.array_equal(a["test_acc"], b["test_acc"])


def test_runs_are_reproducible_at_a_fixed_key_and_streams_are_fresh():
    _, cfg, ev, _ = quick(PQ_IDS[0])
    again = runs.PQ.fn(cfg["pq"], key=jax.random.key(0))
    for name in ("train_acc", "test_acc", "kappa", "test_final", "q_acc_window", "loss_window"):
        np.testing.assert_array_equal(again[name], ev.pq[name])
    # the P/Q claims read one shared run (run once: even its wall time is the same)
    for cid in PQ_IDS[1:]:
        other = quick(cid)[2].pq
        assert other.wall_seconds == ev.pq.wall_seconds
        np.testing.assert_array_equal(other.t_first, ev.pq.t_first)
    # another stream (the pre-registered run's) draws other data at the same key
    pre = get_claims(["largelr.activation_noise_prereg"])[0].config("quick")["pq"]
    assert pre["stream"] == "prereg"
    fresh = runs.PQ.fn(dict(cfg["pq"], n_draws=2, stream="prereg"), key=jax.random.key(0))
    assert not np.array_equal(fresh["test_final"], ev.pq.test_final[:, :2])


TINY = dict(d=16, p0=0.2, q0=0.2, margin=None, p_noise=0.7, r=None, q_noise=0.0, n=24,
            width=8, batch_size=4, l2=5e-4, eta1=2.0, eta2=0.2, noise_std=0.5,
            arms=["large_anneal", "small"], n_test=30, n_steps=40, anneal_step=20,
            record_every=10, n_draws=2, seeds_per_draw=2)


@pytest.mark.parametrize("change, name", [
    (dict(anneal_step=0), "anneal_step"), (dict(anneal_step=40), "anneal_step"),
    (dict(anneal_step=55), "anneal_step"), (dict(anneal_step=15), "record_every"),
    (dict(p0=0.7, q0=0.5), r"p0 \+ q0"), (dict(r=0.0), "r"), (dict(r=-0.2), "r"),
    (dict(eta1=0.0), "eta1"), (dict(batch_size=50), "batch_size"), (dict(n_draws=1), "n_draws"),
    (dict(arms=["large_anneal", "tiny"]), "arms"), (dict(n_pad=10), "n_pad"),
    (dict(arms=["large_eta_noise", "small"]), "noise_scale"),
    (dict(arms=["large_eta_noise", "small"], noise_scale=-1.0), "noise_scale"),
    (dict(z_norm=0.0), "z_norm"),
])
def test_bad_input_before_compilation(change, name):
    before = engine.trace_count()
    with pytest.raises(InvalidParameter, match=rf"^{name} = "):
        runs.PQ.fn(dict(TINY, **change), key=jax.random.key(0))
    assert engine.trace_count() == before


# ------------------------------------------- every outcome of every rule (hand-made)
ARMS7 = runs.ALL_ARMS
# a premise that passes: small LR ahead (lower loss), large arms at 0.85 at the anneal step,
# fitted (0.99) at the end; the small arms fitted throughout
_ARM = dict(q_acc_window=0.5, kappa_window=0.0, kappa_final=2.0, q_acc_final=1.0, test_p=0.90,
            q_first_draws=0, sd=0.02, loss=0.1, fit_anneal=0.99, fit_final=0.99)
_LARGE = dict(loss=0.4, fit_anneal=0.85, fit_final=0.99)


def _pq(n_draws=6, arms=ARMS7, seed=0, **per_arm):
    """Hand-made P/Q evidence: per arm, per-draw values around the given centres (a fixed
    jitter, so intervals have width); ``q_first_draws`` of the draws have Q cross first."""
    rng = np.random.default_rng(seed)
    out = {k: [] for k in ("q_acc_window", "kappa_window", "kappa_final", "q_acc_final",
                           "test_final", "t_first", "loss_window", "fit_at_anneal", "fit_final",
                           "both_share_window", "p_align_final")}
    for a in arms:
        base = dict(_ARM, **(_LARGE if a.startswith("large") or a == "small_noise" else {}))
        v = dict(base, **per_arm.get(a, {}))
        jit = lambda c, s: c + s * rng.standard_normal(n_draws)  # noqa: E731
        out["q_acc_window"].append(jit(v["q_acc_window"], v["sd"]))
        out["kappa_window"].append(jit(v["kappa_window"], 0.01))
        out["kappa_final"].append(jit(v["kappa_final"], 0.05))
        out["q_acc_final"].append(np.minimum(jit(v["q_acc_final"], 0.005), 1.0))
        out["test_final"].append(np.stack([jit(v["test_p"], 0.002), np.full(n_draws, 0.9),
                                           np.full(n_draws, 0.9)], axis=1))
        out["loss_window"].append(jit(v["loss"], 0.01))
        out["fit_at_anneal"].append(np.minimum(jit(v["fit_anneal"], 0.005), 1.0))
        out["fit_final"].append(np.minimum(jit(v["fit_final"], 0.002), 1.0))
        out["both_share_window"].append(jit(0.5, 0.01))
        out["p_align_final"].append(jit(0.3, 0.01))
        t = np.empty((n_draws, 2, 3))
        t[..., 0], t[..., 1], t[..., 2] = 100.0, 300.0, 50.0
        t[:v["q_first_draws"], :, 1] = 50.0
        out["t_first"].append(t)
    ev = {k: np.stack(v) for k, v in out.items()}
    ramp = np.linspace(0.5, 1.0, 5)  # curves for the figures: 5 records, anneal at the middle
    curves = dict(record_steps=np.arange(0, 50, 10), anneal_step=20,
                  train_loss=ev["loss_window"][..., None] * (2 - ramp), fit_acc=ev["fit_final"][..., None] * ramp,
                  train_acc=np.repeat((ev["fit_final"][..., None] * ramp)[..., None], 3, axis=-1),
                  test_acc=np.repeat(ev["test_final"][:, :, None], 5, axis=2),
                  kappa=ev["kappa_final"][..., None] * ramp)
    return dict(ev, **curves, arms=list(arms), n_draws=n_draws,
                valid=np.ones((len(arms), n_draws, 2), bool), gamma0=0.09, r_value=0.3)


def _rule(rule, cfg=None, **kw):
    cfg = cfg or {"pq": _quick_pq_config()}
    return rule(Evidence({"pq": _pq(**kw)}), cfg)


NO_PREMISE = dict(loss=0.01, fit_anneal=1.0, fit_final=1.0)  # the large arm ahead and fitted


@pytest.mark.parametrize("large, expected, passed", [
    (dict(), "confirmed", "yes"),
    (dict(loss=0.01), "refuted", "no"),                    # the large arm ahead
    (dict(fit_anneal=0.99), "refuted", "no"),              # no plateau
    (dict(fit_final=0.86), "refuted", "no"),               # no jump after annealing
    (dict(fit_anneal=0.95), "inconclusive", "unknown"),    # plateau at the cap: unresolved
])
def test_regime_rule_outcomes(large, expected, passed):
    v = _rule(rules.regime, large_anneal=large)
    assert v.status == expected
    assert v.measured["sgd"]["passed"] == passed
    assert set(v.measured) == set(runs.REGIMES)  # every pair present is reported
    assert "regime: real minibatch SGD" in v.summary


def test_gate_findings_by_hand():
    loss = np.array([[0.4, 0.5, 0.45], [0.1, 0.12, 0.11]])            # (arm, draw): large, small
    fits = np.array([[0.80, 0.82, 0.84], [0.99, 1.0, 1.0]]), np.array([[0.99, 1.0, 0.98], [1, 1, 1.0]])
    f, numbers = rules.gate_findings(loss, *fits, 0, 1)
    assert [x.supported for x in f] == [True, True, True]
    assert numbers["loss_small_minus_large"][0] == pytest.approx(-0.34)
    assert numbers["jump"][0] == pytest.approx(np.mean([0.19, 0.18, 0.14]))


@pytest.mark.parametrize("draws, expected, symbol", [
    (6, "confirmed", "> 0.5"), (0, "refuted", "<= 0.5"), (3, "inconclusive", "straddles")])
def test_q_first_rule_outcomes(draws, expected, symbol):
    v = _rule(rules.small_lr_learns_q_first, small=dict(q_first_draws=draws))
    assert v.status == expected and symbol in v.summary
    assert "premise gate passed" in v.summary


@pytest.mark.parametrize("large, expected", [
    (dict(), "confirmed"),                                         # chance, κ ≈ 0, learned after
    (dict(q_acc_window=0.95), "refuted"),                          # Q learned before annealing
    (dict(kappa_window=1.0), "refuted"),                           # κ far from 0 before annealing
    (dict(q_acc_window=0.6, sd=0.05), "inconclusive"),             # accuracy straddles the cap
    (dict(kappa_final=0.0), "inconclusive"),                       # final κ not above 0
    (dict(q_acc_final=0.5), "inconclusive"),                       # Q never learned
    (dict(q_acc_window=0.95, **NO_PREMISE), "inconclusive"),       # would refute; premise not met
])
def test_delay_rule_outcomes(large, expected):
    v = _rule(rules.large_lr_delays_q, large_anneal=large)
    assert v.status == expected
    outcome = rules.delay(Evidence(_pq(large_anneal=large)), 0)[0]["outcome"]
    assert v.measured["large_anneal"]["outcome"] == outcome
    assert f"-> {outcome}" in v.summary
    assert ("premise not met" in v.summary) == ("loss" in large)


@pytest.mark.parametrize("test_p, premise, expected, symbol", [
    (0.95, {}, "confirmed", "> 0"), (0.85, {}, "refuted", "<= 0"),
    (0.9005, {}, "inconclusive", "straddles"), (0.85, NO_PREMISE, "inconclusive", "<= 0")])
def test_generalization_rule_outcomes(test_p, premise, expected, symbol):
    v = _rule(rules.generalization, large_anneal=dict(test_p=test_p, **premise))
    assert v.status == expected and f"] {symbol} over" in v.summary
    assert ("premise not met" in v.summary) == bool(premise)


@pytest.mark.parametrize("noise, expected", [
    (dict(test_p=0.95), "confirmed"),                              # delayed and a gain
    (dict(test_p=0.85), "refuted"),                                # a loss
    (dict(test_p=0.95, q_acc_window=0.95), "refuted"),             # Q not delayed
    (dict(test_p=0.95, q_acc_final=0.5), "inconclusive"),          # delay unresolved
    (dict(test_p=0.9005), "inconclusive"),                         # gain unresolved
    (dict(test_p=0.85, **NO_PREMISE), "inconclusive"),             # the noise arm shows no premise
])
def test_activation_noise_rule_outcomes(noise, expected):
    v = _rule(rules.activation_noise, small_noise=noise)
    assert v.status == expected
    assert "annealed noise std" in v.summary


# ------------------------------------------------- quick decides as full fidelity does
def test_quick_reaches_the_decisive_full_verdict():
    """Full fidelity refutes the SGD premise at the base point (the large LR is ahead and
    never plateaus); the quick configuration reaches the same decisive verdict. The claims
    it guards are inconclusive (premise not met) at both fidelities."""
    assert quick("largelr.regime")[3].status == "refuted"
    for cid in PQ_IDS[1:4]:
        v = quick(cid)[3]
        assert v.status == "inconclusive" and "premise not met" in v.summary, cid
