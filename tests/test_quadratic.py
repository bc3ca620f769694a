"""theory.quadratic: closed forms vs dense / brute-force computations (float64)."""
import numpy as np
import pytest

from theory import quadratic as qt
from theory.validation import InvalidParameter


def _problem(rng, d=12):
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = np.geomspace(1.0, 0.02, d)
    A = Q @ np.diag(lam) @ Q.T
    M = rng.standard_normal((d, d))
    C = 0.1 * M @ M.T / d
    return 0.5 * (A + A.T), C, rng.standard_normal(d)


def test_expected_loss_matches_dense_moment_recursion(rng):
    # brute force: propagate mean m and covariance P exactly: m ← Mm, P ← MPMᵀ + α²C
    A, C, x0 = _problem(rng)
    alpha = 1.3
    M = np.eye(len(x0)) - alpha * A
    m, P = x0.copy(), np.zeros_like(A)
    dense = []
    for _ in range(40):
        dense.append(0.5 * (m @ A @ m + np.trace(A @ P)))
        m, P = M @ m, M @ P @ M.T + alpha ** 2 * C
    closed = qt.expected_loss(A, C, alpha, x0, np.arange(40))
    np.testing.assert_allclose(closed, dense, rtol=1e-12)  # float64 round-off over 40 steps


def test_stationary_closed_form_equals_lyapunov(rng):
    A, C, _ = _problem(rng)
    for alpha in (0.1, 1.0, 1.9):
        exact = qt.stationary_loss(A, C, alpha)
        lyap = qt.stationary_loss_lyapunov(A, C, alpha)
        assert abs(exact - lyap) <= 1e-10 * abs(lyap)  # acceptance: 1e-10 relative
        S = qt.stationary_covariance(A, C, alpha)
        M = np.eye(len(A)) - alpha * A
        np.testing.assert_allclose(S, M @ S @ M + alpha ** 2 * C, atol=1e-12 * np.abs(S).max())


def test_projections_preserve_trace_and_frobenius_identity(rng):
    A, _, _ = _problem(rng)
    s = 0.07
    norms = []
    for p in qt.STRUCTURES:
        C = qt.structured_covariance(A, p, s, blocks=[4, 4, 4])
        assert abs(np.trace(C) - s * np.trace(A)) <= 1e-12 * np.trace(A)
        assert abs(qt.trace_product(A, C) - qt.frobenius_norm(C) ** 2 / s) <= 1e-12 * qt.trace_product(A, C)
        norms.append(qt.frobenius_norm(C))
    assert norms == sorted(norms, reverse=True) and len(set(norms)) == 4


def test_projection_is_idempotent_and_orthogonal(rng):
    A, C, _ = _problem(rng)
    for p in qt.STRUCTURES:
        P = qt.project(A, p, blocks=[6, 6])
        np.testing.assert_allclose(qt.project(P, p, blocks=[6, 6]), P, atol=1e-15)
        # ⟨A − P(A), P(B)⟩ = 0 for any symmetric B (orthogonal projection)
        inner = np.sum((A - P) * qt.project(C, p, blocks=[6, 6]))
        assert abs(inner) <= 1e-14 * np.abs(A).sum() * np.abs(C).sum()


def test_expansion_and_small_alpha_limit(rng):
    A, C, _ = _problem(rng)
    for alpha in (1e-2, 1e-3):
        exact = qt.stationary_loss(A, C, alpha)
        two = qt.stationary_loss_expansion(A, C, alpha, order=2)
        # remainder of the series is ≤ α³ tr(A²C)/16 · 1/(1 − αλ_max/2)
        bound = alpha ** 3 * np.trace(A @ A @ C) / 16 / (1 - alpha / 2)
        assert 0 <= exact - two <= bound


def test_loss_bound_from_zero(rng):
    A, C, _ = _problem(rng)
    alpha, k = 1.5, np.arange(1, 30)
    exact = qt.expected_loss(A, C, alpha, np.zeros(len(A)), k)
    bound = qt.loss_bound_from_zero(A, C, alpha, k)
    assert np.all(exact <= bound * (1 + 1e-12))
    assert abs(exact[0] - bound[0]) <= 1e-12 * bound[0]  # equality at k = 1


def test_equal_spectrum_pair(rng):
    A, _, _ = _problem(rng)
    C1, C2 = qt.equal_spectrum_pair(A, np.linspace(0.01, 0.1, len(A)))
    assert abs(np.trace(C1) - np.trace(C2)) <= 1e-13
    assert abs(qt.frobenius_norm(C1) - qt.frobenius_norm(C2)) <= 1e-13
    assert qt.trace_product(A, C1) > qt.trace_product(A, C2)


def test_block_mask_layout():
    """Consecutive blocks of the given sizes, written out by hand."""
    m = qt.block_mask(5, [2, 3])
    expected = np.array([[1, 1, 0, 0, 0],
                         [1, 1, 0, 0, 0],
                         [0, 0, 1, 1, 1],
                         [0, 0, 1, 1, 1],
                         [0, 0, 1, 1, 1]], bool)
    assert np.array_equal(m, expected)
    assert np.array_equal(qt.block_mask(3, [1, 1, 1]), np.eye(3, dtype=bool))
    # the block projection keeps exactly the masked entries
    M = np.arange(25.0).reshape(5, 5)
    M = M + M.T
    assert np.array_equal(qt.project(M, "block", [2, 3]), np.where(expected, M, 0.0))


def test_batch_noise_scale():
    assert qt.batch_noise_scale(16, 512) == pytest.approx(1 / 16 - 1 / 512, rel=1e-15)
    n = 2000  # without replacement: s = (n−M_S)/(M_S(n−1)) − (n−M_L)/(M_L(n−1))
    assert qt.batch_noise_scale(16, 512, n) == pytest.approx(
        (n - 16) / (16 * (n - 1)) - (n - 512) / (512 * (n - 1)), rel=1e-15)


@pytest.mark.parametrize("call, match", [
    (lambda A, C: qt.stationary_loss(A, C, 2.5), r"alpha = 2\.5 .*2/lambda_max"),
    (lambda A, C: qt.stationary_loss(A, C, 0.0), r"alpha = 0 "),
    (lambda A, C: qt.stationary_loss(A, -C, 1.0), r"C = .*positive semi-definite"),
    (lambda A, C: qt.stationary_loss(A, C[:3, :3], 1.0), r"shape"),
    (lambda A, C: qt.stationary_loss(A - 2 * np.eye(len(A)), C, 1.0), r"A = .*positive definite"),
    (lambda A, C: qt.project(A, "banded"), r"structure = 'banded'"),
    (lambda A, C: qt.project(A, "block", blocks=[5, 5]), r"blocks = .*summing to d"),
])
def test_bad_input_gives_clear_error(rng, call, match):
    A, C, _ = _problem(rng)
    with pytest.raises(InvalidParameter, match=match):
        call(A, C)
