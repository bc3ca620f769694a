"""Noisy gradient descent on a convex quadratic: exact moments and the Frobenius lemma.

Setting (Wen et al., "An Empirical Study of Large-Batch SGD with Structured Covariance
Noise", AISTATS 2020, arXiv 1902.08234; the formulas below are *derived* here, the paper
states the Frobenius characterization in words):

    f(x) = ½ xᵀ A x,   x_{k+1} = (I − αA) x_k + α ε_k,   ε_k ~ N(0, C) i.i.d.

With A = Q diag(λ) Qᵀ, z₀ = Qᵀ x₀, C̃ = Qᵀ C Q and r_i = 1 − αλ_i,

    E f(x_k) = ½ Σ_i λ_i r_i^{2k} z₀ᵢ² + (α/2) Σ_i C̃_ii (1 − r_i^{2k}) / (2 − αλ_i).     (1)

For 0 < α < 2/λ_max the iterate covariance converges to S solving the discrete Lyapunov
equation S = (I − αA) S (I − αA) + α² C, and

    E f_∞ = ½ tr(A S) = (α/2) tr((2I − αA)⁻¹ C)
          = (α/4) tr C + (α²/8) tr(AC) + (α³/16) tr(A²C) + O(α⁴).                   (2)

Frobenius lemma (derived): let P be the Frobenius-orthogonal projection onto a linear
space V of symmetric matrices containing I (all matrices, block-diagonal, diagonal,
multiples of I). For C = s·P(A): tr C = s tr A (as ⟨I, P(A)⟩ = ⟨I, A⟩) and
tr(AC) = s⟨A, P(A)⟩ = s‖P(A)‖_F² = ‖C‖_F²/s. So at equal total variance the excess loss
is ordered by ‖C‖_F: full > block-diagonal > diagonal > isotropic.

All functions are float64 NumPy and validate their inputs (see :mod:`theory.validation`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import linalg

from theory import validation as check

STRUCTURES = ("full", "block", "diagonal", "isotropic")


# ----------------------------------------------------------------------------- checks
def check_problem(A, C=None, alpha=None):
    """Validate (A, C, α): A symmetric positive definite, C symmetric PSD of the same
    shape, 0 < α < 2/λ_max(A). Returns float64 copies (A, C) (C None if not given)."""
    A = check.positive_definite("A", A)
    if C is not None:
        C = check.psd("C", C)
        check.same_shape("A", A, "C", C)
    if alpha is not None:
        check_step_size(alpha, A)
    return A, C


def check_step_size(alpha, A) -> float:
    """0 < α < 2/λ_max(A), with the bound spelled out in the error."""
    lam_max = float(np.linalg.eigvalsh(A)[-1])
    a = float(alpha)
    if not (np.isfinite(a) and 0.0 < a < 2.0 / lam_max):
        check.fail("alpha", alpha, f"0 < alpha < 2/lambda_max(A) = {2.0 / lam_max:.6g}")
    return a


# ------------------------------------------------------------------ moments (eq. 1, 2)
def expected_loss(A, C, alpha, x0, steps) -> np.ndarray:
    """E f(x_k) for each k in ``steps`` by the closed form (1).

    Args:
      A: (d, d) symmetric positive definite Hessian.
      C: (d, d) PSD noise covariance.
      alpha: step size, 0 < α < 2/λ_max.
      x0: (d,) deterministic start.
      steps: integer step counts k >= 0.
    Returns:
      float64 array shaped like ``steps``.
    """
    A, C = check_problem(A, C)
    alpha = check_step_size(alpha, A)
    x0 = np.asarray(x0, dtype=np.float64)
    check.same_shape("A[0]", A[0], "x0", x0)
    k = np.asarray(steps)
    if np.any(k < 0) or not np.all(np.equal(np.mod(k, 1), 0)):
        check.fail("steps", k, "integers k >= 0")
    lam, Q = np.linalg.eigh(A)
    z0 = Q.T @ x0
    c_tilde = np.einsum("ji,jk,ki->i", Q, C, Q)  # diag(Qᵀ C Q)
    r2k = (1.0 - alpha * lam)[None, :] ** (2 * k.reshape(-1, 1).astype(np.float64))
    signal = 0.5 * (r2k * (lam * z0 ** 2)).sum(axis=1)
    noise = 0.5 * alpha * ((1.0 - r2k) * (c_tilde / (2.0 - alpha * lam))).sum(axis=1)
    return (signal + noise).reshape(k.shape)


def stationary_covariance(A, C, alpha) -> np.ndarray:
    """S solving S = (I − αA) S (I − αA) + α² C (scipy's discrete Lyapunov solver)."""
    A, C = check_problem(A, C)
    alpha = check_step_size(alpha, A)
    M = np.eye(A.shape[0]) - alpha * A
    S = linalg.solve_discrete_lyapunov(M, alpha ** 2 * C)
    return 0.5 * (S + S.T)


def stationary_loss(A, C, alpha) -> float:
    """E f_∞ = (α/2) tr((2I − αA)⁻¹ C), eq. (2)."""
    A, C = check_problem(A, C)
    alpha = check_step_size(alpha, A)
    d = A.shape[0]
    return float(0.5 * alpha * np.trace(np.linalg.solve(2.0 * np.eye(d) - alpha * A, C)))


def stationary_loss_lyapunov(A, C, alpha) -> float:
    """E f_∞ = ½ tr(A S) with S from :func:`stationary_covariance` (independent route)."""
    return float(0.5 * np.trace(np.asarray(A, dtype=np.float64) @ stationary_covariance(A, C, alpha)))


def stationary_loss_expansion(A, C, alpha, order: int = 2) -> float:
    """Σ_{n=0}^{order−1} α^{n+1} tr(Aⁿ C) / 2^{n+2}: the truncated series of eq. (2)."""
    A, C = check_problem(A, C)
    check.integer_at_least("order", order, 1)
    total, An = 0.0, np.eye(A.shape[0])
    for n in range(order):
        total += alpha ** (n + 1) * np.trace(An @ C) / 2.0 ** (n + 2)
        An = An @ A
    return float(total)


def loss_bound_from_zero(A, C, alpha, steps) -> np.ndarray:
    """Upper bound E f(x_k) ≤ (α² k / 2) tr(AC) for x₀ = 0 (equality at k = 1).

    Derivation: 1 − r^{2k} ≤ k(1 − r²) = kαλ(2 − αλ) for |r| ≤ 1, applied to (1).
    """
    A, C = check_problem(A, C)
    alpha = check_step_size(alpha, A)
    return 0.5 * alpha ** 2 * np.asarray(steps, dtype=np.float64) * trace_product(A, C)


# ------------------------------------------------------------ structures (projections)
def block_mask(d: int, blocks: Sequence[int]) -> np.ndarray:
    """Boolean (d, d) mask of a block-diagonal structure with consecutive block sizes."""
    blocks = [check.integer_at_least("blocks[i]", b, 1) for b in blocks]
    if sum(blocks) != d:
        check.fail("blocks", np.asarray(blocks), f"block sizes summing to d = {d} (got {sum(blocks)})")
    labels = np.repeat(np.arange(len(blocks)), blocks)
    return labels[:, None] == labels[None, :]


def project(M, structure: str, blocks: Sequence[int] | None = None) -> np.ndarray:
    """Frobenius-orthogonal projection P(M) onto a structure space containing I.

    ``full``: M; ``block``: M with off-block entries zeroed (``blocks`` = sizes);
    ``diagonal``: diag(M); ``isotropic``: (tr M / d) I (the same trace).
    """
    M = check.symmetric("M", M)
    d = M.shape[0]
    if structure == "full":
        return M.copy()
    if structure == "block":
        if blocks is None:
            check.fail("blocks", None, "block sizes when structure = 'block'")
        return np.where(block_mask(d, blocks), M, 0.0)
    if structure == "diagonal":
        return np.diag(np.diag(M))
    if structure == "isotropic":
        return np.trace(M) / d * np.eye(d)
    raise check.InvalidParameter(f"structure = {structure!r} is not allowed: need one of {STRUCTURES}")


def structured_covariance(A, structure: str, scale: float, blocks=None) -> np.ndarray:
    """C = s · P(A): the Fisher-shaped noise of Wen et al. with structure P, scale s.

    Wen et al. take s = 1/M_S − 1/M_L (small and large batch sizes).
    """
    scale = check.positive("scale", scale)
    return scale * project(A, structure, blocks)


def batch_noise_scale(small_batch: int, large_batch: int, n: int | None = None) -> float:
    """s such that s·Σ added to a large-batch gradient matches a small-batch gradient.

    With replacement (n None): s = 1/M_S − 1/M_L. Without replacement from n examples the
    minibatch covariance is Σ (n − M)/(M (n − 1)), so s = (n−M_S)/(M_S(n−1)) − (n−M_L)/(M_L(n−1)).
    """
    ms = check.integer_at_least("small_batch", small_batch, 1)
    ml = check.integer_at_least("large_batch", large_batch, 1)
    if ml <= ms:
        check.fail("large_batch", ml, f"large_batch > small_batch = {ms}")
    if n is None:
        return 1.0 / ms - 1.0 / ml
    n = check.integer_at_least("n", n, ml)
    return (n - ms) / (ms * (n - 1)) - (n - ml) / (ml * (n - 1))


def frobenius_norm(C) -> float:
    """‖C‖_F."""
    return float(np.linalg.norm(np.asarray(C, dtype=np.float64), "fro"))


def trace_product(A, C) -> float:
    """tr(AC) = Σ_ij A_ij C_ji (no matrix product formed)."""
    return float(np.sum(np.asarray(A, dtype=np.float64) * np.asarray(C, dtype=np.float64).T))


def excess_loss_limit(C, scale: float) -> float:
    """lim_{α→0} (E f_∞ − α tr C/4)/α² = tr(AC)/8 = ‖C‖_F²/(8s) for C = s·P(A)."""
    return frobenius_norm(C) ** 2 / (8.0 * check.positive("scale", scale))


def equal_spectrum_pair(A, spectrum) -> tuple[np.ndarray, np.ndarray]:
    """Two covariances with the same eigenvalues (hence equal trace and ‖·‖_F) but
    different tr(AC): C₁ = Q diag(c↓) Qᵀ aligns large noise with large curvature,
    C₂ = Q diag(c↑) Qᵀ with small curvature (Q the eigenvectors of A, λ ascending).
    By the rearrangement inequality tr(AC₁) ≥ tr(AC₂), strictly unless c or λ is flat.
    """
    A = check.positive_definite("A", A)
    c = np.sort(np.asarray(spectrum, dtype=np.float64))
    if c.shape != (A.shape[0],) or np.any(c < 0):
        check.fail("spectrum", c, f"{A.shape[0]} non-negative values")
    _, Q = np.linalg.eigh(A)  # ascending λ
    aligned = Q @ np.diag(c) @ Q.T            # largest c with largest λ
    anti = Q @ np.diag(c[::-1]) @ Q.T         # largest c with smallest λ
    return 0.5 * (aligned + aligned.T), 0.5 * (anti + anti.T)


# ------------------------------------------------------------- Monte-Carlo planning
def tail_average_sd(A, factors, weights, alpha, n_tail: int) -> float:
    """Standard deviation of one trajectory's tail average of Σ_i w_i f(x^{(i)}_k).

    Processes x^{(i)}_{k+1} = (I − αA) x^{(i)}_k + α D_i ξ_k share the noise ξ_k ~ N(0, I)
    (common random numbers; one process: independent seeds). In the stationary regime
    z = (x^{(1)}, …) is Gaussian with covariance Γ = MΓMᵀ + α²DDᵀ, M = I ⊗ (I − αA),
    D = [D_1; D_2; …]. With g_k = ½ z_kᵀ W z_k, W = diag(w_i A):

        Cov(g_k, g_{k+ℓ}) = ½ tr(W M^ℓ Γ W Γ M^ℓᵀ),
        Var((1/m) Σ_k g_k) ≈ (1/m) [2·½ tr(W S) − ½ tr(WΓWΓ)],  S = M S Mᵀ + ΓWΓ,

    the long-run variance over m = ``n_tail`` iterates (exact up to O(τ/m) edge terms,
    τ the relaxation time). Used to size Monte-Carlo runs before they are made, so a
    check that must resolve a predicted difference does so with known power.
    """
    A, _ = check_problem(A, alpha=alpha)
    D = np.concatenate([np.asarray(f, np.float64) for f in factors], axis=0)
    p = len(factors)
    w = np.asarray(weights, np.float64)
    if w.shape != (p,):
        check.fail("weights", w, f"{p} weights, one per factor")
    n_tail = check.integer_at_least("n_tail", n_tail, 1)
    M = np.kron(np.eye(p), np.eye(A.shape[0]) - alpha * A)
    W = np.kron(np.diag(w), A)
    Gamma = linalg.solve_discrete_lyapunov(M, alpha ** 2 * D @ D.T)
    GWG = Gamma @ W @ Gamma
    S = linalg.solve_discrete_lyapunov(M, GWG)
    long_run = np.trace(W @ S) - 0.5 * np.trace(W @ GWG)
    return float(np.sqrt(max(long_run, 0.0) / n_tail))
