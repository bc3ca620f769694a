"""Large-batch SGD with normalized momentum (SNGM) vs plain momentum (MSGD): bounds.

Setting (Zhao, Shi, Xie, Li, "Stochastic Normalized Gradient Descent with Momentum for
Large-Batch Training", arXiv 2007.13985). The bounds below are *derived* for this toolkit,
not quoted from the paper: the paper's theorems have other constants; here every constant
is the one the derivation sketched below produces.

    g_t = minibatch gradient of size B at w_t,   u₀ = 0,
    SNGM:  u_{t+1} = β u_t + g_t/‖g_t‖,          w_{t+1} = w_t − η u_{t+1},
    MSGD:  u_{t+1} = β u_t + g_t,                w_{t+1} = w_t − η u_{t+1}.

A budget of C gradient computations gives T = C/B iterations. Assumptions: F ≥ F*,
Δ = F(w₀) − F*, F L-smooth, per-sample gradient noise E‖ξ‖² ≤ σ² (so the minibatch
noise has E‖g − ∇F‖² ≤ σ²/B). For SNGM ‖u_t‖ ≤ 1/(1 − β).

SNGM (any η > 0), derived:

    (1/T) Σ_t E‖∇F(w_t)‖ ≤ (1 − β)Δ/(ηT) + (1 + β)Lη/(2(1 − β)²) + 2σ/√B.          (1)

Sketch: z_t = w_t − (ηβ/(1 − β)) u_t obeys z_{t+1} = z_t − (η/(1 − β)) g_t/‖g_t‖ and
‖z_t − w_t‖ ≤ ηβ/(1 − β)²; the descent lemma at z_t, ⟨∇F, g/‖g‖⟩ ≥ ‖∇F‖ − 2‖g − ∇F‖
and E‖g − ∇F‖ ≤ σ/√B give (1) (the two η-terms Lηβ/(1 − β)² + Lη/(2(1 − β)) add up to
(1 + β)Lη/(2(1 − β)²)). Minimizing over η:

    η* = (1 − β)^{3/2} √(2Δ/((1 + β)LT)),
    bound(η*) = √(2(1 + β)LΔB/((1 − β)C)) + 2σ/√B,                                   (2)
    B* = argmin_B bound(η*) = σ √(2(1 − β)C/((1 + β)LΔ)) = Θ(√C).                   (3)

Batch window for bound(η*) ≤ ε (each term ≤ ε/2):
16σ²/ε² ≤ B ≤ (1 − β)ε²C/(8(1 + β)LΔ).

MSGD with 0 < η ≤ (1 − β)²/(4L), derived (same z_t with g_t in place of g_t/‖g_t‖,
Young's inequality and E‖u_t‖² ≤ (1/(1 − β)) Σ_k β^{t−1−k} E‖g_k‖²):

    (1/T) Σ_t E‖∇F(w_t)‖² ≤ 4(1 − β)Δ/(ηT) + c_β Lησ²/((1 − β)B),
    c_β = 2 + β²/(2(1 − β)).                                                          (4)

At the step cap η = (1 − β)²/(4L) each term of (4) is ≤ ε²/2 iff
c_β(1 − β)σ²/(2ε²) ≤ B ≤ (1 − β)ε²C/(32LΔ).

Heavy ball on a quadratic with curvature λ: the iteration matrix
[[1 + β − ηλ, −β], [1, 0]] has spectral radius < 1 iff 0 < ηλ < 2(1 + β) (0 ≤ β < 1).

Testbeds (separable, d coordinates): L-smooth F(w) = Σ_j (w_j²/2 + 3 cos w_j) with
L = max|1 − 3 cos x| = 4, and (L0, L1)-smooth F(w) = Σ_j (cosh w_j + 3 cos w_j) with
(L0, L1) = (7, 1). For the L-smooth testbed with d = 10, w₀ = 3·1:
Δ = 8.8451... (see :func:`lsmooth_delta`) and λ_max(∇²F(w₀)) = 1 − 3 cos 3 = 3.96998.

All functions are float64 NumPy/SciPy and validate their inputs (see
:mod:`theory.validation`).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import optimize

from theory import validation as check

LSMOOTH_L = 4.0          # max_x |1 − 3 cos x|
L0L1_CONSTANTS = (7.0, 1.0)  # (L0, L1) for Σ_j (cosh w_j + 3 cos w_j)


class BatchWindow(NamedTuple):
    """Sufficient batch sizes low ≤ B ≤ high; ``empty`` when low > high (no error)."""
    low: float
    high: float

    @property
    def empty(self) -> bool:
        return self.low > self.high


# ----------------------------------------------------------------------------- checks
def _beta(beta) -> float:
    return check.in_range("beta", beta, 0.0, 1.0, closed_low=True, closed_high=False)


def _batch(B) -> float:
    """Batch size B ≥ 1 (real: the optimizations below treat B as continuous)."""
    b = float(B)
    if not (np.isfinite(b) and b >= 1.0):
        check.fail("B", B, "B >= 1")
    return b


def _budget(C, B: float) -> float:
    """Gradient budget C ≥ B (at least one iteration)."""
    c = float(C)
    if not (np.isfinite(c) and c >= B):
        check.fail("C", C, f"C >= B = {B:g} (at least one iteration T = C/B >= 1)")
    return c


def _common(beta, B, C, L, delta, sigma):
    beta = _beta(beta)
    B = _batch(B)
    C = _budget(C, B)
    L = check.positive("L", L)
    delta = check.nonnegative("delta", delta)
    sigma = check.nonnegative("sigma", sigma)
    return beta, B, C, L, delta, sigma


# ------------------------------------------------------------------------------- SNGM
def sngm_bound(eta, beta, B, C, L, delta, sigma) -> float:
    """Bound (1) on (1/T) Σ_t E‖∇F(w_t)‖ for SNGM, T = C/B (derived, see the module docstring).

        (1 − β)Δ/(ηT) + (1 + β)Lη/(2(1 − β)²) + 2σ/√B

    Args:
      eta: step size η > 0 (any; SNGM needs no step cap).
      beta: momentum 0 ≤ β < 1.
      B: batch size ≥ 1.
      C: gradient budget ≥ B.
      L: smoothness constant > 0.
      delta: Δ = F(w₀) − F* ≥ 0.
      sigma: per-sample gradient noise standard deviation σ ≥ 0.
    Returns:
      the bound (float).
    """
    beta, B, C, L, delta, sigma = _common(beta, B, C, L, delta, sigma)
    eta = check.positive("eta", eta)
    T = C / B
    return float((1 - beta) * delta / (eta * T)
                 + (1 + beta) * L * eta / (2 * (1 - beta) ** 2)
                 + 2 * sigma / np.sqrt(B))


def sngm_best_eta(beta, C, B, L, delta) -> float:
    """η* = (1 − β)^{3/2} √(2Δ/((1 + β)LT)), T = C/B: the minimizer of bound (1) over η
    (derived: balance of a/η + bη at η = √(a/b)). Needs Δ > 0.

    Returns:
      η* (float).
    """
    beta = _beta(beta)
    B = _batch(B)
    C = _budget(C, B)
    L = check.positive("L", L)
    delta = check.positive("delta", delta)
    T = C / B
    return float((1 - beta) ** 1.5 * np.sqrt(2 * delta / ((1 + beta) * L * T)))


def sngm_bound_at_best_eta(beta, B, C, L, delta, sigma) -> float:
    """Bound (2): √(2(1 + β)LΔB/((1 − β)C)) + 2σ/√B, i.e. bound (1) at η = η* (derived).

    Δ = 0 is allowed (the optimization term vanishes, as η* → 0).
    """
    beta, B, C, L, delta, sigma = _common(beta, B, C, L, delta, sigma)
    return float(np.sqrt(2 * (1 + beta) * L * delta * B / ((1 - beta) * C)) + 2 * sigma / np.sqrt(B))


def sngm_best_batch(beta, C, L, delta, sigma) -> float:
    """B* = σ √(2(1 − β)C/((1 + β)LΔ)) = Θ(√C): the minimizer of bound (2) over real B > 0
    (derived: k√B + 2σ/√B is smallest at B = 2σ/k). Needs Δ > 0.

    bound (2) decreases for B < B* and increases after, so the best admissible batch is
    clip(B*, 1, C); this returns the unclipped B* (it may be < 1, e.g. for σ = 0).
    """
    beta = _beta(beta)
    C = check.positive("C", C)
    L = check.positive("L", L)
    delta = check.positive("delta", delta)
    sigma = check.nonnegative("sigma", sigma)
    return float(sigma * np.sqrt(2 * (1 - beta) * C / ((1 + beta) * L * delta)))


def _window_inputs(eps, beta, C, L, delta, sigma):
    """Validated (ε, β, C, L, Δ, σ) for the batch-window functions."""
    return (check.positive("eps", eps), _beta(beta), check.positive("C", C),
            check.positive("L", L), check.nonnegative("delta", delta),
            check.nonnegative("sigma", sigma))


def sngm_batch_window(eps, beta, C, L, delta, sigma) -> BatchWindow:
    """Batch sizes for which bound (2) ≤ ε, each term ≤ ε/2 (derived):

        low  = 16σ²/ε²                   (2σ/√B = ε/2 at B = low),
        high = (1 − β)ε²C/(8(1 + β)LΔ)   (√(2(1 + β)LΔB/((1 − β)C)) = ε/2 at B = high).

    An empty window (low > high) is returned, not raised; high = inf when Δ = 0. The
    constraint 1 ≤ B ≤ C is not applied.
    """
    eps, beta, C, L, delta, sigma = _window_inputs(eps, beta, C, L, delta, sigma)
    low = 16 * sigma ** 2 / eps ** 2
    high = np.inf if delta == 0 else (1 - beta) * eps ** 2 * C / (8 * (1 + beta) * L * delta)
    return BatchWindow(float(low), float(high))


# ------------------------------------------------------------------------------- MSGD
def msgd_eta_cap(beta, L) -> float:
    """(1 − β)²/(4L): the largest step for which bound (4) is derived."""
    beta = _beta(beta)
    L = check.positive("L", L)
    return float((1 - beta) ** 2 / (4 * L))


def msgd_c_beta(beta) -> float:
    """c_β = 2 + β²/(2(1 − β)), the noise constant of bound (4)."""
    beta = _beta(beta)
    return float(2 + beta ** 2 / (2 * (1 - beta)))


def msgd_bound(eta, beta, B, C, L, delta, sigma) -> float:
    """Bound (4) on (1/T) Σ_t E‖∇F(w_t)‖² for MSGD, T = C/B (derived, see the module docstring).

        4(1 − β)Δ/(ηT) + c_β Lησ²/((1 − β)B),   c_β = 2 + β²/(2(1 − β)),

    valid for 0 < η ≤ (1 − β)²/(4L); a larger η raises InvalidParameter naming the cap.

    Args: as :func:`sngm_bound`.
    Returns:
      the bound on the average squared gradient norm (float).
    """
    beta, B, C, L, delta, sigma = _common(beta, B, C, L, delta, sigma)
    eta = check.positive("eta", eta)
    cap = msgd_eta_cap(beta, L)
    if eta > cap:
        check.fail("eta", eta, f"0 < eta <= (1 - beta)^2/(4L) = {cap:.6g} (MSGD step cap)")
    T = C / B
    return float(4 * (1 - beta) * delta / (eta * T) + msgd_c_beta(beta) * L * eta * sigma ** 2 / ((1 - beta) * B))


def msgd_batch_window(eps, beta, C, L, delta, sigma) -> BatchWindow:
    """Batch sizes for which bound (4) at η = (1 − β)²/(4L) is ≤ ε², each term ≤ ε²/2
    (derived; then also (1/T) Σ E‖∇F‖ ≤ ε by Jensen):

        low  = c_β(1 − β)σ²/(2ε²)     (noise term c_β(1 − β)σ²/(4B) = ε²/2 at B = low),
        high = (1 − β)ε²C/(32LΔ)      (16LΔB/((1 − β)C) = ε²/2 at B = high).

    Empty window returned, not raised; high = inf when Δ = 0; 1 ≤ B ≤ C not applied.
    """
    eps, beta, C, L, delta, sigma = _window_inputs(eps, beta, C, L, delta, sigma)
    low = msgd_c_beta(beta) * (1 - beta) * sigma ** 2 / (2 * eps ** 2)
    high = np.inf if delta == 0 else (1 - beta) * eps ** 2 * C / (32 * L * delta)
    return BatchWindow(float(low), float(high))


def heavy_ball_cap(beta, lambda_max) -> float:
    """2(1 + β)/λ_max: heavy ball / MSGD on a quadratic is stable iff 0 < η < this.

    Derived (Jury criterion): the iteration matrix [[1 + β − ηλ, −β], [1, 0]] has
    characteristic polynomial z² − (1 + β − ηλ)z + β, whose roots lie in the open unit
    disc iff |β| < 1 and |1 + β − ηλ| < 1 + β.
    """
    beta = _beta(beta)
    lambda_max = check.positive("lambda_max", lambda_max)
    return float(2 * (1 + beta) / lambda_max)


# --------------------------------------------------------------------------- testbeds
def _coordinate_min(f, fprime) -> float:
    """min_x f(x) for the two even testbed coordinates: 0 is a local maximum (f''(0) = −2),
    the minimum is at the positive root of f' in [0.5, π] (found by brentq)."""
    x_star = optimize.brentq(fprime, 0.5, np.pi, xtol=1e-15, rtol=4 * np.finfo(float).eps)
    return float(f(x_star))


def _lsmooth_f(x):
    return 0.5 * x ** 2 + 3 * np.cos(x)


def _l0l1_f(x):
    return np.cosh(x) + 3 * np.cos(x)


def lsmooth_min() -> float:
    """min_x (x²/2 + 3 cos x) (at x* ≈ 2.2789, the root of x = 3 sin x)."""
    return _coordinate_min(_lsmooth_f, lambda x: x - 3 * np.sin(x))


def l0l1_min() -> float:
    """min_x (cosh x + 3 cos x) (at the positive root of sinh x = 3 sin x)."""
    return _coordinate_min(_l0l1_f, lambda x: np.sinh(x) - 3 * np.sin(x))


def lsmooth_delta(x0=3.0, d: int = 10) -> float:
    """Δ = F(x₀·1) − F* for F(w) = Σ_j (w_j²/2 + 3 cos w_j) in d dimensions.

    Δ = d·(x₀²/2 + 3 cos x₀ − min_x(x²/2 + 3 cos x)); Δ(3, 10) = 8.8451... (≈ 8.85)
    """
    x0 = float(x0)
    if not np.isfinite(x0):
        check.fail("x0", x0, "a finite start")
    d = check.integer_at_least("d", d, 1)
    return float(d * (_lsmooth_f(x0) - lsmooth_min()))


def l0l1_delta(x0=3.0, d: int = 10) -> float:
    """Δ = F(x₀·1) − F* for F(w) = Σ_j (cosh w_j + 3 cos w_j) in d dimensions."""
    x0 = float(x0)
    if not np.isfinite(x0):
        check.fail("x0", x0, "a finite start")
    d = check.integer_at_least("d", d, 1)
    return float(d * (_l0l1_f(x0) - l0l1_min()))


def lsmooth_lambda_max(x0=3.0) -> float:
    """λ_max of ∇²F(x₀·1) = diag(1 − 3 cos x₀) for the L-smooth testbed."""
    return float(1 - 3 * np.cos(float(x0)))


def l0l1_lambda_max(x0=3.0) -> float:
    """λ_max of ∇²F(x₀·1) = diag(cosh x₀ − 3 cos x₀) for the (L0, L1)-smooth testbed."""
    return float(np.cosh(float(x0)) - 3 * np.cos(float(x0)))
