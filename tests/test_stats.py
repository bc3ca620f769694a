"""simulations.stats against references: scipy.stats and closed forms, small n included.

Each test is built so that a plausible mutation fails it: a normal instead of a Student-t
quantile, a halved half-width, a one-sided instead of a two-sided quantile, a missing
Bonferroni factor, a biased variance, a Wald instead of a Wilson interval.
"""
import numpy as np
import pytest
from scipy import stats as sps

from simulations import stats

RTOL = 1e-12  # the functions evaluate the same closed forms: round-off only


# ------------------------------------------------------------------ critical values
def test_critical_z_bonferroni_and_floor():
    assert stats.critical_z(n_comparisons=1) == 4.0  # Φ⁻¹(1 − 5e-5) = 3.89 < floor 4
    assert stats.critical_z(n_comparisons=100) == pytest.approx(sps.norm.isf(1e-4 / 200), rel=RTOL)
    assert stats.critical_z(n_comparisons=100, two_sided=False) == pytest.approx(sps.norm.isf(1e-4 / 100), rel=RTOL)
    assert stats.critical_z(0.05, 1, floor=0.0) == pytest.approx(1.959963984540054, rel=RTOL)


@pytest.mark.parametrize("dof", [1, 3, 7, 30, 1000])
@pytest.mark.parametrize("m", [1, 12])
def test_critical_t_is_the_bonferroni_student_quantile(dof, m):
    expected = sps.t.isf(1e-4 / (2 * m), dof)
    assert stats.critical_t(1e-4, m, dof, floor=0.0) == pytest.approx(expected, rel=RTOL)
    one = sps.t.isf(1e-4 / m, dof)
    assert stats.critical_t(1e-4, m, dof, two_sided=False, floor=0.0) == pytest.approx(one, rel=RTOL)


def test_critical_t_exceeds_the_normal_quantile_for_few_seeds():
    # with 4 seeds the t quantile is far above the normal one: a normal quantile would
    # claim a 1e-4 false-alarm rate the test does not have
    assert stats.critical_t(1e-4, 1, 3) > 5 * stats.critical_z(1e-4, 1)
    assert stats.critical_t(1e-4, 1, np.inf, floor=0.0) == pytest.approx(sps.norm.isf(5e-5), rel=RTOL)
    with pytest.raises(ValueError, match="dof"):
        stats.critical_t(1e-4, 1, 0)


def test_critical_t_false_alarm_rate_by_simulation():
    """Under the null, P(|mean|/SE > t(α=0.01, dof=3)) = 0.01 for normal data: 200 000
    draws of 4 samples; the binomial SE of the rate is 2.2e-4, so |rate − 0.01| <= 1e-3
    (4.5 SE). A normal quantile (2.58) would give a rate of ~0.08."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200_000, 4))
    t = np.abs(x.mean(1)) / (x.std(1, ddof=1) / 2)
    rate = np.mean(t > stats.critical_t(0.01, 1, 3, floor=0.0))
    assert abs(rate - 0.01) <= 1e-3


def test_required_samples_closed_form_and_power_by_simulation():
    n = stats.required_samples(0.5, 2.0, critical=4.0, beta=1e-2)
    assert n == int(np.ceil(((4.0 + sps.norm.isf(1e-2)) * 2.0 / 0.5) ** 2))
    # the sized test resolves the difference with probability >= 0.99 (3000 trials: the
    # binomial SE at 0.99 is 0.0018; the rule 'rate >= 0.99 − 4 SE')
    rng = np.random.default_rng(2)
    x = 0.5 + 2.0 * rng.standard_normal((3000, n))
    z = x.mean(1) / (x.std(1, ddof=1) / np.sqrt(n))
    assert np.mean(z > 4.0) >= 0.99 - 4 * 0.0018
    with pytest.raises(ValueError, match="difference = 0"):
        stats.required_samples(0.0, 1.0, critical=4.0)


# ------------------------------------------------------------------------ estimates
def test_mean_stderr_excludes_invalid_entries():
    x = np.array([[1.0, 2.0, 3.0, np.nan]])
    m, se, n = stats.mean_stderr(x, axis=1, valid=np.array([[True, True, True, False]]))
    assert m[0] == 2.0 and n[0] == 3 and se[0] == pytest.approx(np.std([1, 2, 3], ddof=1) / np.sqrt(3))


@pytest.mark.parametrize("n", [2, 3, 5, 40])
def test_mean_ci_matches_scipy_t_interval(n):
    x = np.random.default_rng(n).normal(1.0, 2.0, n)
    m, lo, hi = stats.mean_ci(x, 0.95)
    ref = sps.t.interval(0.95, n - 1, loc=x.mean(), scale=sps.sem(x))
    assert m == pytest.approx(x.mean(), rel=RTOL)
    assert (lo, hi) == pytest.approx(ref, rel=1e-10)


def test_mean_ci_along_an_axis_matches_rows():
    x = np.random.default_rng(0).normal(size=(3, 6))
    m, lo, hi = stats.mean_ci(x, 0.9, axis=1)
    for i in range(3):
        assert (m[i], lo[i], hi[i]) == pytest.approx(stats.mean_ci(x[i], 0.9), rel=RTOL)
    with pytest.raises(ValueError, match="at least 2"):
        stats.mean_ci([1.0])


def test_paired_difference_ci_is_the_t_interval_of_differences():
    a, b = np.array([1.0, 2.0, 4.0]), np.array([0.5, 1.0, 1.5])
    assert stats.paired_difference_ci(a, b) == pytest.approx(stats.mean_ci(a - b), rel=RTOL)


@pytest.mark.parametrize("k, n", [(0, 5), (3, 5), (5, 5), (17, 20), (50, 100)])
def test_wilson_interval_solves_the_score_equation(k, n):
    """Reference: the Wilson score interval solved as the quadratic in p,
    (p̂ − p)² = z² p(1 − p)/n, by numpy's root finder (independent of the formula used)."""
    z = sps.norm.isf(0.025)
    p_hat = k / n
    # (1 + z²/n) p² − (2p̂ + z²/n) p + p̂² = 0
    roots = np.sort(np.roots([1 + z * z / n, -(2 * p_hat + z * z / n), p_hat * p_hat]).real)
    p, lo, hi = stats.wilson_interval(k, n)
    assert p == p_hat and (lo, hi) == pytest.approx(tuple(roots), abs=1e-12)


def test_ratio_ci_delta_method():
    r, lo, hi = stats.ratio_ci(2.0, 0.1, 4.0, 0.2, z=2.0)
    rel = np.sqrt((0.1 / 2) ** 2 + (0.2 / 4) ** 2)
    assert r == 0.5 and (lo, hi) == pytest.approx((0.5 - 2 * 0.5 * rel, 0.5 + 2 * 0.5 * rel), rel=RTOL)


# ------------------------------------------------------------------------ bootstrap
def test_bootstrap_ci_of_the_mean_is_close_to_the_t_interval():
    """For 200 normal samples the percentile bootstrap of the mean approximates the t
    interval; with 4000 resamples its endpoints' Monte-Carlo error is ~2% of the
    half-width, so the rule is 10% of the half-width."""
    x = np.random.default_rng(3).normal(size=200)
    est, lo, hi = stats.bootstrap_ci(x, np.mean, rng=np.random.default_rng(4), n_boot=4000)
    m, tlo, thi = stats.mean_ci(x)
    half = (thi - tlo) / 2
    assert est == pytest.approx(m, rel=RTOL)
    assert abs(lo - tlo) <= 0.1 * half and abs(hi - thi) <= 0.1 * half


def test_bootstrap_resamples_whole_units():
    # the statistic sees rows (units) intact: a column difference that is constant per row
    x = np.stack([np.arange(10.0), np.arange(10.0) + 3.0], axis=1)
    est, lo, hi = stats.bootstrap_ci(x, lambda s: float(np.mean(s[:, 1] - s[:, 0])),
                                     rng=np.random.default_rng(0), axis=0)
    assert est == lo == hi == 3.0


def test_bootstrap_grid_interval_on_a_threshold_index():
    grid = np.array([1, 2, 4, 8, 16])
    # per-seed metric at each grid point; the statistic: largest index whose median <= 1
    rng = np.random.default_rng(5)
    samples = np.array([0.5, 0.8, 0.95, 1.3, 2.0])[:, None] + 0.02 * rng.standard_normal((5, 40))

    def index(s):
        ok = np.nonzero(np.median(s, axis=1) <= 1.0)[0]
        return ok[-1] if ok.size else -1

    est, lo, hi = stats.bootstrap_grid_interval(samples, index, rng=np.random.default_rng(6))
    assert (est, lo, hi) == (2, 2, 2) and grid[est] == 4
    # a point that sits on the threshold makes the interval span two indices
    samples[2] = 1.0 + 0.05 * rng.standard_normal(40)
    est, lo, hi = stats.bootstrap_grid_interval(samples, index, rng=np.random.default_rng(6))
    assert lo == 1 and hi == 2


# ---------------------------------------------------------- intervals against bands
@pytest.mark.parametrize("low, high, expected", [(1.1, 2.0, True), (0.2, 1.0, False),
                                                 (0.9, 1.1, None)])
def test_exceeds(low, high, expected):
    assert stats.exceeds(low, high, 1.0) is expected


@pytest.mark.parametrize("low, high, expected", [(0.96, 1.04, True), (0.5, 0.9, False),
                                                 (1.2, 1.3, False), (0.9, 1.0, None),
                                                 (0.99, 1.2, None)])
def test_within(low, high, expected):
    assert stats.within(low, high, 0.95, 1.05) is expected


def test_tri_state_combinators():
    assert stats.all_of([True, True]) is True and stats.all_of([True, None]) is None
    assert stats.all_of([None, False]) is False
    assert stats.any_of([False, True]) is True and stats.any_of([False, None]) is None
    assert stats.any_of([False, False]) is False
