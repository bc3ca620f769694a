"""The batch-size frame: gradient noise scale, the steps/examples trade-off and the
two-batch estimators.

Papers: McCandlish, Kaplan, Amodei et al., "An Empirical Model of Large-Batch Training"
(arXiv 1812.06162, 2018); Shallue, Lee, Antognini et al., "Measuring the Effects of Data
Parallelism on Neural Network Training" (arXiv 1811.03600, 2018); Zhang, Li, Nado,
Martens, Sachdeva, Dahl, Shallue, Grosse, "Which Algorithmic Choices Matter at Which
Batch Sizes? Insights From a Noisy Quadratic Model" (NeurIPS 2019, arXiv 1907.04164).

**Noise scale** (McCandlish et al.). With G the gradient, H the Hessian and Σ the
per-example gradient covariance, a minibatch gradient g_B has E g_B = G, Cov g_B = Σ/B,
and on a quadratic the step θ − εg_B lowers the loss in expectation by

    ΔL(ε) = ε|G|² − ½ε²(GᵀHG + tr(HΣ)/B),                                          (1)

maximized at ε_opt(B) = ε_max/(1 + B_noise/B) with gain ΔL_opt(B) = ΔL_max/(1 + B_noise/B),
where ε_max = |G|²/(GᵀHG), ΔL_max = ½|G|⁴/(GᵀHG) and

    B_noise = tr(HΣ)/(GᵀHG),     B_simple = tr Σ/|G|²  (H ∝ I).                   (2)

**Trade-off.** Over a whole run the steps S and examples E = B·S to a target obey
S = S_min(1 + B_noise/B) and E = E_min(1 + B/B_noise), hence

    (S/S_min − 1)(E/E_min − 1) = 1,     B_crit = E_min/S_min,                       (3)

equivalently S(B) = S_min + E_min/B: a line in 1/B (:func:`fit_tradeoff`).

**Two-batch estimators.** From squared norms of gradients at two batch sizes
B_small < B_big (E|g_B|² = |G|² + tr Σ/B for sampling with replacement):

    |G|² ≈ (B_big|g_big|² − B_small|g_small|²)/(B_big − B_small),
    tr Σ ≈ (|g_small|² − |g_big|²)/(1/B_small − 1/B_big),                           (4)

both unbiased; the same with the H-weighted norm |v|²_H = vᵀHv estimates GᵀHG and tr(HΣ).

The noisy quadratic model in closed form: :mod:`theory.nqm`.

All functions are float64 NumPy, deterministic, and validate their inputs.
"""
from __future__ import annotations

import numpy as np
from scipy import optimize

from theory import validation as check

# ============================================================================ noise scale
def noise_scales(G, H, Sigma) -> dict:
    """B_noise, B_simple, ε_max and ΔL_max of eqs. (1)-(2).

    Args:
      G: (d,) gradient (nonzero).
      H: (d, d) symmetric Hessian with GᵀHG > 0.
      Sigma: (d, d) per-example gradient covariance (symmetric PSD).
    """
    G = check.finite_vector("G", G)
    H = check.symmetric("H", H)
    Sigma = check.psd("Sigma", Sigma)
    check.same_shape("H", H, "Sigma", Sigma)
    if H.shape[0] != G.size:
        check.fail("G", G, f"a vector of length {H.shape[0]} (the size of H)")
    g2 = float(G @ G)
    if g2 <= 0:
        check.fail("G", G, "a nonzero gradient (|G|² > 0)")
    ghg = float(G @ H @ G)
    if ghg <= 0:
        check.fail("H", H, f"GᵀHG > 0 (got {ghg:.3g}): the step along −G must have positive curvature")
    tr_s = float(np.trace(Sigma))
    tr_hs = float(np.sum(H * Sigma))  # tr(HΣ) for symmetric H, Σ
    return dict(b_noise=tr_hs / ghg, b_simple=tr_s / g2, eps_max=g2 / ghg,
                delta_max=0.5 * g2 ** 2 / ghg, grad_sq=g2, ghg=ghg, trace_sigma=tr_s,
                trace_h_sigma=tr_hs)


def expected_improvement(eps, batch, G, H, Sigma) -> np.ndarray:
    """ΔL(ε) = ε|G|² − ½ε²(GᵀHG + tr(HΣ)/B), eq. (1): the exact expected decrease of a
    quadratic loss under one step θ − εg_B (with-replacement minibatch of size B)."""
    ns = noise_scales(G, H, Sigma)
    eps = np.asarray(eps, np.float64)
    b = check.positive("batch", batch)
    return eps * ns["grad_sq"] - 0.5 * eps ** 2 * (ns["ghg"] + ns["trace_h_sigma"] / b)


def optimal_step(batch, eps_max, b_noise) -> np.ndarray:
    """ε_opt(B) = ε_max/(1 + B_noise/B)."""
    batch = np.asarray(batch, np.float64)
    if np.any(~np.isfinite(batch) | (batch <= 0)):
        check.fail("batch", batch, "batch sizes B > 0")
    return check.positive("eps_max", eps_max) / (1.0 + check.nonnegative("b_noise", b_noise) / batch)


def optimal_improvement(batch, delta_max, b_noise) -> np.ndarray:
    """ΔL_opt(B) = ΔL_max/(1 + B_noise/B)."""
    return optimal_step(batch, delta_max, b_noise)


# ============================================================================ trade-off
def tradeoff_steps(batch, s_min, b_crit) -> np.ndarray:
    """S(B) = S_min(1 + B_crit/B), eq. (3)."""
    batch = np.asarray(batch, np.float64)
    return check.positive("s_min", s_min) * (1.0 + check.nonnegative("b_crit", b_crit) / batch)


def tradeoff_examples(batch, e_min, b_crit) -> np.ndarray:
    """E(B) = E_min(1 + B/B_crit), eq. (3)."""
    batch = np.asarray(batch, np.float64)
    return check.positive("e_min", e_min) * (1.0 + batch / check.positive("b_crit", b_crit))


def tradeoff_product(steps, examples, s_min, e_min) -> np.ndarray:
    """(S/S_min − 1)(E/E_min − 1): 1 on the trade-off curve (3)."""
    return (np.asarray(steps, np.float64) / s_min - 1.0) * (np.asarray(examples, np.float64) / e_min - 1.0)


def fit_tradeoff(batch, steps) -> dict:
    """Fit S(B) = S_min + E_min/B (eq. 3) by least squares on relative residuals,
    (S_i − S_min − E_min/B_i)/S_i, with S_min, E_min >= 0 (scipy's NNLS). Points with a
    non-finite S (never reached) are left out. Returns S_min, E_min, B_crit = E_min/S_min
    (inf if S_min = 0), the fitted S and the log residuals log(S_i/S_fit(B_i)); NaNs if
    fewer than 2 points are finite."""
    batch = check.finite_vector("batch", batch)
    steps = np.asarray(steps, np.float64)
    if steps.shape != batch.shape:
        check.fail("steps", steps, f"one value per batch size ({batch.size})")
    if np.any(batch <= 0):
        check.fail("batch", batch, "batch sizes B > 0")
    ok = np.isfinite(steps) & (steps > 0)
    nan = dict(s_min=np.nan, e_min=np.nan, b_crit=np.nan, fitted=np.full(batch.shape, np.nan),
               log_residual=np.full(batch.shape, np.nan), n_points=int(ok.sum()))
    if ok.sum() < 2:
        return nan
    A = np.stack([np.ones(ok.sum()), 1.0 / batch[ok]], axis=1) / steps[ok, None]
    (s_min, e_min), _ = optimize.nnls(A, np.ones(ok.sum()))
    fitted = s_min + e_min / batch
    with np.errstate(divide="ignore", invalid="ignore"):
        resid = np.where(ok, np.log(steps / fitted), np.nan)
        b_crit = e_min / s_min if s_min > 0 else np.inf
    return dict(s_min=float(s_min), e_min=float(e_min), b_crit=float(b_crit), fitted=fitted,
                log_residual=resid, n_points=int(ok.sum()))


# ============================================================ two-batch estimators (4)
def two_batch_estimates(sq_small, sq_big, b_small, b_big):
    """Unbiased estimates (|G|², tr Σ) from squared norms |g_small|², |g_big|² of minibatch
    gradients of sizes b_small < b_big (arrays broadcast; one estimate per pair), eq. (4).
    With the H-weighted norm vᵀHv the same formulas estimate (GᵀHG, tr(HΣ))."""
    bs = check.positive("b_small", b_small)
    bb = check.positive("b_big", b_big)
    if bb <= bs:
        check.fail("b_big", b_big, f"b_big > b_small = {bs:g}")
    s, b = np.asarray(sq_small, np.float64), np.asarray(sq_big, np.float64)
    g2 = (bb * b - bs * s) / (bb - bs)
    tr = (s - b) / (1.0 / bs - 1.0 / bb)
    return g2, tr


def minibatch_sq_norm_variance(G, Sigma, third, fourth, batch) -> float:
    """Var |g_B|² for the mean g_B of B i.i.d. per-example gradients u = G + δ (E δ = 0,
    E δδᵀ = Σ, ``third`` = E[(Gᵀδ)|δ|²], ``fourth`` = E|δ|⁴):

        Var|g_B|² = 4GᵀΣG/B + (4·third + 2 tr Σ²)/B² + (fourth − (tr Σ)² − 2 tr Σ²)/B³.

    (Pairings of the four-fold sum: j=k=l=m gives ``fourth``, the three pairings of two
    distinct indices (tr Σ)² + 2 tr Σ².) For Gaussian δ, third = 0 and fourth =
    (tr Σ)² + 2 tr Σ², so Var = 4GᵀΣG/B + 2 tr Σ²/B²."""
    G = check.finite_vector("G", G)
    Sigma = check.psd("Sigma", Sigma)
    B = check.positive("batch", batch)
    tr, tr2 = float(np.trace(Sigma)), float(np.sum(Sigma * Sigma))
    return float(4 * G @ Sigma @ G / B + (4 * third + 2 * tr2) / B ** 2 + (fourth - tr ** 2 - 2 * tr2) / B ** 3)


def per_example_moments(U) -> dict:
    """G, Σ, E[(Gᵀδ)|δ|²] and E|δ|⁴ of the empirical distribution of the rows of U (n, d)
    (per-example gradients; sampling with replacement draws from it); ``U`` is kept."""
    U = np.asarray(U, np.float64)
    G = U.mean(axis=0)
    D = U - G
    sq = np.sum(D * D, axis=1)
    return dict(G=G, Sigma=D.T @ D / U.shape[0], third=float(np.mean((D @ G) * sq)),
                fourth=float(np.mean(sq ** 2)), U=U)


def gaussian_moments(G, Sigma) -> dict:
    """The same moments for per-example gradients N(G, Σ) (the NQM's model)."""
    Sigma = check.psd("Sigma", Sigma)
    tr, tr2 = float(np.trace(Sigma)), float(np.sum(Sigma * Sigma))
    return dict(G=check.finite_vector("G", G), Sigma=Sigma, third=0.0, fourth=tr ** 2 + 2 * tr2)


def weighted_moments(moments: dict, M) -> dict:
    """The moments of M^{1/2}u (M symmetric PSD), so that |M^{1/2}g|² = gᵀMg: the
    H-weighted norms of the two-batch estimators of GᵀHG and tr(HΣ)."""
    M = check.psd("M", M)
    w, V = np.linalg.eigh(M)
    R = (V * np.sqrt(np.clip(w, 0, None))) @ V.T
    G, S = R @ moments["G"], R @ moments["Sigma"] @ R
    if "U" in moments:
        return per_example_moments(moments["U"] @ R)
    return gaussian_moments(G, 0.5 * (S + S.T))


def two_batch_sd(moments: dict, b_small, b_big) -> dict:
    """Per-pair standard deviations of the two-batch estimates of |G|² and tr Σ (eq. 4)
    from independent g_small, g_big: each is a·|g_small|² + b·|g_big|²."""
    vs = minibatch_sq_norm_variance(moments["G"], moments["Sigma"], moments["third"], moments["fourth"], b_small)
    vb = minibatch_sq_norm_variance(moments["G"], moments["Sigma"], moments["third"], moments["fourth"], b_big)
    bs, bb = float(b_small), float(b_big)
    d = 1.0 / bs - 1.0 / bb
    return dict(grad_sq=float(np.sqrt((bb ** 2 * vb + bs ** 2 * vs) / (bb - bs) ** 2)),
                trace=float(np.sqrt((vs + vb) / d ** 2)), var_small=vs, var_big=vb)
