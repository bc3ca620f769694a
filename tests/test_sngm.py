"""SNGM synthetic claims: the engine factory is exactly SNGM / MSGD on the noisy gradient, the
sweep compiles once per shape and reads its budgets from prefixes, B_max and its censoring-aware
bootstrap follow their definitions, the shared sweep runs once per configuration and key, and
every outcome of every rule is reached (hand-made evidence) and bad input is named."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st

from conftest import quick
from simulations import engine, optimizers, registry, stats
from simulations import sweep as sw
from simulations.claims.sngm import rules, runs
from simulations.claims.sngm.runs import OPEN
from simulations.registry import Evidence, get_claims
from simulations.testbeds.smooth import make_smooth_testbed
from theory.validation import InvalidParameter

HYP = settings(max_examples=30, deadline=None, derandomize=True)


def _small_sweep(etas, key=0, batch_sizes=(4, 8, 16), budgets=(256, 512)):
    tb = make_smooth_testbed("lsmooth", x0=3.0)
    return sw.sweep(tb, batch_sizes=list(batch_sizes), budgets=list(budgets), etas=etas,
                    key=jax.random.key(key), n_seeds=3)


# ---------------------------------------------------------------------- optimizers
def _trajectory(opt, tb, steps=20):
    w = jnp.asarray(tb.x0, jnp.float32)
    s = opt.init(w)
    out = []
    for _ in range(steps):
        u, s = opt.update(tb.gradient(w), s, w)
        w = optax.apply_updates(w, u)
        out.append(np.asarray(w))
    return np.array(out)


@pytest.mark.parametrize("index, reference", [(0, optimizers.sngm), (1, optimizers.momentum_sgd)])
def test_noisy_factory_is_exactly_the_method_on_the_noisy_gradient(index, reference):
    """Method index 0 is optimizers.sngm, 1 is optimizers.momentum_sgd, after the same
    isotropic noise: the same float operations, so bitwise equal trajectories."""
    tb = make_smooth_testbed("lsmooth", x0=3.0)
    key = jax.random.key(3)
    hp = dict(method=jnp.int32(index), learning_rate=jnp.float32(0.05), momentum=jnp.float32(0.9),
              noise_std=jnp.float32(0.3))
    got = _trajectory(optimizers.make_noisy_sngm_or_msgd(hp, key=key), tb)
    ref = optax.chain(optimizers.isotropic_gaussian_noise(jnp.float32(0.3), key=key), reference(0.05, 0.9))
    np.testing.assert_array_equal(got, _trajectory(ref, tb))


def test_isotropic_noise_moments_and_cost_free_of_d_squared():
    """Mean 0 and covariance std²·I over 4000 draws (d = 6): every mean and second moment
    within a family-wise Student-t critical value of its exact value; the transform holds
    no d×d matrix (its state is a key only)."""
    std, d, n = 0.7, 6, 4000
    keys = jax.random.split(jax.random.key(1), n)
    draw = jax.vmap(lambda k: optimizers.isotropic_gaussian_noise(std, key=k).update(
        jnp.zeros(d), optimizers.NoiseState(key=k))[0])(keys)
    x = np.asarray(draw, np.float64)
    prods = (x[:, :, None] * x[:, None, :]).reshape(n, -1)
    exact = np.concatenate([np.zeros(d), (std ** 2 * np.eye(d)).ravel()])
    mean, se, _ = stats.mean_stderr(np.concatenate([x, prods], axis=1), axis=0)
    crit = stats.critical_t(n_comparisons=mean.size, dof=n - 1)
    assert np.all(np.abs(mean - exact) <= crit * se + 1e-7)
    state = optimizers.isotropic_gaussian_noise(std, key=jax.random.key(0)).init(jnp.zeros(d))
    assert [np.shape(leaf) for leaf in jax.tree_util.tree_leaves(state)] == [()]


def test_select_and_large_batch_method_pick_exactly_one_optimizer():
    tb = make_smooth_testbed("l0l1", x0=2.0, d=4)
    refs = (optimizers.sngm(0.05, 0.9), optimizers.momentum_sgd(0.05, 0.9), optax.lars(0.05, momentum=0.9))
    for k, ref in enumerate(refs):
        hp = dict(method=jnp.int32(k), learning_rate=jnp.float32(0.05), momentum=jnp.float32(0.9))
        got = _trajectory(optimizers.make_large_batch_method(hp, key=jax.random.key(0)), tb, steps=5)
        np.testing.assert_array_equal(got, _trajectory(ref, tb, steps=5))
    assert optimizers.LARGE_BATCH_METHODS == ("sngm", "msgd", "lars")


# ------------------------------------------------------------------------ the sweep
def test_sweep_no_recompile_on_new_eta_or_batch_values_and_reproducible():
    """B is a value (the noise std), η a value: a new grid of either compiles nothing as long
    as the shapes agree (number of configs, n_steps = max C / min B, record length)."""
    etas, cs = np.geomspace(1e-3, 0.5, 4), (768, 1536)
    a = _small_sweep(etas, budgets=cs)
    before = engine.trace_count()
    b = _small_sweep(etas * 1.7, budgets=cs)                            # new η values
    c = _small_sweep(etas, batch_sizes=(4, 6, 16), budgets=cs)          # new B values
    d = _small_sweep(etas * 0.3, batch_sizes=(4, 12, 16), budgets=cs)   # both
    assert engine.trace_count() == before
    assert b.compilations == c.compilations == d.compilations == 0
    assert not np.array_equal(a.tail[:, :, 1], c.tail[:, :, 1])  # B = 6 is not B = 8
    again = _small_sweep(etas, budgets=cs)  # same key and grid: identical numbers
    np.testing.assert_array_equal(a.tail, again.tail)
    assert a.tail.shape == (2, 2, 3, 4, 3)  # (budget, method, B, η, seed)


def test_sweep_prefix_and_metrics():
    """Budget C's first-hitting steps come from the first T = C/B iterates only (<= T),
    and step 0 (the deterministic start, far from stationary) never counts as a hit."""
    res = _small_sweep(np.geomspace(1e-3, 0.5, 4))
    T = res.iterations()
    hits = res.hit_steps(2.0)
    for i in range(len(res.budgets)):
        for j in range(len(res.batch_sizes)):
            h = hits[i, :, j]
            assert np.all(h[np.isfinite(h)] <= T[i, j])
    # at w0 = 3·1 the gradient norm is √10·|3 − 3 sin 3| = 8.15 > 2: step 0 never hits
    assert np.all(hits > 0)


def _result(tail, rec=None):
    return sw.SweepResult(methods=("sngm", "msgd"), batch_sizes=np.array([4, 8, 16]),
                          budgets=np.array([64]), etas=np.ones((2, tail.shape[3])), beta=0.9, sigma=1.0,
                          average=tail, average_sq=tail, tail=tail, failed=~np.isfinite(tail),
                          gnorm_records=np.full((2, 3, tail.shape[3], 3, 5), 1.0) if rec is None else rec,
                          record_every=2, n_steps=16, wall_seconds=0.0, compilations=0)


def test_b_max_and_hit_steps_follow_their_definitions():
    # hand-made tails, axes (budget, method, B, η, seed): B_max = largest B of the grid for
    # which some η has median tail (over seeds) <= ε; a failed (+inf) seed counts as above ε
    tail = np.full((1, 2, 3, 2, 3), 1.0)
    tail[0, 0, 0, 1] = [0.1, 0.1, 5.0]        # sngm, B=4: median 0.1 <= 0.2
    tail[0, 0, 2, 0] = [0.1, 0.3, 0.15]       # sngm, B=16: median 0.15 <= 0.2 (B=8 fails)
    tail[0, 1, 1, 0] = [0.1, np.inf, np.inf]  # msgd, B=8: median inf: fails
    tail[0, 1, 0, 1] = [0.2, 0.05, 0.3]       # msgd, B=4: median exactly ε qualifies
    rec = np.full((2, 3, 2, 3, 5), 1.0)
    rec[0, 0, 0, 0, 3:] = 0.1                 # hits ε at record 3 = step 3·r
    res = _result(tail, rec)
    assert res.b_max(0.2).tolist() == [[16, 4]]
    assert sw.b_max_index(tail, 0.2).tolist() == [[2, 0]]
    assert _result(tail + 10).b_max(0.2).tolist() == [[0, 0]]
    assert sw.b_max_index(tail + 10, 0.2).tolist() == [[-1, -1]]
    hits = res.hit_steps(0.2)
    assert hits[0, 0, 0, 0, 0] == 6 and np.isinf(hits[0, 0, 0, 0, 1])


# ------------------------------------------------------------------ B_max intervals
def _rows(indices, n_b=4, n_seeds=12):
    """(B, η, seed) tails whose B_max index is ``indices[k]`` for every seed: seeds below ε
    up to that B, above after it (−1: none below)."""
    out = []
    for i in indices:
        t = np.full((n_b, 2, n_seeds), 1.0)
        t[: i + 1, 0] = 0.1
        out.append(t)
    return out


@pytest.mark.parametrize("indices, coeffs, expected", [
    ((2, 0), (1, -1), (2, 2, 2)),             # inside the grid: a point interval
    ((3, 1), (1, -1), (2, 2, OPEN)),          # first at the top: may be larger
    ((2, -1), (1, -1), (3, 3, OPEN)),         # second below the grid: may be smaller
    ((-1, 1), (1, -1), (-2, -OPEN, -2)),      # first below the grid: may be smaller
    ((-1, -1), (1, -1), (0, -OPEN, OPEN)),    # both censored below: unknown
])
def test_step_interval_leaves_censored_ends_open(indices, coeffs, expected):
    st = runs.step_interval(_rows(indices), list(coeffs), 0.2, key=jax.random.key(0), name="t",
                            n_boot=200, confidence=0.95)
    assert (st["estimate"], st["low"], st["high"]) == expected
    assert st["censored"] == (expected[1] != expected[2] or abs(expected[1]) == OPEN)


def test_step_interval_takes_rows_of_different_batch_grids():
    """Starts may use different batch grids: the top of each row is its own (a B_max at the
    top of the shorter grid is censored, one below the top of the longer grid is not)."""
    short, long_ = _rows([2], n_b=3)[0], _rows([2], n_b=5)[0]
    st = runs.step_interval([long_, short], [1, -1], 0.2, key=jax.random.key(0), name="t",
                            n_boot=200, confidence=0.95)
    assert (st["estimate"], st["low"], st["high"]) == (0, -OPEN, 0)


def test_step_interval_widens_with_seed_disagreement():
    """Half the seeds put B_max at index 1, half at 2: the bootstrap interval of the grid
    steps covers both values (a point interval would misstate the uncertainty)."""
    t = np.full((4, 2, 16), 1.0)
    t[:2, 0] = 0.1
    t[2, 0, :8] = 0.1       # B index 2 has 8 of 16 seeds below ε: the median (0.195) just below
    t[2, 0, 8:] = 0.29
    ref = _rows([0], n_b=4, n_seeds=16)[0]
    st = runs.step_interval([t, ref], [1, -1], 0.2, key=jax.random.key(0), name="t", n_boot=500,
                            confidence=0.95)
    assert st["low"] == 1 and st["high"] == 2


# ---------------------------------------------------------------------- shared runs
def test_shared_sweep_runs_once_per_config_and_key():
    _, cfg_b, ev_b, _ = quick("sngm.bmax_linear_in_C")
    _, cfg_r, ev_r, _ = quick("sngm.relaxed_advantage")
    # relaxed's x0 = 12 sweep is the same config as bmax's l0l1 entry: one run, one object
    sub = dict(cfg_r["sweep"], **cfg_r["starts"][-1])
    assert registry.canonical_json(sub) == registry.canonical_json(cfg_b["testbeds"]["l0l1"])
    key = jax.random.key(0)
    before = engine.trace_count()
    assert runs.sweep(sub, key=key) is runs.sweep(cfg_b["testbeds"]["l0l1"], key=key)
    assert engine.trace_count() == before  # memoized: nothing ran again
    np.testing.assert_array_equal(ev_b.l0l1.median_tail, ev_r.sweeps[-1].median_tail)
    # the L-smooth sweep is read by bound and parity under "sweep"
    _, _, ev_p, _ = quick("sngm.lsmooth_parity")
    _, _, ev_bd, _ = quick("sngm.bound")
    np.testing.assert_array_equal(ev_p.sweep.tail, ev_bd.sweep.tail)


# ------------------------------------------------------------------------ sngm.bound
def test_bound_holds_and_fails_on_a_mean_over_its_bound():
    _, cfg, ev, v = quick("sngm.bound")
    assert v.status == "holds", v.summary
    assert 0 < v.measured["sngm_tightness_max"] <= v.measured["sngm_max_ucl_over_bound"] <= 1
    avg = ev.sweep.average.copy()
    avg[-1, 0, 0, 0] = 2 * ev.sngm_bound[-1, 0, 0]  # every seed at twice the bound
    bad = Evidence({**ev.to_dict(), "sweep": {**ev.sweep.to_dict(), "average": avg}})
    assert rules.bound(bad, cfg).status == "violated"


# ---------------------------------------------------- hand-made evidence for the rules
def _steps(low, high, est=None, lower=None, upper=None):
    est = low if est is None else est
    lower = est if lower is None else lower
    upper = est if upper is None else upper
    return dict(estimate=est, low=low, high=high, point_lower=lower, point_upper=upper,
                censored=lower != upper)


def _bmax_ev(intervals):
    def tb(iv):
        return dict(budgets=[1024, 4096], methods=["sngm", "msgd"], b_max=[[8, 8], [32, 32]],
                    steps=[_steps(*iv[0]), _steps(*iv[1])])
    return Evidence(dict(testbed_names=["lsmooth", "l0l1"], lsmooth=tb(intervals[0]), l0l1=tb(intervals[1]),
                         n_findings=4))


_BOOTCFG = dict(n_boot=2000, confidence=0.95)


@pytest.mark.parametrize("intervals, status", [
    ((((2, 3), (1, 2)), ((2, 2), (1, 3))), "confirmed"),
    ((((2, 3), (1, 2)), ((4, 5), (1, 3))), "refuted"),          # 16x or 32x: outside [1, 3]
    ((((2, 3), (1, 2)), ((2, OPEN), (1, 3))), "inconclusive"),  # censored: open end
    ((((0, 2), (1, 2)), ((2, 2), (1, 3))), "inconclusive"),     # straddles the band's edge
])
def test_bmax_linear_rule_outcomes(intervals, status):
    cfg = dict(_BOOTCFG, testbeds={"lsmooth": {"eps": 0.2}, "l0l1": {"eps": 0.2}})
    v = rules.bmax_linear(_bmax_ev(intervals), cfg)
    assert v.status == status, v.summary


def _parity_ev(*intervals):
    return Evidence(dict(sweep=dict(budgets=[1024, 4096][: len(intervals)]),
                         summary=dict(b_max=[[8, 8]] * len(intervals)),
                         steps=[_steps(*iv) for iv in intervals], n_findings=len(intervals)))


@pytest.mark.parametrize("intervals, status", [
    (((0, 1), (-1, 0)), "confirmed"),
    (((0, 1), (2, 3)), "refuted"),
    (((0, 1), (1, 2)), "inconclusive"),
    (((-OPEN, 0), (0, 0)), "inconclusive"),
])
def test_parity_rule_outcomes(intervals, status):
    v = rules.parity(_parity_ev(*intervals), dict(_BOOTCFG, sweep={"eps": 0.2}))
    assert v.status == status, v.summary


def _relaxed_ev(ratio=(2, 3), change=(1, 2), grow=(2, 4), eta=(3, 2, 4), reach=(5, 4, 6)):
    etas = np.geomspace(1e-6, 1e-1, 10)
    caps = [etas[3], etas[3], etas[3]]
    sweeps = [dict(etas=[np.geomspace(1e-3, 1, 10), etas], b_max=[[64, 16]], budgets=[4096])] * 3
    return Evidence(dict(x0s=[6.0, 9.0, 12.0], heavy_ball_cap=caps, sweeps=sweeps,
                         ratio_steps=[_steps(0, 1), _steps(1, 1), _steps(*ratio)],
                         change_pairs=[[6.0, 9.0], [9.0, 12.0], [6.0, 12.0]],
                         changes=[_steps(*change), _steps(*change), _steps(*grow)],
                         msgd_best_eta_index=[list(eta)] * 3, sngm_b_max_index_far=list(reach),
                         n_findings=7))


@pytest.mark.parametrize("kw, status", [
    (dict(), "confirmed"),
    (dict(ratio=(0, 1)), "refuted"),              # advantage below 4x, resolved
    (dict(eta=(7, 6, 8)), "refuted"),             # best η ≥ 46x the cap, resolved
    (dict(change=(-2, -1)), "refuted"),           # the ratio shrinks with x0
    (dict(ratio=(1, 3)), "inconclusive"),         # straddles 4x
    (dict(eta=(3, 0, 4)), "inconclusive"),        # best η at the grid's end: open below
    (dict(ratio=(0, 1), reach=(-1, -1, 0)), "inconclusive"),  # gate: SNGM may not reach ε
])
def test_relaxed_rule_outcomes(kw, status):
    v = rules.relaxed(_relaxed_ev(**kw), dict(_BOOTCFG, sweep={"eps": 0.2}, eta_factor=4.0))
    assert v.status == status, v.summary


@pytest.mark.parametrize("below, status", [
    ([16, 3, 0], "confirmed"),    # 16/16 at one η: Wilson (Bonferroni over 3 η) above 1/2
    ([2, 3, 0], "refuted"),       # every η: interval at or below 1/2
    ([10, 3, 0], "inconclusive"),  # 10/16 straddles 1/2
])
def test_no_lower_rule_outcomes(below, status):
    tail = np.full((3, 16), 0.5)
    for i, k in enumerate(below):
        tail[i, :k] = 0.1
    ev = Evidence(dict(etas=[1e-3, 1e-2, 1e-1], tail=tail, bound_batch_low=400.0,
                       steps_to_eps=[100.0, np.inf, np.inf]))
    v = rules.no_lower(ev, dict(eps=0.2, budgets=[4096], confidence=0.95))
    assert v.status == status, v.summary
    k = below[int(np.argmax(below))]
    _, lo, hi = stats.wilson_interval(k, 16, 1 - 0.05 / 3)
    assert v.measured["wilson"] == pytest.approx([lo, hi], rel=1e-12)


def test_quick_measurements_are_on_the_grid():
    _, cfg, ev, v = quick("sngm.no_lower_batch_limit")
    assert ev.bound_batch_low == pytest.approx(16 / 0.2 ** 2)  # 16σ²/ε² = 400 > B = 1
    assert ev.compilations <= 1
    _, cfg, ev, v = quick("sngm.relaxed_advantage")
    assert list(ev.x0s) == [s["x0"] for s in cfg["starts"]]
    for x0, cap in zip(ev.x0s, ev.heavy_ball_cap):  # 2(1+β)/(cosh x0 − 3 cos x0)
        assert cap == pytest.approx(2 * 1.9 / (np.cosh(x0) - 3 * np.cos(x0)), rel=1e-12)
    _, cfg, ev, v = quick("sngm.bmax_linear_in_C")
    for name in ev.testbed_names:
        grid = cfg["testbeds"][name]["batch_sizes"]
        assert set(ev[name].b_max.ravel().tolist()) <= set(grid) | {0}


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs, name", [
    (dict(beta=1.0), "beta"), (dict(beta=-0.1), "beta"),
    (dict(batch_sizes=[0, 4]), "B"), (dict(budgets=[2]), "C"),
])
def test_bad_input_sweep(kwargs, name):
    args = dict(batch_sizes=[4, 8], budgets=[64], etas=[0.1], key=jax.random.key(0))
    args.update(kwargs)
    with pytest.raises(InvalidParameter, match=rf"^{name} = "):
        sw.sweep(make_smooth_testbed("lsmooth"), **args)


@HYP
@given(beta=st.one_of(st.floats(1.0, 1e6), st.floats(-1e6, -1e-12), st.just(float("nan"))))
def test_property_sweep_rejects_beta_before_compiling(beta):
    before = engine.trace_count()
    with pytest.raises(InvalidParameter, match=r"^beta = .* need 0 <= beta < 1"):
        sw.sweep(make_smooth_testbed("lsmooth"), batch_sizes=[4, 8], budgets=[64], etas=[0.1],
                 key=jax.random.key(0), beta=beta)
    assert engine.trace_count() == before


@HYP
@given(log_b=st.integers(1, 10), frac=st.floats(0.0, 1.0, exclude_max=True))
def test_property_sweep_rejects_budget_below_batch(log_b, frac):
    B = 2 ** log_b
    with pytest.raises(InvalidParameter, match=r"^C = .* need an integer budget C >= B = "):
        sw.sweep(make_smooth_testbed("lsmooth"), batch_sizes=[1, B], budgets=[int(frac * B)],
                 etas=[0.1], key=jax.random.key(0))


@HYP
@given(eps=st.one_of(st.floats(-1e6, 0.0), st.just(float("nan")), st.just(-float("inf"))))
def test_property_eps_not_positive_everywhere(eps):
    res = _result(np.ones((1, 2, 3, 1, 3)))
    for reader in (res.b_max, res.hit_steps, res.steps_to_eps):
        with pytest.raises(InvalidParameter, match=r"^eps = .* need eps > 0"):
            reader(eps)


_BAD = [(dict(beta=1.0), "beta"), (dict(eps=0.0), "eps"), (dict(batch_sizes=[0, 4, 8]), "B"),
        (dict(budgets=[0, 2 ** 10]), "C")]


def _with_sweep_change(claim_id, change):
    cfg = get_claims([claim_id])[0].config("quick")
    if claim_id == "sngm.bmax_linear_in_C":
        cfg["testbeds"]["l0l1"].update(change)
    elif claim_id == "sngm.no_lower_batch_limit":
        cfg.update(change)
    else:
        cfg["sweep"].update(change)
    return cfg


@pytest.mark.parametrize("claim_id, change, name", [
    (c, ch, n) for c in ("sngm.bound", "sngm.lsmooth_parity", "sngm.bmax_linear_in_C",
                         "sngm.relaxed_advantage", "sngm.no_lower_batch_limit") for ch, n in _BAD
    if not (c == "sngm.no_lower_batch_limit" and "batch_sizes" in ch)])  # that claim has B = 1 only
def test_claims_reject_bad_config_before_compiling(claim_id, change, name):
    """Every synthetic claim validates β, ε, B and C before any engine call."""
    claim = get_claims([claim_id])[0]
    before = engine.trace_count()
    with pytest.raises(InvalidParameter, match=rf"^{name} = .* is not allowed"):
        claim.evaluate("quick", key=jax.random.key(0), config=_with_sweep_change(claim_id, change))
    assert engine.trace_count() == before
