"""simulations.stats: the rules verdicts rely on."""
import numpy as np
import pytest

from simulations import stats


def test_critical_z_bonferroni_and_floor():
    assert stats.critical_z(n_comparisons=1) == 4.0  # Φ⁻¹(1 − 5e-5) = 3.89 < floor 4
    assert stats.critical_z(n_comparisons=100) == pytest.approx(4.8916, abs=1e-3)


def test_mean_stderr_excludes_invalid_entries():
    x = np.array([[1.0, 2.0, 3.0, np.nan]])
    m, se, n = stats.mean_stderr(x, axis=1, valid=np.array([[True, True, True, False]]))
    assert m[0] == 2.0 and n[0] == 3 and se[0] == pytest.approx(np.std([1, 2, 3], ddof=1) / np.sqrt(3))


def test_wilson_interval_contains_estimate():
    p, lo, hi = stats.wilson_interval(17, 20)
    assert lo < p < hi and 0 <= lo and hi <= 1
    assert stats.wilson_interval(20, 20)[2] == pytest.approx(1.0)
