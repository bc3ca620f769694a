"""CLAIMS.md §4 (Li, Wei & Ma 2019): the P/Q testbed and its measurements, the traced
schedule (no recompilation), the digits patch testbed and the patch claim's grid and
selection rule, bad input, and reproducible verdicts of the five claims and the
parameter map at quick fidelity."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simulations.claims.large_lr as ll
import simulations.claims.large_lr_patch as lp
import simulations.claims.large_lr_rules as rules
from simulations import engine
from simulations.registry import get_claims
from simulations.report import jsonable
from simulations.testbeds import digits_patch as dp
from simulations.testbeds import pq
from theory import large_lr as th
from theory.validation import InvalidParameter

IDS = ("largelr.small_lr_learns_q_first", "largelr.large_lr_delays_q", "largelr.generalization",
       "largelr.activation_noise", "largelr.patch", "largelr.parameter_map")
TINY = dict(ll.QUICK, d=16, n=24, n_test=30, width=8, batch_size=4, n_steps=40, anneal_step=20,
            record_every=10, n_draws=2, seeds_per_draw=2)


def _tb(**kw):
    return pq.make_pq_testbed(th.PQSpec(d=16), key=jax.random.key(1), n=24, n_test=30, width=8,
                              batch_size=4, **kw)


def _hp(noise=0.0, anneal=5.0):
    return dict(eta1=jnp.float32(1.0), eta2=jnp.float32(0.1), noise_std=jnp.float32(noise),
                anneal_step=jnp.float32(anneal))


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
    opt = pq.make_annealed_sgd(_hp(anneal=3.0), key=None)
    w = jnp.zeros(1)
    state = opt.init(w)
    steps = []
    for _ in range(5):
        u, state = opt.update(jnp.ones(1), state, w)
        steps.append(float(-u[0]))
    np.testing.assert_allclose(steps, [1.0, 1.0, 1.0, 0.1, 0.1], rtol=1e-6)


def test_metrics_match_numpy():
    tb = _tb()
    params = tb.init(key=jax.random.key(4))
    f_tr = np.asarray(pq.forward(params, tb.x_train))
    kind = np.argmax(np.asarray(tb.type_weights_train) > 0, axis=0)
    correct = np.asarray(tb.y_train) * f_tr > 0
    want = [correct[kind == k].mean() for k in range(3)]
    np.testing.assert_allclose(pq.train_accuracy(tb, params), want, rtol=1e-6)
    f = np.asarray(pq.forward(params, tb.q_points))
    assert float(pq.q_margin(tb, params)) == pytest.approx(f[0] - 0.5 * (f[1] + f[2]), rel=1e-5)
    # a network that is linear on the Q plane (all units active there) has κ = 0
    w1 = np.zeros((32, 8), np.float32)
    w1[16:, :] = np.asarray(tb.q_points[0, 16:])[:, None] * 5.0  # pre-activation 5 > 0 on all three
    lin = {"w1": jnp.asarray(w1), "w2": jnp.ones(8)}
    assert abs(float(pq.q_margin(tb, lin))) < 1e-5


def test_first_crossing_and_rules_on_handmade_evidence():
    steps = np.array([0, 10, 20, 30])
    acc = np.array([[0.5, 0.95, 1.0, 1.0], [0.5, 0.6, 0.7, 0.8], [0.1, 0.9, 0.2, 1.0]])
    t = rules.first_crossing(acc, steps)
    assert t[0] == 10 and np.isnan(t[1]) and t[2] == 10
    # arm 0: Q crosses first in 3/4 trajectories; one tie
    tf = np.full((1, 4, 3), np.nan)
    tf[0, :, 0] = [20, 30, 10, 10]
    tf[0, :, 1] = [10, 10, np.nan, 10]
    ev = dict(t_first=tf, valid=np.ones((1, 4), bool), n_draws=2)
    r = rules.q_first_test(ev, 0)
    assert (r["q_first"], r["p_first"], r["ties"], r["n"]) == (2, 1, 1, 4)
    # delay rule: chance before annealing, κ ≈ 0, learned at the end -> yes
    base = dict(q_acc_window=np.array([[0.5, 0.52, 0.48, 0.5]]),
                kappa_window=np.array([[0.01, -0.01, 0.0, 0.02]]),
                kappa_final=np.array([[2.0, 2.1, 1.9, 2.0]]), q_acc_final=np.array([[1.0] * 4]))
    assert rules.delay_test(base, 0)["outcome"] == "yes"
    early = dict(base, q_acc_window=np.array([[0.95, 0.97, 0.99, 0.96]]))
    assert rules.delay_test(early, 0)["outcome"] == "no"
    never = dict(base, q_acc_final=np.array([[0.5] * 4]), kappa_final=np.array([[0.0] * 4]))
    assert rules.delay_test(never, 0)["outcome"] == "unknown"


def test_map_trend_rule_on_handmade_cells():
    def cell(axis, value, gain, se=0.01):
        return dict(axis=axis, value=value, gain=gain, gain_lo=gain - 0.03, gain_hi=gain + 0.03,
                    gain_se=se, q_delayed="no", q_first_small=0.0)
    cells = [cell("base", None, 0.05), cell("p0", 0.1, 0.10), cell("p0", 0.4, 0.0),
             cell("d_over_n", 0.5, 0.0), cell("d_over_n", 4.0, 0.10)]
    ev = dict(cells=cells, base_values={"p0": 0.2, "d_over_n": 2.0}, sizes={})
    # p₀ 0.1 -> 0.4: gain falls by 0.10, z = 0.10/(0.01·√2) = 7.1 > 1.96; d/n likewise rises
    assert ll.verdict_map(ev, {}).status == "confirmed"
    cells[2] = cell("p0", 0.4, 0.2)  # gain rises with p₀: the opposite trend, z < −1.96
    assert ll.verdict_map(ev, {}).status == "refuted"
    cells[2] = cell("p0", 0.4, 0.09)  # z = 0.71: not significant
    assert ll.verdict_map(ev, {}).status == "inconclusive"


def test_three_arms_one_program_and_no_recompile(quick_verdicts):
    key = jax.random.key(7)
    cfg = dict(ll.QUICK, n_draws=2)  # the shapes of the quick claims: compiled already
    before = engine.trace_count()
    a = ll.pq_runs(cfg, key=key)
    assert a["train_acc"].shape == (3, 2, 2, 21, 3)  # (arm, draw, seed, record, type)
    # new η₁, η₂, noise, anneal step, p₀, r, λ: traced values or data, never a recompile
    b = ll.pq_runs(dict(cfg, eta1=3.0, eta2=0.05, noise_std=0.3, anneal_step=300, p0=0.3,
                        r=0.2, l2=1e-3), key=key)
    assert engine.trace_count() == before and b["compilations"] == 0
    ll._CACHE.clear()
    c = ll.pq_runs(cfg, key=key)  # same key: identical numbers
    np.testing.assert_array_equal(a["test_acc"], c["test_acc"])
    np.testing.assert_array_equal(a["kappa"], c["kappa"])


@pytest.mark.parametrize("change, name", [
    (dict(anneal_step=0), "anneal_step"), (dict(anneal_step=40), "anneal_step"),
    (dict(anneal_step=55), "anneal_step"), (dict(anneal_step=15), "record_every"),
    (dict(p0=0.7, q0=0.5), r"p0 \+ q0"), (dict(r=0.0), "r"), (dict(r=-0.2), "r"),
    (dict(eta1=0.0), "eta1"), (dict(batch_size=50), "batch_size"),
])
def test_bad_input_before_compilation(change, name):
    before = engine.trace_count()
    with pytest.raises(InvalidParameter, match=rf"^{name} = "):
        ll.pq_runs(dict(TINY, **change), key=jax.random.key(0))
    assert engine.trace_count() == before


@pytest.mark.parametrize("kw, name", [(dict(patch_size=9), "patch_size"),
                                      (dict(patch_size=0), "patch_size"),
                                      (dict(offset_norm=0.0), "offset_norm")])
def test_patch_bad_input(kw, name):
    with pytest.raises(InvalidParameter, match=rf"^{name} = "):
        dp.make_digits_patch(key=jax.random.key(0), **kw)


@pytest.mark.parametrize("change, name", [
    (dict(anneal_epoch=8), "anneal_epoch"), (dict(grid_patch_sizes=[3, 9]), "patch_size"),
    (dict(grid_offset_norms=[0.3, -1.0]), "offset_norm"), (dict(grid_eta2s=[0.05, 0.0]), "eta2"),
    (dict(grid_eta2s=[0.2]), "grid_eta2s"), (dict(grid_draws=0), "grid_draws"),
])
def test_patch_claim_bad_input_before_compilation(change, name):
    claim = get_claims(["largelr.patch"])[0]
    before = engine.trace_count()
    with pytest.raises(InvalidParameter, match=rf"^{name} = "):
        claim.run(dict(claim.config("quick"), **change), key=jax.random.key(0))
    assert engine.trace_count() == before


def test_patch_selection_rule_on_handmade_cells():
    def cell(k, o, final, eta2=0.05):
        return dict(eta2=eta2, patch_size=k, offset_norm=o, strength=k * o, small_final=final)
    cells = [cell(3, 0.3, 0.1), cell(5, 0.3, 0.95), cell(3, 1.0, 0.99), cell(3, 3.0, 1.0),
             cell(3, 0.3, 1.0, eta2=0.2)]
    # weakest by offset_norm·k among the learned cells at this η₂ (5·0.3 = 1.5 < 3·1.0)
    assert lp.select_cell(cells, 0.05)["strength"] == pytest.approx(1.5)
    assert lp.select_cell(cells, 0.2)["offset_norm"] == 0.3
    assert lp.select_cell([cell(3, 0.3, 0.5)], 0.05) is None
    # grid summary: epoch 1, the pre-anneal window (epochs 2..4 of 8), final, clean gain
    cfg = dict(epochs=8, anneal_epoch=4)
    po = np.zeros((2, 2, 9))
    po[0, :, 2:5] = [0.1, 0.2, 0.3]
    po[1, :, 1], po[1, :, -1] = 0.7, 1.0
    cl = np.zeros((2, 2, 9))
    cl[0, :, -1], cl[1, :, -1] = [0.9, 0.8], [0.85, 0.85]
    row = lp.grid_cell(cfg, po, cl)
    assert row["small_epoch1"] == pytest.approx(0.7) and row["small_final"] == pytest.approx(1.0)
    assert row["large_anneal_pre_anneal"] == pytest.approx(0.2)
    assert row["clean_gain"] == pytest.approx(0.0)


def test_patch_grid_never_recompiles(quick_verdicts):
    """New patch strengths, sizes and learning rates are data and traced values."""
    cfg = get_claims(["largelr.patch"])[0].config("quick")  # compiled by the quick verdicts
    before = engine.trace_count()
    kw = dict(data_key=jax.random.key(3), sgd_key=jax.random.key(4))
    a = lp.patch_curves(cfg, patch_size=5, offset_norm=0.7, eta2=0.1, **kw)
    b = lp.patch_curves(dict(cfg, eta1=2.0), patch_size=2, offset_norm=1.5, eta2=0.02, **kw)
    assert engine.trace_count() == before
    assert a["patch_only"].shape == b["patch_only"].shape == (2, cfg["epochs"] + 1)


def test_patch_testbed_recipe():
    tb = dp.make_digits_patch(key=jax.random.key(0), patch_size=3)
    x = np.asarray(tb.x_train).reshape(-1, 8, 8)
    only = np.asarray(tb.x_patch_only).reshape(-1, 8, 8)
    assert np.all(only[:, 3:, :] == 0) and np.all(only[:, :3, 3:] == 0)  # blank outside
    # patch-only test images: z ± ζ_y, so the mean over both signs of a class is z
    z = only[:, :3, :3].mean(axis=0)
    assert np.all((z >= -0.5) & (z <= 1.5))
    # 80% of the training images carry a patch, 20% of those on a blank image
    blank_rest = np.all(x[:, 3:, :] == 0, axis=(1, 2)) & np.all(x[:, :3, 3:] == 0, axis=(1, 2))
    n = len(x)
    assert abs(blank_rest.sum() - 0.16 * n) <= 4 * np.sqrt(n * 0.16 * 0.84) + 2


@pytest.fixture(scope="module")
def quick_verdicts():
    out = {}
    for cid in IDS:
        claim = get_claims([cid])[0]
        cfg = dict(claim.config("quick"), seed=0)
        ev = jsonable(claim.run(cfg, key=jax.random.key(0)))
        out[cid] = (claim, cfg, ev, claim.make_verdict(ev, cfg))
    return out


def test_quick_verdicts_and_figures(quick_verdicts, tmp_path):
    for cid, (claim, cfg, ev, v) in quick_verdicts.items():
        assert v.status in ("confirmed", "refuted", "inconclusive"), cid
        assert v.rule and v.summary
        claim.figure(ev, v, tmp_path / f"{cid}.png")
        assert (tmp_path / f"{cid}.png").stat().st_size > 10_000
    # the four P/Q claims measured the same runs
    evs = [quick_verdicts[i][2] for i in IDS[:4]]
    for e in evs[1:]:
        assert e["test_final"] == evs[0]["test_final"]
    # the patch claim: its grid is in the evidence and the chosen cell is learnable or flagged
    _, pcfg, pev, pv = quick_verdicts["largelr.patch"]
    assert len(pev["grid"]) == (len(pcfg["grid_offset_norms"]) * len(pcfg["grid_patch_sizes"])
                                * len(pcfg["grid_eta2s"]))
    assert pv.status == "inconclusive" or pv.measured["testable"]
    gen = quick_verdicts["largelr.generalization"][3]
    lo, hi = gen.measured["gain_ci"]
    assert lo <= gen.measured["gain"] <= hi


def test_verdicts_reproducible_at_fixed_key(quick_verdicts):
    ll._CACHE.clear()
    for cid in ("largelr.generalization", "largelr.patch"):
        claim, cfg, ev, v = quick_verdicts[cid]
        again = claim.make_verdict(jsonable(claim.run(cfg, key=jax.random.key(0))), cfg)
        assert again.to_json() == v.to_json()
