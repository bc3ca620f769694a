"""Self-distillation in Hilbert space (Mobahi, Farajtabar, Bartlett 2020): theory.self_distillation
and the kernel-regression testbed.

Theorems are asserted exactly (float rules beside each assertion); bounds are re-typed from
the paper here rather than imported, so a typo in theory/self_distillation.py cannot hide,
and each bound function is checked against brute force (bisection on h(c) with direct
solves) on small hand-built Gram matrices, including cases where it is attained; the
round-off bound is checked against brute-force perturbations of G.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.testbeds import kernel_regression as kr
from theory import self_distillation as sd
from theory.validation import InvalidParameter

U = np.finfo(np.float64).eps
SPEC_TOL = 1e-12
PROPERTY = settings(max_examples=40, deadline=None, derandomize=True)


# ----------------------------------------------------------------------------- helpers
def random_gram(seed: int, K: int, log10_kappa: float) -> np.ndarray:
    """G = Qᵀ diag(d) Q with Haar-random Q and log-uniform d spanning κ = 10^log10_kappa."""
    rng = np.random.default_rng(seed)
    Q, R = np.linalg.qr(rng.standard_normal((K, K)))
    Q = Q * np.sign(np.diag(R))
    d = np.sort(10.0 ** (-log10_kappa * rng.uniform(0, 1, K)))
    d[0], d[-1] = 10.0 ** -log10_kappa, 1.0
    G = (Q * d) @ Q.T
    return 0.5 * (G + G.T)


def random_problem(seed, K, log10_kappa, eps_fraction):
    """(G, y, ε) with ε = eps_fraction·‖y‖²/K (so r₀ = 1/√eps_fraction)."""
    rng = np.random.default_rng(seed + 7919)
    G = random_gram(seed, K, log10_kappa)
    y = rng.standard_normal(K)
    return G, y, eps_fraction * float(y @ y) / K


problems = st.tuples(st.integers(0, 10_000), st.integers(2, 12), st.floats(0.0, 4.0),
                     st.floats(0.002, 0.9))


def laplace_instances():
    rng = np.random.default_rng(2024)
    out = [kr.sinusoid_toy(rng)] + [kr.noisy_sinusoid(rng, 40) for _ in range(3)]
    return [(data, sd.gram_matrix(data.x, "laplace", 0.2),
             sd.feature_rows(data.x_test, data.x, "laplace", 0.2)) for data in out]


# ----------------------------------------------------------------------------- one round
def test_ridge_fit_makes_the_constraint_active():
    data, G, _ = laplace_instances()[1]
    eps = 0.01
    fit = sd.ridge_fit(G, data.y, eps)
    mse = float(np.mean((fit.fitted - data.y) ** 2))
    # c is solved to relative ~4u·|log c|; the training MSE then matches ε to ~1e-13 relative
    assert not fit.collapsed
    assert abs(mse - eps) <= 1e-10 * eps
    assert abs(sd.constraint_value(fit.c, G, data.y) - eps) <= 1e-10 * eps


def test_constraint_value_increases_from_zero_to_norm():
    data, G, _ = laplace_instances()[0]
    cs = np.logspace(-8, 8, 60)
    h = np.array([sd.constraint_value(c, G, data.y) for c in cs])
    d, V = sd.gram_spectrum(G)
    hs = np.array([sd.constraint_value_spectral(c, d, V @ data.y) for c in cs])
    assert np.all(np.diff(h) > 0)
    assert h[0] < 1e-10 and abs(h[-1] - data.y @ data.y / data.n) <= 1e-6 * h[-1]
    np.testing.assert_allclose(hs, h, rtol=1e-9)  # solve vs eigenbasis: u·κ(cI+G) ≤ 1e-13


# ----------------------------------------------------------------------------- closed form
def assert_closed_form_equals_iterated(G, y, eps, rows=None):
    """Closed form vs direct refits, every round: targets, fits at ``rows`` and roots c_t
    within twice the first-order round-off bound of one computation (both are within it of
    the exact rounds: sd.round_off_bound, itself checked by brute force below)."""
    cf = sd.closed_form_distillation(G, y, eps, x_rows=rows)
    it = sd.iterate_distillation(G, y, eps, n_rounds=len(cf.c), x_rows=rows)
    bound = sd.round_off_bound(cf, eps, rows)
    assert cf.n_nontrivial == it.n_nontrivial >= 1
    assert np.all(np.max(np.abs(cf.targets - it.targets), axis=1) <= 2 * bound.train)
    assert np.all(np.max(np.abs(cf.predictions - it.predictions), axis=1, initial=0.0) <= 2 * bound.test)
    fin = np.isfinite(cf.c)
    np.testing.assert_array_equal(np.isfinite(it.c), fin)
    assert np.all(np.abs(it.c[fin] - cf.c[fin]) <= 2 * bound.root[fin] * cf.c[fin])
    return cf, it


@pytest.mark.parametrize("eps", [0.003, 0.01, 0.05])
def test_closed_form_equals_iterated_fits_laplace(eps):
    for data, G, rows in laplace_instances():
        cf, it = assert_closed_form_equals_iterated(G, data.y, eps, rows)
        # the claim's 1e-12 holds on these instances (not a float64 guarantee in general:
        # the bound above can exceed it where c_t is tiny against d_max)
        assert np.max(np.abs(cf.predictions - it.predictions)) <= SPEC_TOL


def test_closed_form_prediction_at_training_points_is_next_target():
    data, G, _ = laplace_instances()[1]
    rows = sd.feature_rows(data.x, data.x, "laplace", 0.2)
    cf = sd.closed_form_distillation(G, data.y, 0.01, x_rows=rows)
    # f_t(X) = G(c_tI + G)⁻¹y_t = y_{t+1}, two roundings of one spectral sum: twice the bound
    bound = sd.round_off_bound(cf, 0.01, rows)
    diff = np.max(np.abs(cf.predictions - cf.targets[1:]), axis=1)
    assert np.all(diff <= 2 * bound.train[1:] + 2 * bound.test)


@PROPERTY
@given(problems)
def test_closed_form_equals_iterated_fits_random_kernels(p):
    G, y, eps = random_problem(*p)
    rng = np.random.default_rng(p[0])
    assert_closed_form_equals_iterated(G, y, eps, rows=rng.standard_normal((5, y.size)) / y.size)


def test_round_off_bound_needs_the_closed_form():
    data, G, rows = laplace_instances()[0]
    with pytest.raises(InvalidParameter, match="closed_form_distillation"):
        sd.round_off_bound(sd.iterate_distillation(G, data.y, 0.01), 0.01)
    with pytest.raises(InvalidParameter, match="gamma"):
        sd.round_off_bound(sd.closed_form_distillation(G, data.y, 0.01), 0.01, gamma=0.0)


def test_round_off_bound_covers_brute_force_perturbations():
    """The bound's model: one computation = the exact rounds of G + E, ‖E‖₂ ≤ γ‖c_tI + G‖.
    Brute force: 40 random symmetric E with ‖E‖₂ = γ·d_max (γ = 1e-8, so the computations'
    own round-off, ~1e-16·κ, is negligible) on 8-point Laplace and jittered Gaussian Gram
    matrices; the change of every round's targets, test fits and root stays under the
    bound, and comes within a factor 5 of it on some round (the bound is nearly tight)."""
    rng = np.random.default_rng(11)
    x = np.linspace(0, 1, 8)
    y = np.sin(2 * np.pi * x) + 0.3 * rng.standard_normal(8)
    grid = np.linspace(0, 1, 41)
    for kernel, ell, jitter in (("laplace", 0.3, None), ("gaussian", 0.2, 1e-4)):
        G = sd.gram_matrix(x, kernel, ell, jitter=jitter)
        rows = sd.feature_rows(grid, x, kernel, ell)
        for eps in (0.01, 0.05):
            cf = sd.closed_form_distillation(G, y, eps, x_rows=rows)
            n = len(cf.c)
            bound = sd.round_off_bound(cf, eps, rows, gamma=1e-8)
            worst_tr, worst_te, worst_c = np.zeros(n + 1), np.zeros(n), np.zeros(n)
            for _ in range(40):
                E = rng.standard_normal((8, 8))
                E = E + E.T
                E *= 1e-8 * cf.eigenvalues[-1] / np.linalg.norm(E, 2)
                p = sd.closed_form_distillation(G + E, y, eps, n_rounds=n, x_rows=rows)
                worst_tr = np.maximum(worst_tr, np.max(np.abs(p.targets - cf.targets), axis=1))
                worst_te = np.maximum(worst_te, np.max(np.abs(p.predictions - cf.predictions), axis=1))
                with np.errstate(invalid="ignore"):
                    worst_c = np.maximum(worst_c, np.nan_to_num(np.abs(p.c - cf.c) / cf.c))
            assert np.all(worst_tr <= bound.train) and np.all(worst_te <= bound.test)
            assert np.all(worst_c <= bound.root)
            live = bound.test > 0
            assert np.max(worst_te[live] / bound.test[live]) >= 0.2


# ----------------------------------------------------------------------------- amplification
def assert_amplification(cf, slack=1e-12):
    """c_{t+1} > c_t, the c_t bounds and the r_{t+1} bounds (spec), relative slack 1e-12
    (c_t solved to ~4u·|log c|, r_t has ~K·u rounding)."""
    d = cf.eigenvalues
    dmin, dmax = d[0], d[-1]
    kappa = dmax / dmin
    T, c, r = cf.n_nontrivial, cf.c, cf.ratio
    for t in range(T):
        assert r[t] > 1
        assert dmin / (r[t] - 1) * (1 - slack) <= c[t] <= dmax / (r[t] - 1) * (1 + slack)
        low = r[t] * (r[t] - 1) / (r[t] - 1 + kappa)
        high = r[t] * kappa * (r[t] - 1) / (1 + kappa * (r[t] - 1))
        assert low * (1 - slack) <= r[t + 1] <= high * (1 + slack)
        # derived here: ‖y_t − y_{t+1}‖ = √(Kε) and ⟨y_{t+1}, y_t − y_{t+1}⟩ ≥ 0
        assert (r[t] - 1) * (1 - slack) <= r[t + 1] <= math.sqrt(r[t] ** 2 - 1) * (1 + slack)
        if t + 1 < T:
            assert c[t + 1] > c[t]


@PROPERTY
@given(problems)
def test_amplification_random_kernels(p):
    assert_amplification(sd.closed_form_distillation(*random_problem(*p)))


@pytest.mark.parametrize("eps", [0.003, 0.03])
def test_amplification_testbeds(eps):
    for data, G, _ in laplace_instances():
        assert_amplification(sd.closed_form_distillation(G, data.y, eps))


# ----------------------------------------------------------------------------- sparsification
def assert_sparsification(cf):
    d, B, A, T = cf.eigenvalues, cf.B, cf.A, cf.n_nontrivial
    jj, kk = np.nonzero(np.subtract.outer(d, d) < 0)  # pairs with d_j < d_k
    for t in range(T):
        before, after = B[t, jj] / B[t, kk], B[t + 1, jj] / B[t + 1, kk]
        drop = 1 - A[t, jj] / A[t, kk]
        # float rule: a ratio of two (t+1)-fold products has relative error ≤ 4(t+2)u, so a
        # strict decrease is asserted where the exact drop exceeds 8(t+2)u
        tol = 8 * (t + 2) * U
        assert np.all(after[drop > tol] < before[drop > tol])
        assert np.all(after <= before * (1 + tol))
    for tau in (0.3, 1e-2, 1e-5):
        counts = sd.basis_count(B[: T + 2], tau)
        assert np.all(np.diff(counts) <= 0)  # integers: exact
        assert counts[-1] == 0  # the collapsed round has B = 0


@PROPERTY
@given(problems)
def test_sparsification_random_kernels(p):
    assert_sparsification(sd.closed_form_distillation(*random_problem(*p)))


def test_sparsification_testbeds():
    for data, G, _ in laplace_instances():
        cf = sd.closed_form_distillation(G, data.y, 0.003)
        assert_sparsification(cf)
        counts = sd.basis_count(cf.B, 1e-2)
        assert counts[cf.n_nontrivial] < counts[0]  # it really sparsifies on real data


# ----------------------------------------------------------------------------- collapse
def assert_collapse(G, y, eps):
    cf = sd.closed_form_distillation(G, y, eps)
    T, K = cf.n_nontrivial, y.size
    it = sd.iterate_distillation(G, y, eps, n_rounds=T + 3, x_rows=G)
    small = np.sum(it.targets ** 2, axis=1) <= K * eps * (1 + 1e-9)
    assert int(np.argmax(small)) == T  # first round with ‖y_t‖² ≤ Kε (1e-9: round-off margin)
    assert np.all(it.predictions[T:] == 0) and np.all(it.targets[T + 1:] == 0)
    assert np.all(np.any(it.predictions[:T] != 0, axis=1))
    r0, kappa = cf.ratio[0], sd.condition_number(cf.eigenvalues)
    if T:  # bounds are stated for r₀ > 1
        assert (r0 - 1) / kappa <= T <= kappa * (r0 - 1) + 1
        assert math.ceil(r0 - 1) <= T <= math.ceil(r0 ** 2 - 1)  # derived here
    return T


@PROPERTY
@given(problems)
def test_collapse_random_kernels(p):
    assert assert_collapse(*random_problem(*p)) >= 1


def test_collapse_testbeds():
    for data, G, _ in laplace_instances():
        for eps in (0.003, 0.03, 0.3):
            assert_collapse(G, data.y, eps)


@pytest.mark.parametrize("factor", [1.0, 1.0 + 1e-6, 2.0, 100.0])
def test_tolerance_above_label_norm_collapses_at_round_zero(factor):
    data, G, rows = laplace_instances()[0]
    eps = factor * float(data.y @ data.y) / data.n
    for dist in (sd.closed_form_distillation(G, data.y, eps, x_rows=rows),
                 sd.iterate_distillation(G, data.y, eps, x_rows=rows)):
        assert dist.n_nontrivial == 0
        assert np.isinf(dist.c[0]) and np.all(dist.predictions == 0)
    fit = sd.ridge_fit(G, data.y, eps)
    assert fit.collapsed and np.all(fit.fitted == 0)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("eps", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_tolerance_is_rejected(eps):
    data, G, _ = laplace_instances()[0]
    for fn in (sd.ridge_fit, sd.closed_form_distillation, sd.iterate_distillation):
        with pytest.raises(InvalidParameter, match="eps"):
            fn(G, data.y, eps)


def test_non_psd_gram_is_rejected():
    G = np.array([[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(InvalidParameter, match=r"^G = .*positive semi-definite"):
        sd.closed_form_distillation(G, np.ones(2), 0.1)
    with pytest.raises(InvalidParameter, match="G"):
        sd.ridge_fit(G, np.ones(2), 0.1)


@pytest.mark.parametrize("shift", [0.0, 3e-17, -3e-17])
def test_singular_gram_is_rejected_with_jitter_hint(shift):
    # rank one, plus a shift of its zero eigenvalues below the round-off level n·u·λ_max
    # (6.7e-16 here): which sign LAPACK returns for them depends on the CPU's kernels, so
    # every such matrix must get the same clear error, never numpy's LinAlgError
    G = np.ones((3, 3)) / 3 + shift * np.eye(3)
    with pytest.raises(InvalidParameter, match="jitter"):
        sd.iterate_distillation(G, np.arange(3.0), 0.1)
    with pytest.raises(InvalidParameter, match="jitter"):
        sd.closed_form_distillation(G, np.arange(3.0), 0.1)


def test_gaussian_kernel_needs_the_stated_jitter():
    x = np.linspace(0, 1, 40)
    bare = np.linalg.eigvalsh(sd.gram_matrix(x, "gaussian", 0.2, jitter=0.0))
    # without jitter the smallest eigenvalue is at round-off level (either sign)
    assert abs(bare[0]) <= 1e3 * U * bare[-1]
    d, _ = sd.gram_spectrum(sd.gram_matrix(x, "gaussian", 0.2))
    # eigenvalues shift by exactly jitter/K; round-off of eigh is ~u·d_max
    assert d[0] >= sd.GAUSSIAN_JITTER / 40 - 1e3 * U * d[-1]


def test_bad_kernel_and_targets():
    with pytest.raises(InvalidParameter, match="kernel"):
        sd.gram_matrix(np.arange(3.0), "cosine", 0.2)
    with pytest.raises(InvalidParameter, match="length_scale"):
        sd.gram_matrix(np.arange(3.0), "laplace", 0.0)
    with pytest.raises(InvalidParameter, match="y"):
        sd.ridge_fit(np.eye(3), np.ones(4), 0.1)


def test_testbeds_are_deterministic_given_the_generator():
    a = kr.noisy_sinusoid(np.random.default_rng(5))
    b = kr.noisy_sinusoid(np.random.default_rng(5))
    np.testing.assert_array_equal(a.y, b.y)
    toy = kr.sinusoid_toy(np.random.default_rng(0), noise_sd=0.0)
    np.testing.assert_allclose(toy.x, np.arange(11) / 10, atol=1e-15)
    np.testing.assert_allclose(toy.y, np.sin(2 * np.pi * toy.x), atol=1e-15)


# ------------------------------------------------- bounds against brute force, small G
def brute_c(G, y, eps):
    """Root of h(c) = (1/K)‖c(cI + G)⁻¹y‖² = ε by bisection on log c with direct solves
    (independent of the theory module's eigenbasis and root finder). 120 halvings of
    [−80, 80] leave an interval far below the float64 spacing of log c."""
    G, y = np.asarray(G, float), np.asarray(y, float)

    def h(c):
        res = c * np.linalg.solve(c * np.eye(y.size) + G, y)
        return res @ res / y.size

    lo, hi = -80.0, 80.0
    for _ in range(120):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if h(math.exp(mid)) < eps else (lo, mid)
    return math.exp(0.5 * (lo + hi))


def brute_rounds(G, y, eps):
    """(c_t, r_t) of every round by refitting until ‖y_t‖² ≤ Kε; T = len(c)."""
    G, y = np.asarray(G, float), np.asarray(y, float)
    K = y.size
    cs, rs = [], [np.linalg.norm(y) / math.sqrt(K * eps)]
    while y @ y > K * eps:
        cs.append(brute_c(G, y, eps))
        y = G @ np.linalg.solve(cs[-1] * np.eye(K) + G, y)
        rs.append(np.linalg.norm(y) / math.sqrt(K * eps))
    return cs, rs


# hand-built Gram matrices: d = 1/4, 3/4 with eigenvectors (1,−1)/√2, (1,1)/√2 (κ = 3); a
# 3-point Laplace kernel (x = 0, ½, 1, ℓ = ½, scaled by 1/K); a multiple of I (κ = 1)
G_TWO = np.array([[2.0, 1.0], [1.0, 2.0]]) / 4
_A, _B = math.exp(-1.0), math.exp(-2.0)
G_LAP3 = np.array([[1.0, _A, _B], [_A, 1.0, _A], [_B, _A, 1.0]]) / 3
G_FLAT = np.eye(3) / 4
LABELS = {2: [np.array([1.0, 0.3]), np.array([-0.4, 2.0])],
          3: [np.array([1.0, -2.0, 2.0]), np.array([0.5, 0.4, -1.5])]}
# c is found to ~u relative; r to ~K·u: 1e-12 is many orders above either
RTOL = 1e-12


def test_ridge_constant_bounds_are_the_extremes_over_label_directions():
    """Eq. (4) at r = 3 on G_TWO: c(θ) for y = (cos θ, sin θ) (‖y‖ = 1, K = 2, ε = 1/18) over
    a 1° grid lies within [d_min/(r−1), d_max/(r−1)], and the extremes are attained at the
    eigenvectors (θ = 135°: d_min, θ = 45°: d_max), where h(c) = (c/(c + d))²‖y‖²/K."""
    lo, hi = sd.ridge_constant_bounds(3.0, 0.25, 0.75)
    assert (lo, hi) == (0.125, 0.375)  # 0.25/2, 0.75/2: exact in binary
    theta = np.deg2rad(np.arange(180))
    cs = np.array([brute_c(G_TWO, [math.cos(t), math.sin(t)], 1 / 18) for t in theta])
    assert np.all((lo * (1 - RTOL) <= cs) & (cs <= hi * (1 + RTOL)))
    assert cs[135] == pytest.approx(lo, rel=RTOL) and cs[45] == pytest.approx(hi, rel=RTOL)
    assert np.argmin(cs) == 135 and np.argmax(cs) == 45


@pytest.mark.parametrize("G", [G_TWO, G_LAP3], ids=["two", "laplace3"])
def test_ratio_bounds_hold_on_brute_force_rounds(G):
    """Eq. (4), (5), (7) on every round of brute-force distillation, several labels and ε."""
    d = np.linalg.eigvalsh(G)
    kappa = d[-1] / d[0]
    for y in LABELS[G.shape[0]]:
        for frac in (0.3, 0.05, 0.01):  # ε = frac·‖y‖²/K: r₀ = 1/√frac
            cs, rs = brute_rounds(G, y, frac * (y @ y) / y.size)
            assert len(cs) >= 1
            for t, c in enumerate(cs):
                lo, hi = sd.ridge_constant_bounds(rs[t], d[0], d[-1])
                assert lo * (1 - RTOL) <= c <= hi * (1 + RTOL)
                lo, hi = sd.ratio_bounds_paper(rs[t], kappa)
                assert lo * (1 - RTOL) <= rs[t + 1] <= hi * (1 + RTOL)
                lo, hi = sd.ratio_bounds_derived(rs[t])
                assert lo * (1 - RTOL) <= rs[t + 1] <= hi * (1 + RTOL)


def test_ratio_bounds_are_attained_at_kappa_one():
    """G = I/4: every direction is an eigenvector, so c = d/(r − 1) and r_{t+1} = r_t − 1
    exactly; at κ = 1 the paper's lower and upper r-bounds and the derived lower one all
    equal r − 1, and both c-bounds equal c."""
    y = np.array([1.0, -2.0, 2.0])  # ‖y‖ = 3
    eps = 9 / (3 * 2.5 ** 2)  # r₀ = ‖y‖/√(Kε) = 2.5
    cs, rs = brute_rounds(G_FLAT, y, eps)
    assert rs[0] == pytest.approx(2.5, rel=RTOL)
    lo, hi = sd.ridge_constant_bounds(rs[0], 0.25, 0.25)
    assert cs[0] == pytest.approx(lo, rel=RTOL) and cs[0] == pytest.approx(hi, rel=RTOL)
    lo, hi = sd.ratio_bounds_paper(rs[0], 1.0)
    assert rs[1] == pytest.approx(lo, rel=RTOL) and rs[1] == pytest.approx(hi, rel=RTOL)
    assert rs[1] == pytest.approx(sd.ratio_bounds_derived(rs[0])[0], rel=RTOL)


def test_derived_ratio_lower_bound_is_attained_by_an_eigenvector():
    """y along one eigenvector (κ = 3): h(c) = (c/(c + d))² r², so r_{t+1} = r_t − 1 exactly."""
    y = 2.0 * np.array([1.0, -1.0]) / math.sqrt(2.0)  # d = 1/4 direction, ‖y‖ = 2
    _, rs = brute_rounds(G_TWO, y, 2.0 / 9)  # r₀ = 2/√(4/9) = 3
    assert rs[1] == pytest.approx(sd.ratio_bounds_derived(rs[0])[0], rel=RTOL)
    assert rs[1] < sd.ratio_bounds_derived(rs[0])[1] * 0.9  # the upper one is not


def test_derived_ratio_upper_bound_is_nearly_attained_with_separated_eigenvalues():
    """G = diag(1e-8, 1), z₁² = Kε(1 + 1e-3), z₂ = 3: c ≈ 2e-5 removes component 1 almost
    entirely and leaves component 2 almost untouched, so the residual is nearly orthogonal
    to y_{t+1} and r_{t+1} is within ~δ/2·z₁²/‖y_{t+1}‖² ≈ 1e-4 of √(r_t² − 1)."""
    G, eps = np.diag([1e-8, 1.0]), 1.0
    y = np.array([math.sqrt(2 * (1 + 1e-3)), 3.0])
    _, rs = brute_rounds(G, y, eps)
    hi = sd.ratio_bounds_derived(rs[0])[1]
    assert hi * (1 - 1e-3) <= rs[1] <= hi * (1 + RTOL)


@pytest.mark.parametrize("G", [G_TWO, G_LAP3], ids=["two", "laplace3"])
def test_round_count_bounds_hold_on_brute_force_distillation(G):
    d = np.linalg.eigvalsh(G)
    for y in LABELS[G.shape[0]]:
        for frac in (0.5, 0.1, 0.02):
            cs, rs = brute_rounds(G, y, frac * (y @ y) / y.size)
            T, r0 = len(cs), rs[0]
            lo, hi = sd.rounds_bounds_paper(r0, d[-1] / d[0])
            assert lo <= T <= hi  # T is an integer; r₀ is ~u-accurate and no bound is near an integer
            lo, hi = sd.rounds_bounds_derived(r0)
            assert lo <= T <= hi


def test_round_count_bounds_are_tight_at_kappa_one():
    """G = I/4, r₀ = 3.5: r_t = 3.5 − t, so T = 3 = ⌈r₀ − 1⌉ (the derived lower bound, exactly)
    and the paper's bounds r₀ − 1 = 2.5 and κ(r₀ − 1) + 1 = 3.5 are within one round."""
    y = np.array([1.0, -2.0, 2.0])
    cs, rs = brute_rounds(G_FLAT, y, 9 / (3 * 3.5 ** 2))
    T = len(cs)
    assert T == 3 == sd.rounds_bounds_derived(rs[0])[0]
    lo, hi = sd.rounds_bounds_paper(rs[0], 1.0)
    assert T - 1 < lo <= T <= hi < T + 1


def test_derived_round_count_upper_bound_is_attained_on_a_geometric_spectrum():
    """d_k = 1e-24, 1e-16, 1e-8, 1 and z_k² = Kε(1 + 0.05): each round removes one component
    almost exactly, r² drops by ~1 per round, T = 4 = ⌈r₀² − 1⌉ = ⌈3.2⌉."""
    G = np.diag(10.0 ** (-8.0 * np.arange(4)[::-1]))
    y = np.full(4, math.sqrt(4 * 1.05))
    cs, rs = brute_rounds(G, y, 1.0)
    assert len(cs) == 4 == sd.rounds_bounds_derived(rs[0])[1]
    lo, hi = sd.rounds_bounds_paper(rs[0], 1e24)
    assert lo <= 4 <= hi  # and far from tight: κ = 1e24


@pytest.mark.parametrize("fn, args", [(sd.ridge_constant_bounds, (1.0, 0.1, 1.0)),
                                      (sd.ratio_bounds_paper, (0.5, 3.0)),
                                      (sd.ratio_bounds_derived, (1.0,)),
                                      (sd.rounds_bounds_paper, (1.0, 3.0)),
                                      (sd.rounds_bounds_derived, (0.9,))])
def test_bounds_reject_a_collapsed_round(fn, args):
    with pytest.raises(InvalidParameter, match="r0? = "):
        fn(*args)


def test_basis_count_and_condition_number_by_hand():
    B = np.array([[1.0, 0.5, 0.01], [0.2, 0.1, 0.0], [0.0, 0.0, 0.0]])
    # relative to the row maximum: [1, .5, .01], [1, .5, 0], collapsed row -> 0
    assert list(sd.basis_count(B, 0.3)) == [2, 2, 0]
    assert list(sd.basis_count(B, 0.005)) == [3, 2, 0]
    assert sd.condition_number([0.25, 0.5, 0.75]) == 3.0


# ----------------------------------------------------------------------------- testbed
def test_collapse_cases_extend_the_family_without_changing_it():
    cfg = dict(noise_sd=0.3, n_points=8, n_test=11, n_seeds=2, kernels=["laplace"],
               length_laplace=0.2, toy_eps=[0.01], eps_grid=[0.01, 0.05])
    plain = kr.kernel_instances(cfg, np.random.default_rng(3))
    more = kr.kernel_instances(cfg, np.random.default_rng(3), eps_factors=(1.0, 1.5))
    base = [i for i in more if not i.collapse_case]
    assert [i.eps for i in base] == [i.eps for i in plain] and not any(i.collapse_case for i in plain)
    for a, b in zip(base, plain):
        np.testing.assert_array_equal(a.data.y, b.data.y)
    extra = [i for i in more if i.collapse_case]
    assert len(extra) == 2 * 3  # two factors for the toy and each of the two seeds
    assert all(i.eps >= float(i.data.y @ i.data.y) / i.data.n for i in extra)


def test_risk_per_round_ends_with_the_collapsed_fit():
    data, G, rows = laplace_instances()[1]
    risk, T = kr.risk_per_round(data, G, rows, 0.01)
    assert risk.shape == (T + 1,) and T >= 2
    # f_T ≡ 0: its excess risk is mean(f*²) (201 terms: summation order moves it ≤ 201u)
    np.testing.assert_allclose(risk[-1], np.mean(data.f_test ** 2), rtol=201 * U)
    assert np.all(risk[:-1] != risk[-1])
