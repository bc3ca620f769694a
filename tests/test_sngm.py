"""CLAIMS.md §2 (SNGM): the derived bounds must hold on the L-smooth testbed; the sweep
helper compiles once per shape; hypotheses are measured reproducibly; bad input is named."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import simulations.claims.sngm as claims
from simulations import engine, optimizers
from simulations import sweep as sw
from simulations.registry import get_claims
from simulations.report import jsonable
from simulations.testbeds.smooth import make_smooth_testbed
from theory.validation import InvalidParameter


def _run(claim_id, seed=0):
    claim = get_claims([claim_id])[0]
    cfg = dict(claim.config("quick"), seed=seed)
    ev = jsonable(claim.run(cfg, key=jax.random.key(seed)))
    return claim, cfg, ev, claim.make_verdict(ev, cfg)


def _small_sweep(etas, key=0):
    tb = make_smooth_testbed("lsmooth", x0=3.0)
    return sw.sweep(tb, batch_sizes=[4, 8, 16], budgets=[256, 512], etas=etas,
                    key=jax.random.key(key), n_seeds=3)


def test_bound_holds(tmp_path):
    claim, cfg, ev, v = _run("sngm.bound")
    assert v.status == "holds", v.summary
    # the bound is an upper bound, never below the measurement: tightness in (0, 1]
    assert 0 < v.measured["sngm_tightness_max"] <= 1
    assert 0 < v.measured["msgd_tightness_max"] <= 1
    claim.figure(ev, v, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_parity_measurement(tmp_path):
    claim, cfg, ev, v = _run("sngm.lsmooth_parity")
    assert v.status in ("confirmed", "refuted", "inconclusive")
    bm = np.asarray(ev["b_max"])
    # B_max is a grid value (or 0 = no batch size reaches ε)
    assert set(bm.ravel()) <= set(cfg["batch_sizes"]) | {0}
    claim.figure(ev, v, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_sweep_no_recompile_and_reproducible():
    etas = np.geomspace(1e-3, 0.5, 4)
    a = _small_sweep(etas)
    before = engine.trace_count()
    b = _small_sweep(etas * 1.7)          # new η values: same program
    assert engine.trace_count() == before
    assert b.compilations == 0
    c = _small_sweep(etas)                # same key and grid: identical numbers
    np.testing.assert_array_equal(a.tail, c.tail)
    assert a.tail.shape == (2, 2, 3, 4, 3)  # (budget, method, B, η, seed)
    assert engine.trace_count() == before


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


def test_factory_matches_optimizers_sngm_without_noise():
    """make_momentum_method with noise_std = 0 is optimizers.sngm / momentum_sgd (float32
    round-off: one normalization computed two ways, rtol 1e-5)."""
    tb = make_smooth_testbed("lsmooth", x0=3.0)
    for normalize, ref in ((1.0, optimizers.sngm(0.05, 0.9)), (0.0, optimizers.momentum_sgd(0.05, 0.9))):
        hp = dict(learning_rate=jnp.float32(0.05), momentum=jnp.float32(0.9),
                  noise_std=jnp.float32(0.0), normalize=jnp.float32(normalize))
        opt = sw.make_momentum_method(hp, key=jax.random.key(0))
        w1 = w2 = jnp.asarray(tb.x0, jnp.float32)
        s1, s2 = opt.init(w1), ref.init(w2)
        for _ in range(20):
            u1, s1 = opt.update(tb.gradient(w1), s1, w1)
            u2, s2 = ref.update(tb.gradient(w2), s2, w2)
            w1, w2 = optax.apply_updates(w1, u1), optax.apply_updates(w2, u2)
        np.testing.assert_allclose(w1, w2, rtol=1e-5)


@pytest.mark.parametrize("kwargs, name", [
    (dict(beta=1.0), "beta"), (dict(beta=-0.1), "beta"),
    (dict(batch_sizes=[0, 4]), "B"), (dict(budgets=[2]), "C"),
])
def test_bad_input_sweep(kwargs, name):
    args = dict(batch_sizes=[4, 8], budgets=[64], etas=[0.1], key=jax.random.key(0))
    args.update(kwargs)
    with pytest.raises(InvalidParameter, match=rf"^{name} = "):
        sw.sweep(make_smooth_testbed("lsmooth"), **args)


def test_bad_eps():
    res = _small_sweep(np.geomspace(1e-3, 0.5, 4))
    for eps in (0.0, -1.0):
        with pytest.raises(InvalidParameter, match="eps"):
            res.b_max(eps)
    cfg = dict(claims.QUICK_LS, eps=0.0)
    with pytest.raises(InvalidParameter, match="eps"):
        claims.run_parity(cfg, key=jax.random.key(0))


def test_no_lower_batch_limit_measurement(tmp_path):
    claim, cfg, ev, v = _run("sngm.no_lower_batch_limit")
    assert v.status in ("confirmed", "refuted")
    assert ev["bound_batch_low"] == pytest.approx(16 / 0.2 ** 2)  # 16σ²/ε² = 400 > B = 1
    assert ev["compilations"] <= 1
    claim.figure(ev, v, tmp_path / "n.png")
    assert (tmp_path / "n.png").stat().st_size > 10_000


def test_relaxed_and_linear_measurement(tmp_path):
    claim, cfg, ev, v = _run("sngm.relaxed_advantage")
    assert v.status in ("confirmed", "refuted", "inconclusive")
    # caps from theory: 2(1+β)/(cosh x0 − 3 cos x0), exact to float64 round-off
    for x0 in cfg["x0s"]:
        cap = 2 * 1.9 / (np.cosh(x0) - 3 * np.cos(x0))
        assert ev[f"x0={x0:g}/heavy_ball_cap"] == pytest.approx(cap, rel=1e-12)
    claim.figure(ev, v, tmp_path / "r.png")
    # the l0l1 entry of bmax_linear_in_C reuses the x0 = 12 sweep (same config and key)
    claim2, cfg2, ev2, v2 = _run("sngm.bmax_linear_in_C")
    assert v2.status in ("confirmed", "refuted", "inconclusive")
    np.testing.assert_array_equal(ev2["l0l1/b_max"], ev["x0=12/b_max"])
    claim2.figure(ev2, v2, tmp_path / "l.png")
    assert (tmp_path / "l.png").stat().st_size > 10_000


def test_b_max_and_hit_steps_follow_their_definitions():
    # hand-made tails, axes (budget, method, B, η, seed): B_max = largest B of the grid for
    # which some η has median tail (over seeds) <= ε; a failed (+inf) seed counts as above ε
    import dataclasses
    from simulations.sweep import SweepResult
    tail = np.full((1, 2, 3, 2, 3), 1.0)
    tail[0, 0, 0, 1] = [0.1, 0.1, 5.0]        # sngm, B=4: median 0.1 <= 0.2
    tail[0, 0, 2, 0] = [0.1, 0.3, 0.15]       # sngm, B=16: median 0.15 <= 0.2 (B=8 fails)
    tail[0, 1, 1, 0] = [0.1, np.inf, np.inf]  # msgd, B=8: median inf: fails
    tail[0, 1, 0, 1] = [0.2, 0.05, 0.3]       # msgd, B=4: median exactly ε qualifies
    rec = np.full((2, 3, 2, 3, 5), 1.0)
    rec[0, 0, 0, 0, 3:] = 0.1                 # hits ε at record 3 = step 3·r
    res = SweepResult(methods=("sngm", "msgd"), batch_sizes=np.array([4, 8, 16]),
                      budgets=np.array([64]), etas=np.ones((2, 2)), beta=0.9, sigma=1.0,
                      average=tail, average_sq=tail, tail=tail, failed=~np.isfinite(tail),
                      gnorm_records=rec, record_every=2, n_steps=16, wall_seconds=0.0,
                      compilations=0)
    assert res.b_max(0.2).tolist() == [[16, 4]]
    assert dataclasses.replace(res, tail=tail + 10).b_max(0.2).tolist() == [[0, 0]]
    hits = res.hit_steps(0.2)
    assert hits[0, 0, 0, 0, 0] == 6 and np.isinf(hits[0, 0, 0, 0, 1])


# ------------------------------------------------------- bad inputs: property-based
from hypothesis import given, settings, strategies as st  # noqa: E402

HYP = settings(max_examples=30, deadline=None, derandomize=True)
_bad_beta = st.one_of(st.floats(1.0, 1e6), st.floats(-1e6, -1e-12), st.just(float("nan")))


@HYP
@given(beta=_bad_beta)
def test_property_sweep_rejects_beta_before_compiling(beta):
    before = engine.trace_count()
    with pytest.raises(InvalidParameter, match=r"^beta = .* need 0 <= beta < 1"):
        sw.sweep(make_smooth_testbed("lsmooth"), batch_sizes=[4, 8], budgets=[64], etas=[0.1],
                 key=jax.random.key(0), beta=beta)
    assert engine.trace_count() == before


@HYP
@given(b=st.one_of(st.integers(-10 ** 6, 0), st.floats(0.0, 4.0).filter(lambda x: x != int(x))))
def test_property_sweep_rejects_batch_below_one(b):
    with pytest.raises(InvalidParameter, match=r"^B = .* need an integer batch size B >= 1"):
        sw.sweep(make_smooth_testbed("lsmooth"), batch_sizes=[b, 8], budgets=[64], etas=[0.1],
                 key=jax.random.key(0))


@HYP
@given(log_b=st.integers(1, 10), frac=st.floats(0.0, 1.0, exclude_max=True))
def test_property_sweep_rejects_budget_below_batch(log_b, frac):
    B = 2 ** log_b
    C = int(frac * B)  # C < B: no full iteration
    with pytest.raises(InvalidParameter, match=r"^C = .* need an integer budget C >= B = "):
        sw.sweep(make_smooth_testbed("lsmooth"), batch_sizes=[1, B], budgets=[C], etas=[0.1],
                 key=jax.random.key(0))


@HYP
@given(eps=st.one_of(st.floats(-1e6, 0.0), st.just(float("nan")), st.just(-float("inf"))))
def test_property_eps_not_positive_everywhere(eps):
    # SweepResult's ε-readers, on a hand-made result (no simulation needed)
    from simulations.sweep import SweepResult
    tail = np.ones((1, 2, 1, 1, 2))
    res = SweepResult(methods=("sngm", "msgd"), batch_sizes=np.array([4]), budgets=np.array([64]),
                      etas=np.ones((2, 1)), beta=0.9, sigma=1.0, average=tail, average_sq=tail,
                      tail=tail, failed=tail < 0, gnorm_records=np.ones((2, 1, 1, 2, 3)),
                      record_every=8, n_steps=16, wall_seconds=0.0, compilations=0)
    for reader in (res.b_max, res.hit_steps, res.steps_to_eps):
        with pytest.raises(InvalidParameter, match=r"^eps = .* need eps > 0"):
            reader(eps)


_CLAIM_IDS = ["sngm.bound", "sngm.lsmooth_parity", "sngm.bmax_linear_in_C", "sngm.relaxed_advantage",
              "sngm.no_lower_batch_limit"]
_BAD = [(dict(beta=1.0), "beta"), (dict(beta=-0.5), "beta"), (dict(eps=0.0), "eps"),
        (dict(eps=-0.1), "eps"), (dict(batch_sizes=[0, 4, 8]), "B"), (dict(budgets=[0, 2 ** 10]), "C")]


@pytest.mark.parametrize("claim_id, change, name", [
    (c, ch, n) for c in _CLAIM_IDS for ch, n in _BAD
    if not (c == "sngm.no_lower_batch_limit" and "batch_sizes" in ch)])  # that claim has B = 1 only
def test_claims_reject_bad_config_before_compiling(claim_id, change, name):
    """Every synthetic claim's run validates β, ε, B and C before any engine call."""
    claim = get_claims([claim_id])[0]
    cfg = dict(claim.config("quick"), **change)
    before = engine.trace_count()
    with pytest.raises(InvalidParameter, match=rf"^{name} = .* is not allowed"):
        claim.run(cfg, key=jax.random.key(0))
    assert engine.trace_count() == before
