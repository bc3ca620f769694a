"""theory.label_noise: R_η identities, the sparse-model trace identity, the weighted Lasso,
and the three-parameter toy, all against independent float64 computations."""
import numpy as np
import pytest

from theory import label_noise as ln
from theory.validation import InvalidParameter

EPS = np.finfo(np.float64).eps


def _spd(rng, d=8, lo=0.1, hi=2.0):
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    H = Q @ np.diag(rng.uniform(lo, hi, d)) @ Q.T
    return 0.5 * (H + H.T)


def test_strength():
    assert ln.regularization_strength(0.1, 2.0, 4) == pytest.approx(0.1 * 4 / 4, rel=1e-15)
    assert ln.regularization_strength(0.1, 2.0, 4, beta=0.9) == pytest.approx(0.1 * 4 / (4 * 0.1), rel=1e-14)


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_small_eta_expansion_remainder_is_order_eta_squared(rng, beta):
    lam = rng.uniform(0.0, 2.0, 10)
    c = 1 + beta
    for eta in (0.1, 0.05):
        rem = ln.implicit_regularizer(lam, eta, beta) - ln.implicit_regularizer_expansion(lam, eta, 2, beta)
        rem_half = ln.implicit_regularizer(lam, eta / 2, beta) - ln.implicit_regularizer_expansion(lam, eta / 2, 2, beta)
        # series in x = ηλ/(2c): remainder ∈ [T₃, T₃/(1 − x_max)], T₃ = c/(2η)·Σx³/3, so
        # halving η divides it by a factor in [4, 4/(1 − x_max)] (round-off ~1e-15 ≪ T₃)
        x = eta * lam / (2 * c)
        T3 = c / (2 * eta) * np.sum(x ** 3) / 3
        assert T3 * (1 - 1e-9) <= rem <= T3 / (1 - x.max()) * (1 + 1e-9)
        assert 4 * (1 - 1e-8) <= rem / rem_half <= 4 / (1 - x.max()) * (1 + 1e-8)
    # order 2 is literally ¼ tr H + η/(16c) tr H²
    eta = 0.3
    assert ln.implicit_regularizer_expansion(lam, eta, 2, beta) == pytest.approx(
        lam.sum() / 4 + eta / (16 * c) * np.sum(lam ** 2), rel=1e-14)


def test_regularizer_equals_log_det(rng):
    H = _spd(rng, lo=-0.5)  # indefinite is fine inside the stable region
    for eta, beta in ((0.3, 0.0), (0.9, 0.0), (1.5, 0.6)):
        sign, logdet = np.linalg.slogdet(np.eye(len(H)) - eta * H / (2 * (1 + beta)))
        assert sign > 0
        ref = -(1 + beta) / (2 * eta) * logdet
        # rule: two float64 routes (eigvalsh vs LU) agree to 1e-12 relative
        assert abs(ln.implicit_regularizer_matrix(H, eta, beta) - ref) <= 1e-12 * max(1.0, abs(ref))


@pytest.mark.parametrize("beta", [0.0, 0.7])
def test_gradient_by_finite_differences(rng, beta):
    H = _spd(rng)
    eta = 0.8
    G = ln.implicit_regularizer_gradient(H, eta, beta)
    if beta == 0.0:
        np.testing.assert_allclose(G, 0.5 * np.linalg.inv(2 * np.eye(len(H)) - eta * H), rtol=1e-13, atol=1e-15)
    h = 1e-4
    for _ in range(5):
        D = rng.standard_normal(H.shape)
        D = 0.5 * (D + D.T)
        fd = (ln.implicit_regularizer_matrix(H + h * D, eta, beta)
              - ln.implicit_regularizer_matrix(H - h * D, eta, beta)) / (2 * h)
        # rule: central difference error ≤ h²/6·|R'''| (~1e-8 here) + round-off eps·|R|/h (~1e-11)
        assert abs(fd - np.sum(G * D)) <= 1e-7 * np.abs(D).sum()


def _sparse_data(rng, n=12, d=6):
    X = rng.standard_normal((n, d))
    w = np.zeros(d)
    w[:2] = [1.0, -0.5]
    return X, X @ w, w


def test_sparse_model_hessian_and_quarter_trace_identity(rng):
    X, y, w = _sparse_data(rng)
    d = X.shape[1]
    # a zero-loss point: u² − v² = w with extra balanced mass on every coordinate
    extra = rng.uniform(0.1, 0.5, d)
    u = np.sqrt(np.maximum(w, 0) + extra)
    v = np.sqrt(np.maximum(-w, 0) + extra)
    assert ln.sparse_model_loss(u, v, X, y) <= 1e-28
    H = ln.sparse_model_hessian(u, v, X, y)
    # analytic Hessian vs central differences of the analytic gradient, at an off-manifold point too
    for uu, vv in ((u, v), (u + 0.3, v - 0.2)):
        th = np.concatenate([uu, vv])
        h = 1e-5
        fd = np.stack([(ln.sparse_model_gradient(*np.split(th + h * e, 2), X, y)
                        - ln.sparse_model_gradient(*np.split(th - h * e, 2), X, y)) / (2 * h)
                       for e in np.eye(2 * d)])
        Ha = ln.sparse_model_hessian(uu, vv, X, y)
        # rule: gradient is cubic, so the central difference has error h²·|∂³g|/6 (~1e-9)
        np.testing.assert_allclose(fd, Ha, rtol=0, atol=1e-7 * np.abs(Ha).max())
    assert abs(0.25 * np.trace(H) - ln.sparse_quarter_trace(u, v, X)) <= 1e-13 * np.trace(H)
    # and ¼ tr ∇²L = (1/(4n)) Σ_i ‖∇f_i‖² (Blanc et al.)
    J = np.concatenate([2 * u * X, -2 * v * X], axis=1)
    assert abs(0.25 * np.trace(H) - np.sum(J ** 2) / (4 * len(X))) <= 1e-13 * np.trace(H)


def test_weighted_lasso_kkt_and_brute_force(rng):
    X = rng.standard_normal((7, 4))
    y = X @ np.array([1.0, 0.0, -0.4, 0.05]) + 0.1 * rng.standard_normal(7)
    for lam in (0.0, 0.05, 0.2, 5.0):
        w = ln.weighted_lasso(X, y, lam)
        bf = ln.weighted_lasso_brute_force(X, y, lam)
        # rule: both solve the same (polished) linear system on the same support: 1e-10
        np.testing.assert_allclose(w, bf, rtol=0, atol=1e-10 * max(1.0, np.abs(bf).max()))
        assert ln.lasso_kkt_violation(w, X, y, lam) <= 1e-12 * max(1.0, np.abs(X.T @ y).max() / len(y))
        if lam > 0:  # at λ = 0 the dual point is 0 and the gap is the residual, not a certificate
            assert ln.lasso_duality_gap(w, X, y, lam) <= 1e-12 * (y @ y / (2 * len(y)))
    assert np.all(ln.weighted_lasso(X, y, 5.0) == 0)  # λ ≥ max|g_j(0)|/m_j: w = 0


def test_weighted_lasso_on_the_sparse_testbed_size(rng):
    n, d = 40, 100
    X = rng.standard_normal((n, d))
    w_star = np.zeros(d)
    w_star[:5] = 1.0
    y = X @ w_star
    w = ln.weighted_lasso(X, y, 0.01)
    scale = y @ y / (2 * n)
    assert ln.lasso_duality_gap(w, X, y, 0.01) <= 1e-12 * scale
    assert ln.lasso_kkt_violation(w, X, y, 0.01) <= 1e-9  # rule: KKT residual ≲ √(gap·curvature)
    assert np.count_nonzero(w) <= n  # a Lasso solution has at most n nonzeros (generic X)


def test_toy_hessian_on_the_manifold():
    for q in (0.3, 1.0, 1.7, 4.0):
        th = ln.toy_manifold_point(q)
        assert ln.toy_loss(th) <= 1e-30
        H = ln.toy_hessian(th)
        # analytic Hessian vs central differences of the analytic gradient (rule: 1e-8 abs)
        h = 1e-5
        fd = np.stack([(ln.toy_gradient(th + h * e) - ln.toy_gradient(th - h * e)) / (2 * h) for e in np.eye(3)])
        np.testing.assert_allclose(fd, H, rtol=0, atol=1e-8)
        # eigenvalue formula (1/q + q/2, q/2, 0); rule: eigvalsh backward error 10·eps·‖H‖
        np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(H)), np.sort(ln.toy_hessian_eigenvalues(q)),
                                   rtol=0, atol=10 * EPS * (1 / q + q))
    # off the manifold the residual term matters: analytic vs finite difference again
    th = np.array([0.7, 1.9, -0.4])
    fd = np.stack([(ln.toy_gradient(th + 1e-5 * e) - ln.toy_gradient(th - 1e-5 * e)) / 2e-5 for e in np.eye(3)])
    np.testing.assert_allclose(fd, ln.toy_hessian(th), rtol=0, atol=1e-8)


def test_toy_q_star_matches_spec_and_minimizes():
    spec = {0.4: 1.0575, 1.0: 1.1939, 1.2: 1.2715}  # the values the claim states, 4 decimals
    for eta, q_spec in spec.items():
        q = ln.toy_q_star(eta)
        assert abs(q - q_spec) <= 0.5e-4  # rule: rounding to 4 decimals
        # it is the minimum of R_η along the manifold (strict convexity), checked on a grid
        lo, hi = ln.toy_stable_interval(eta)
        grid = np.linspace(lo, hi, 2003)[1:-1]
        vals = np.array([ln.toy_regularizer(g, eta) for g in grid])
        assert ln.toy_regularizer(q, eta) <= vals.min() + 1e-13
        # R_η from the generic formula on the analytic Hessian's eigenvalues agrees
        H = ln.toy_hessian(ln.toy_manifold_point(q))
        assert ln.implicit_regularizer_matrix(H, eta) == pytest.approx(ln.toy_regularizer(q, eta), rel=1e-13)
    # trace regularizer: ¼ tr ∇²L = ¼ Σ eigenvalues on the manifold is minimal at q = 1 (grid
    # spacing 1e-3), whatever η; and q*(η) → 1 as η → 0
    grid = np.linspace(0.5, 2.0, 1501)
    quarter_trace = [ln.toy_hessian_eigenvalues(g).sum() / 4 for g in grid]
    assert abs(grid[int(np.argmin(quarter_trace))] - ln.toy_q_star_trace()) <= 1e-3
    assert abs(ln.toy_q_star(1e-4) - 1.0) <= 1e-3


def test_toy_no_stable_point_beyond_sqrt2():
    # the stable interval shrinks to the point √2 as η → √2⁻
    lo, hi = ln.toy_stable_interval(np.sqrt(2) - 1e-9)
    assert lo < np.sqrt(2) < hi and hi - lo < 1e-3
    for eta in (np.sqrt(2), 1.5, 3.0):
        with pytest.raises(InvalidParameter, match=r"eta = .*sqrt\(2\)"):
            ln.toy_stable_interval(eta)
        # and on the manifold every q gives λ_max ≥ 2/η, so R_η itself refuses
        for q in np.geomspace(0.05, 20, 41):
            assert ln.toy_hessian_eigenvalues(q).max() >= 2 / eta * (1 - 1e-15)
            with pytest.raises(InvalidParameter, match=r"R_eta is \+inf"):
                ln.toy_regularizer(q, eta)


@pytest.mark.parametrize("call, match", [
    (lambda: ln.regularization_strength(0.1, -1.0, 4), r"sigma = -1 .*sigma >= 0"),
    (lambda: ln.regularization_strength(0.0, 1.0, 4), r"eta = 0 .*eta > 0"),
    (lambda: ln.regularization_strength(0.1, 1.0, 0), r"batch_size = 0 .*batch_size >= 1"),
    (lambda: ln.regularization_strength(0.1, 1.0, 2, beta=1.0), r"beta = 1 "),
    (lambda: ln.implicit_regularizer([1.0, 4.0], -0.1), r"eta = -0\.1 "),
    (lambda: ln.implicit_regularizer([1.0, 4.0], 0.5),
     r"eta = 0\.5 .*R_eta is \+inf for eta >= 2/lambda_max = 0\.5"),
    (lambda: ln.implicit_regularizer([1.0, 4.0], 0.9, beta=0.5),
     r"eta = 0\.9 .*R_eta is \+inf for eta >= 2\(1\+beta\)/lambda_max = 0\.75"),
    (lambda: ln.implicit_regularizer_gradient(np.diag([1.0, 5.0]), 0.5), r"R_eta is \+inf"),
    (lambda: ln.implicit_regularizer([np.nan], 0.1), r"eigenvalues = "),
    (lambda: ln.weighted_lasso(np.ones((3, 2)), np.ones(3), -1.0), r"lam = -1 "),
    (lambda: ln.toy_manifold_point(0.0), r"q = 0 "),
])
def test_bad_input_gives_clear_error(call, match):
    with pytest.raises(InvalidParameter, match=match):
        call()
