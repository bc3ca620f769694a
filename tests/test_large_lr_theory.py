"""Li, Wei & Ma (2019): the P/Q generator against independent computations: proportions,
the noise scales E‖ξ‖² (closed form vs sample moments), P's margin, Q's
non-separability, the mean-classifier accuracy (formula vs exact expectation vs Monte
Carlo), bad input."""
import re

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from simulations.stats import critical_t, critical_z
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
    # the default margin and radius: γ₀ = d^{-1/2}, r = d^{-1/4}
    assert spec.gamma0 == 32 ** -0.5 and spec.radius == 32 ** -0.25


def test_noise_scales_closed_form_vs_sample_moments():
    """E‖ξ‖² = σ_P², Var = 2σ_P⁴/(d−1) (P: rank d−1) and E = σ_Q², Var = 2σ_Q⁴/d (Q), against
    the sample mean and variance of the generator's noise. Rule: |sample − exact| <= t·SE,
    t the Bonferroni Student-t value over the 4 comparisons (family false alarm 1e-4);
    SE of a mean: sd/√n; of a variance of χ²_k-distributed values: Var·√(2/(n−1) + 12/(k n))."""
    n = 6000
    spec, geo, s = _draw(n=n, p0=0.5, q0=0.5, p_noise=0.7, q_noise=0.3)
    d = spec.d
    p, q = s.kind == 0, (s.kind == 1) & (s.y > 0)
    xi = s.x[p, :d] - spec.gamma0 * s.y[p, None] * geo.w_star[None]
    eps = s.x[q, d:] - s.alpha[q, None] * geo.z[None]   # y = +1: x₂ = α z + noise
    moments = th.noise_moments(spec)
    assert moments["P"][0] == pytest.approx(0.49) and moments["Q"][0] == pytest.approx(0.09)
    for name, v, k in (("P", xi, d - 1), ("Q", eps, d)):
        sq = np.sum(v ** 2, axis=1)
        m = len(sq)
        t = critical_t(n_comparisons=4, dof=m - 1)
        mean, var = moments[name]
        assert abs(sq.mean() - mean) <= t * sq.std(ddof=1) / np.sqrt(m), name
        assert abs(sq.var(ddof=1) - var) <= t * var * np.sqrt(2 / (m - 1) + 12 / (k * m)), name
    # P's noise lives in w*'s orthogonal complement (rank d − 1): no component along w*
    assert np.max(np.abs(xi @ geo.w_star)) <= 1e-12


def test_p_is_separable_along_w_star_with_margin_gamma0():
    spec, geo, s = _draw(n=500, p_noise=1.0)
    has_p = s.kind != 1
    # each P-carrying example: y⟨w*, x₁⟩ = γ₀ (float64 round-off), so the minimum is γ₀
    proj = s.y[has_p] * (s.x[has_p, :spec.d] @ geo.w_star)
    np.testing.assert_allclose(proj, spec.gamma0, rtol=1e-10)
    assert th.p_margin(s, geo) == pytest.approx(spec.gamma0, rel=1e-10)
    # an independent check by linear programming: separable without an intercept, and w*
    # itself attains margin γ₀ (the LP with y⟨w, x⟩ >= 1 is feasible with w = w*/γ₀)
    assert th.linearly_separable(s.x[has_p, :spec.d], s.y[has_p], affine=False)
    assert np.all(s.y[has_p] * (s.x[has_p, :spec.d] @ (geo.w_star / spec.gamma0)) >= 1 - 1e-9)


@pytest.mark.parametrize("seed, r", [(0, None), (1, 0.05), (2, 0.9)])
def test_q_is_not_linearly_separable_midpoint_argument(seed, r):
    spec, geo, s = _draw(n=300, seed=seed, r=r)
    q = s.kind == 1
    assert not th.linearly_separable(s.x[q], s.y[q])
    # the three base points z, z ± ζ already defeat every affine classifier
    pts = np.stack([geo.z, geo.z + geo.zeta, geo.z - geo.zeta])
    assert not th.linearly_separable(pts, np.array([1.0, -1.0, -1.0]))
    # ... but not a nonlinear one: two of the three points are separable
    assert th.linearly_separable(pts[:2], np.array([1.0, -1.0]))
    # κ(f) = 0 for any affine f (midpoint identity), = r for f = −|⟨·, ζ/r⟩|
    rng = np.random.default_rng(3)
    for _ in range(5):
        w, b = rng.standard_normal(spec.d), rng.standard_normal()
        assert abs(th.q_margin(lambda x: x @ w + b, geo)) <= 1e-12 * (1 + np.abs(w).sum())
    u = geo.zeta / np.linalg.norm(geo.zeta)
    assert th.q_margin(lambda x: -abs(x @ u), geo) == pytest.approx(spec.radius, rel=1e-12)


def test_mean_classifier_accuracy_formula():
    """Φ(γ₀²√(m(d−1))/σ_P²) against (i) the exact expectation E Φ(γ₀²(d−1)√m/(σ_P²√χ²_{d−1}))
    (quadrature; the formula replaces χ² by its mean: an O(1/d) difference, within 0.005
    at d = 128) and (ii) Monte Carlo of the mean classifier fitted on sampled P data, whose
    test accuracy given w is exactly Φ(γ₀²√(d−1)/(σ_P‖P⊥w‖)), within t·SE of (i)."""
    spec = th.PQSpec(d=128, p0=1.0, q0=0.0, p_noise=0.7)
    d, sig, g = spec.d, spec.p_noise, spec.gamma0
    rng = np.random.default_rng(0)
    geo = th.make_geometry(spec, rng)
    reps = 1500
    for m in (13, 51):
        exact = integrate.quad(lambda c: sps.norm.cdf(g ** 2 * np.sqrt(m) * (d - 1) / (sig ** 2 * np.sqrt(c)))
                               * sps.chi2.pdf(c, d - 1), 0, np.inf)[0]
        formula = th.p_only_accuracy_of_mean_classifier(m, spec)
        assert abs(formula - exact) <= 0.005
        acc = np.empty(reps)
        for i in range(reps):
            s = th.sample_pq(spec, geo, m, rng)
            w = (s.y[:, None] * s.x[:, :d]).mean(axis=0)
            perp = w - (w @ geo.w_star) * geo.w_star
            acc[i] = sps.norm.cdf(g * (w @ geo.w_star) * np.sqrt(d - 1) / (sig * np.linalg.norm(perp)))
        t = critical_t(n_comparisons=2, dof=reps - 1)
        assert abs(acc.mean() - exact) <= t * acc.std(ddof=1) / np.sqrt(reps), m
    assert formula < th.p_only_accuracy_of_mean_classifier(200, spec) < 1


@pytest.mark.parametrize("kw, name", [
    (dict(p0=0.6, q0=0.5), "p0 + q0"), (dict(r=0.0), "r"), (dict(r=-1.0), "r"),
    (dict(d=1), "d"), (dict(margin=0.0), "margin"), (dict(p0=-0.1), "p0"),
    (dict(p_noise=-1.0), "p_noise"), (dict(z_norm=0.0), "z_norm"),
])
def test_bad_input(kw, name):
    with pytest.raises(InvalidParameter, match=rf"^{re.escape(name)} = .* is not allowed"):
        th.PQSpec(**kw)
