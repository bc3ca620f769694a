"""Claims of Wen et al. (structured covariance noise): the theorems hold at quick fidelity
(the contract test), their rules fail on contradicting evidence, the Monte-Carlo plan is
right, and every outcome of the hypothesis rule is reached."""
import jax
import numpy as np
import pytest

from conftest import quick
from simulations import engine, optimizers
from simulations.claims.covnoise import rules, runs
from simulations.registry import Evidence
from simulations.testbeds import make_noisy_quadratic
from theory import quadratic as qt
from theory.validation import InvalidParameter


def _edit(ev, **changes):
    return Evidence({**ev.to_dict(), **changes})


def test_frobenius_details():
    _, cfg, ev, v = quick("covnoise.frobenius")
    assert np.all(np.diff(ev.frob_C) < 0)  # full > block > diagonal > isotropic
    assert v.measured["identity_max_rel_err"] <= 1e-10
    # the plan was met before running: the seeds run are the configured ones, raised to need
    assert np.all(ev.seeds_needed <= ev.n_seeds) and ev.n_seeds == max(cfg["n_seeds"], ev.seeds_needed.max())


def test_frobenius_is_violated_by_a_gap_off_its_prediction():
    _, cfg, ev, v = quick("covnoise.frobenius")
    assert v.status == "holds"
    # a paired MC gap 10 t·SE away from the exact gap: evidence against the theorem
    gm = ev.mc_gap_mean.copy()
    gm[0, 0] = ev.gap_exact[0, 0] + 10 * 5 * ev.mc_gap_se[0, 0]
    assert rules.frobenius(_edit(ev, mc_gap_mean=gm), cfg).status == "violated"
    # a reversed ordering in closed form
    st = ev.stationary.copy()
    st[[0, 1]] = st[[1, 0]]
    assert rules.frobenius(_edit(ev, stationary=st), cfg).status == "violated"


def test_frobenius_rejects_an_underpowered_configuration_before_simulating():
    _, cfg, _, _ = quick("covnoise.frobenius")
    before = engine.trace_count()
    with pytest.raises(InvalidParameter, match="max_seeds = 16 .*to resolve"):
        runs.frobenius(dict(cfg, n_seeds=16, max_seeds=16, alphas=[0.25, 1.0]), key=jax.random.key(0))
    assert engine.trace_count() == before


def test_seeds_are_sized_per_key_up_to_max_seeds():
    """The instance comes from the key, so does the power analysis: a key whose gaps need more
    seeds than configured gets them (up to max_seeds), instead of failing the reproduction."""
    assert runs.planned_seeds(147, 128, 1024, "a gap") == 147
    assert runs.planned_seeds(40, 128, 1024, "a gap") == 128
    with pytest.raises(InvalidParameter, match=r"max_seeds = 100 is not allowed: need >= 147 to resolve a gap"):
        runs.planned_seeds(147, 128, 100, "a gap")


def test_tail_average_sd_matches_monte_carlo(key):
    """The planned per-seed sd of a paired tail gap vs its Monte-Carlo estimate over 2000
    seeds: the sample sd of n normal-ish values has relative SE ≈ 1/√(2(n−1)) = 1.6%; the
    rule |ŝ/s − 1| <= 5·1.6% + 5% allows the formula's O(τ/m) edge terms (τ = 1/(2αλ_min)
    = 50 steps over m = 1000 iterates)."""
    tb = make_noisy_quadratic(d=8, lambda_min=0.1, x0_norm=0.0, key=jax.random.key(5))
    A = np.asarray(tb.hessian, np.float64)
    covs = [qt.structured_covariance(A, p, 0.05) for p in ("full", "diagonal")]
    factors = [optimizers.covariance_factor(C) for C in covs]
    T, alpha, n = 2000, 1.0, 2000
    res = engine.simulate(tb, optimizers.make_noisy_sgd,
                          {"learning_rate": np.full(2, alpha), "noise_factor": np.stack(factors)},
                          key=key, n_seeds=n, n_steps=T, record_every=50,
                          window_metrics={"loss": runs._loss}, common_random_numbers=True)
    tail = res.window_average("loss", 0.5)
    measured = np.std(tail[0] - tail[1], ddof=1)
    planned = qt.tail_average_sd(A, factors, [1.0, -1.0], alpha, T // 2)
    assert abs(measured / planned - 1) <= 5 / np.sqrt(2 * (n - 1)) + 0.05
    # one process alone (independent seeds): the same formula with one factor
    single = qt.tail_average_sd(A, factors[:1], [1.0], alpha, T // 2)
    assert abs(np.std(tail[0], ddof=1) / single - 1) <= 5 / np.sqrt(2 * (n - 1)) + 0.05


def test_exact_moments_rule_fails_on_a_biased_mean():
    _, cfg, ev, v = quick("covnoise.exact_moments")
    m = ev.mc_mean.copy()
    m[0, -1] += 20 * ev.mc_se[0, -1]
    assert rules.exact_moments(_edit(ev, mc_mean=m), cfg).status == "violated"


def test_negative_control_rule_fails_when_the_difference_is_off():
    _, cfg, ev, _ = quick("covnoise.negative_control")
    m = ev.mc_tail_mean.copy()
    m[1] = m[0]  # no difference measured although one is predicted
    assert rules.negative_control(_edit(ev, mc_tail_mean=m), cfg).status == "violated"


# ------------------------------------------------------- covnoise.emulates_small_batch
def test_emulates_small_batch_measurement():
    _, cfg, ev, v = quick("covnoise.emulates_small_batch")
    # s is chosen so that Σ/M_L + sΣ = Σ/M_S: the frozen-Σ(ŵ) arm has small-batch covariance
    assert np.isclose(ev.predicted_fixed_sigma[5], ev.predicted_fixed_sigma[0], rtol=1e-12)
    assert sum(ev.n_diverged) == 0
    lo, hi = v.measured["ratio_ci"]
    assert lo <= v.measured["ratio_full_to_small"] <= hi


def _arms(ratio, ratio_se, order=(1.0, 0.9), se=0.002):
    """Hand-made evidence: small-batch excess 1, the full-noise arm at ``ratio``, the
    diagonal and isotropic arms at ``order`` (relative), 64 valid seeds each."""
    m = [1.0, 0.03, ratio, order[0] * 0.95, order[1] * 0.95, 0.77]
    s = [0.001, 0.001, ratio_se, se, se, 0.005]
    return Evidence(dict(excess_mean=m, excess_se=s, n_valid=[64] * 6, predicted_fixed_sigma=[1] * 6))


@pytest.mark.parametrize("ratio, ratio_se, order, expected", [
    (1.00, 0.002, (1.0, 0.9), "confirmed"),      # interval inside ±5%, ordering resolved
    (0.80, 0.002, (1.0, 0.9), "refuted"),        # interval below the band
    (1.00, 0.02, (1.0, 0.9), "inconclusive"),    # interval straddles the band's edge
    (1.00, 0.002, (0.9, 1.0), "refuted"),        # diagonal significantly below isotropic
    (1.00, 0.002, (1.0, 0.999), "inconclusive"), # ordering not resolved
])
def test_emulates_rule_outcomes(ratio, ratio_se, order, expected):
    cfg = dict(match_tolerance=0.05)
    assert rules.emulates_small_batch(_arms(ratio, ratio_se, order), cfg).status == expected
