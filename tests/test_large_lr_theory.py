"""CLAIMS.md §4 (Li, Wei & Ma 2019): the P/Q generator's proportions and separability facts."""
import re

import numpy as np
import pytest
from scipy import stats as sps

from simulations.stats import critical_z
from theory import large_lr as th
from theory.validation import InvalidParameter


def _draw(n=3000, seed=0, **kw):
    rng = np.random.default_rng(seed)
    spec = th.PQSpec(**{"d": 32, **kw})
    geo = th.make_geometry(spec, rng)
    return spec, geo, th.sample_pq(spec, geo, n, rng)


@pytest.mark.parametrize("p0, q0", [(0.2, 0.2), (0.1, 0.5), (0.0, 0.3)])
def test_type_and_label_proportions(p0, q0):
    spec, geo, s = _draw(n=4000, p0=p0, q0=q0)
    probs = th.type_proportions(p0, q0)
    np.testing.assert_allclose(probs, [p0, q0, 1 - p0 - q0], rtol=0, atol=1e-15)
    counts = np.bincount(s.kind, minlength=3)
    # binomial counts within z·sd, z Bonferroni over 4 comparisons at family 1e-4
    z = critical_z(n_comparisons=4)
    sd = np.sqrt(4000 * probs * (1 - probs))
    assert np.all(np.abs(counts - 4000 * probs) <= z * sd + 1e-9)
    assert abs(np.sum(s.y > 0) - 2000) <= z * np.sqrt(4000 * 0.25)
    assert set(np.unique(s.y)) <= {-1.0, 1.0}


def test_component_structure_and_stratified_split():
    spec, geo, s = _draw(n=900)
    d = spec.d
    assert np.all(s.x[s.kind == 0, d:] == 0) and np.all(s.x[s.kind == 1, :d] == 0)
    strat = th.sample_pq(spec, geo, 900, np.random.default_rng(1), stratified=True)
    assert np.bincount(strat.kind).tolist() == [300, 300, 300]
    # Q's points lie on the plane of z and ζ: α z for y = +1, α(z ± ζ) for y = −1
    q = s.x[s.kind == 1, d:]
    a = s.alpha[s.kind == 1]
    pos = s.y[s.kind == 1] > 0
    np.testing.assert_allclose(q[pos], a[pos, None] * geo.z[None], atol=1e-14)
    off = q[~pos] - a[~pos, None] * geo.z[None]
    np.testing.assert_allclose(np.abs(off @ geo.zeta), a[~pos] * spec.radius ** 2, atol=1e-12)
    assert np.linalg.norm(geo.zeta) == pytest.approx(spec.radius, rel=1e-12)
    assert abs(geo.z @ geo.zeta) < 1e-12


def test_p_is_separable_along_w_star_with_margin_gamma0():
    spec, geo, s = _draw(n=500, p_noise=1.0)
    # the noise is orthogonal to w*: y⟨w*, x₁⟩ = γ₀ exactly (float64 round-off)
    assert th.p_margin(s, geo) == pytest.approx(spec.gamma0, rel=1e-10)
    has_p = s.kind != 1
    assert th.linearly_separable(s.x[has_p, :spec.d], s.y[has_p])
    # the default margin and radius: γ₀ = d^{-1/2}, r = d^{-1/4}
    assert spec.gamma0 == pytest.approx(32 ** -0.5) and spec.radius == pytest.approx(32 ** -0.25)


def test_q_is_not_linearly_separable_midpoint_argument():
    spec, geo, s = _draw(n=300)
    q = s.kind == 1
    assert not th.linearly_separable(s.x[q], s.y[q])
    # the three base points z, z ± ζ already defeat every affine classifier
    pts = np.stack([geo.z, geo.z + geo.zeta, geo.z - geo.zeta])
    assert not th.linearly_separable(pts, np.array([1.0, -1.0, -1.0]))
    # ... but not a nonlinear one: two of the three points are separable
    assert th.linearly_separable(pts[:2], np.array([1.0, -1.0]))
    # κ(f) = 0 for any affine f (midpoint identity), ≠ 0 for a ReLU function
    rng = np.random.default_rng(3)
    for _ in range(5):
        w, b = rng.standard_normal(spec.d), rng.standard_normal()
        assert abs(th.q_margin(lambda x: x @ w + b, geo)) <= 1e-12 * (1 + np.abs(w).sum())
    u = geo.zeta / np.linalg.norm(geo.zeta)
    assert th.q_margin(lambda x: -abs(x @ u), geo) == pytest.approx(spec.radius, rel=1e-12)


def test_mean_classifier_formula_grows_with_samples():
    spec = th.PQSpec(d=128, p_noise=0.7)
    acc = [th.p_only_accuracy_of_mean_classifier(m, spec) for m in (13, 51, 200)]
    assert 0.5 < acc[0] < acc[1] < acc[2] < 1
    # Φ(γ₀² √(m(d−1)) / σ_P²), evaluated directly
    assert acc[1] == pytest.approx(sps.norm.cdf(np.sqrt(51 * 127) / 128 / 0.49), rel=1e-12)


@pytest.mark.parametrize("kw, name", [
    (dict(p0=0.6, q0=0.5), "p0 + q0"), (dict(r=0.0), "r"), (dict(r=-1.0), "r"),
    (dict(d=1), "d"), (dict(margin=0.0), "margin"), (dict(p0=-0.1), "p0"),
    (dict(p_noise=-1.0), "p_noise"), (dict(z_norm=0.0), "z_norm"),
])
def test_bad_input(kw, name):
    with pytest.raises(InvalidParameter, match=rf"^{re.escape(name)} = .* is not allowed"):
        th.PQSpec(**kw)
