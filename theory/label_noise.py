"""Label-noise SGD: the implicit regularizer R_η, its small-η expansion, and two testbeds.

Paper: Damian, Ma, Lee, "Label Noise SGD Provably Prefers Flat Global Minimizers",
NeurIPS 2021, arXiv 2106.06530 (related: Blanc, Gupta, Valiant, Valiant, COLT 2020;
HaoChen, Wei, Lee, Ma, "Shape Matters", COLT 2021). The paper states the result
qualitatively (label-noise SGD converges to a stationary point of L + λR, R penalizing sharp
minimizers); the closed forms below are *derived* by the project from the paper's setting
(proof sketch: near an interpolating point the label-noise covariance is (σ²/B)∇²L, the
linearized fluctuation has stationary covariance S = λ(2I − η∇²L)⁻¹, and the mean drift
½∇³L[S] equals λ∇R_η because ∂R_η/∂H = ½(2I − ηH)⁻¹) and re-checked here and in
tests/test_label_noise_theory.py — they are not quoted from the paper.

Update (squared loss L(θ) = (1/n) Σ_i ½ (f_i(θ) − y_i)², batch B, fresh label noise
ε ~ Unif{±σ} or N(0, σ²) per drawn example):

    θ ← θ − (η/B) Σ_{i∈batch} (f_i(θ) − y_i − ε_i) ∇f_i(θ).

Strength and regularizer (Hessian eigenvalues λ_j of L at θ; heavy-ball momentum β):

    λ = ησ²/B                      (momentum: ησ²/(B(1 − β)))                    (1)
    R_η = −(1/(2η)) Σ_j log(1 − ηλ_j/2)
        (momentum: −((1 + β)/(2η)) Σ_j log(1 − ηλ_j/(2(1 + β))))                (2)
    R_η = ¼ tr ∇²L + (η/16) tr (∇²L)² + O(η²)   (momentum: η/(16(1 + β)))        (3)
    ∂R_η/∂H = ½ (2I − ηH)⁻¹         (momentum: ½ (2I − ηH/(1 + β))⁻¹)              (4)

R_η = +∞ once λ_max ≥ 2/η (momentum 2(1 + β)/η); the functions raise InvalidParameter
there. (3) is the series −log(1 − x) = Σ_k x^k/k with x = ηλ/2:
R_η = Σ_{k≥1} η^{k−1} Σ_j λ_j^k / (2^{k+1} k); for λ_j ≥ 0 the remainder after two terms
lies in [T₃, T₃/(1 − ηλ_max/2)], T₃ = η² Σ λ_j³/48.

Sparse model f(x) = ⟨u⊙u − v⊙v, x⟩ (θ = (u, v)): ∇f = (2u⊙x, −2v⊙x), ∇²f = diag(2x, −2x),
so ∇²L = (1/n) JᵀJ + (1/n) Σ_i r_i diag(2x_i, −2x_i) with r = residuals, and at zero loss
¼ tr ∇²L = Σ_j m_j (u_j² + v_j²), m_j = (1/n) Σ_i x_ij². Minimizing u² + v² subject to
u² − v² = w gives |w|, hence the prediction: the weighted Lasso

    min_w (1/(2n)) ‖Xw − y‖² + λ Σ_j m_j |w_j|.                                     (5)

Three-parameter toy: f_θ(x) = a⟨(b, c), x⟩, data (e₁, 1), (e₂, 1), so
L = ¼[(ab − 1)² + (ac − 1)²]. On the zero-loss manifold b = c = 1/a, with q = a²,
∇f₁ = (1/a, a, 0), ∇f₂ = (1/a, 0, a), and ∇²L = ½ JᵀJ has the nonzero eigenvalues of
½ JJᵀ = ½ [[1/q + q, 1/q], [1/q, 1/q + q]], i.e. 1/q + q/2 and q/2, plus 0. Hence

    q*(η) = argmin_q −(1/(2η)) [log(1 − η(1/q + q/2)/2) + log(1 − ηq/4)].         (6)

The objective is finite iff 1/q + q/2 < 2/η (the other constraint, q < 4/η, is then
implied), i.e. q² − (4/η) q + 2 < 0, q ∈ (2/η − √(4/η² − 2), 2/η + √(4/η² − 2)). That
interval is empty for η ≥ √2 (min_q (1/q + q/2) = √2 at q = √2): no point of the manifold
has finite R_η, so there is no stable point. Inside, the objective is strictly convex
(−log(1 − t) convex increasing, 1/q + q/2 convex, −log(1 − ηq/4) convex), so q* is the
unique root of the derivative (bracketed: it → −∞/+∞ at the two ends). The trace
regularizer ¼(1/q + q) gives q* = 1 for every η.

All float64 NumPy/SciPy; inputs validated through :mod:`theory.validation`.
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy import optimize

from theory import validation as check

SQRT2 = float(np.sqrt(2.0))


# ---------------------------------------------------------------------------- checks
def _eta(eta) -> float:
    return check.positive("eta", eta)


def _beta(beta) -> float:
    return check.in_range("beta", beta, 0.0, 1.0)


def _eigs(eigenvalues) -> np.ndarray:
    lam = np.atleast_1d(np.asarray(eigenvalues, dtype=np.float64))
    if lam.ndim != 1 or lam.size == 0 or not np.all(np.isfinite(lam)):
        check.fail("eigenvalues", lam, "a non-empty 1-D array of finite values")
    return lam


def check_stable(eigenvalues, eta, beta: float = 0.0) -> float:
    """Require λ_max < 2(1 + β)/η, where R_η is finite; return λ_max."""
    lam = _eigs(eigenvalues)
    eta, beta = _eta(eta), _beta(beta)
    lmax = float(lam.max())
    if lmax > 0 and eta >= 2.0 * (1.0 + beta) / lmax:
        edge = 2.0 * (1.0 + beta) / lmax
        what = "2/lambda_max" if beta == 0 else "2(1+beta)/lambda_max"
        check.fail("eta", eta, f"eta < {what} = {edge:.6g} (lambda_max = {lmax:.6g}): "
                               f"R_eta is +inf for eta >= {what} = {edge:.6g}")
    return lmax


# ---------------------------------------------------------------- strength and R_η
def regularization_strength(eta, sigma, batch_size, beta: float = 0.0) -> float:
    """λ = ησ²/(B(1 − β)), eq. (1) (β = 0: plain SGD)."""
    eta = _eta(eta)
    sigma = check.nonnegative("sigma", sigma)
    B = check.integer_at_least("batch_size", batch_size, 1)
    beta = _beta(beta)
    return eta * sigma ** 2 / (B * (1.0 - beta))


def implicit_regularizer(eigenvalues, eta, beta: float = 0.0) -> float:
    """R_η from the Hessian eigenvalues, eq. (2); raises beyond the stability edge."""
    lam = _eigs(eigenvalues)
    check_stable(lam, eta, beta)
    c = 1.0 + float(beta)
    return float(-(c / (2.0 * eta)) * np.sum(np.log1p(-eta * lam / (2.0 * c))))


def implicit_regularizer_matrix(H, eta, beta: float = 0.0) -> float:
    """R_η(H) for a symmetric Hessian matrix (eigenvalues by ``eigvalsh``)."""
    H = check.symmetric("H", H)
    return implicit_regularizer(np.linalg.eigvalsh(H), eta, beta)


def implicit_regularizer_expansion(eigenvalues, eta, order: int = 2, beta: float = 0.0) -> float:
    """Σ_{k=1}^{order} ((1+β)/(2η)) Σ_j (ηλ_j/(2(1+β)))^k / k; order 2 is eq. (3):
    ¼ tr H + (η/(16(1+β))) tr H²."""
    lam = _eigs(eigenvalues)
    eta, beta = _eta(eta), _beta(beta)
    order = check.integer_at_least("order", order, 1)
    c = 1.0 + beta
    x = eta * lam / (2.0 * c)
    return float(c / (2.0 * eta) * sum(np.sum(x ** k) / k for k in range(1, order + 1)))


def implicit_regularizer_gradient(H, eta, beta: float = 0.0) -> np.ndarray:
    """∂R_η/∂H = ½ (2I − ηH/(1 + β))⁻¹, eq. (4) (symmetric H, inside the stable region)."""
    H = check.symmetric("H", H)
    check_stable(np.linalg.eigvalsh(H), eta, beta)
    G = 0.5 * np.linalg.inv(2.0 * np.eye(len(H)) - eta * H / (1.0 + beta))
    return 0.5 * (G + G.T)


# ---------------------------------------------------------------------- sparse model
def sparse_model_predictions(u, v, X) -> np.ndarray:
    """f(x_i) = ⟨u⊙u − v⊙v, x_i⟩ for the rows of X."""
    return np.asarray(X, np.float64) @ (np.asarray(u, np.float64) ** 2 - np.asarray(v, np.float64) ** 2)


def sparse_model_loss(u, v, X, y) -> float:
    """L(u, v) = (1/n) Σ_i ½ (f(x_i) − y_i)²."""
    r = sparse_model_predictions(u, v, X) - np.asarray(y, np.float64)
    return float(0.5 * np.mean(r ** 2))


def sparse_model_gradient(u, v, X, y) -> np.ndarray:
    """∇L as the concatenation (∂L/∂u, ∂L/∂v) = ((2/n) u⊙Xᵀr, −(2/n) v⊙Xᵀr)."""
    X = np.asarray(X, np.float64)
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    r = sparse_model_predictions(u, v, X) - np.asarray(y, np.float64)
    g = X.T @ r / X.shape[0]
    return np.concatenate([2 * u * g, -2 * v * g])


def sparse_model_hessian(u, v, X, y) -> np.ndarray:
    """∇²L in (u, v) order: (1/n) JᵀJ + diag(2Xᵀr/n, −2Xᵀr/n), J_i = (2u⊙x_i, −2v⊙x_i)."""
    X = np.asarray(X, np.float64)
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    n = X.shape[0]
    r = sparse_model_predictions(u, v, X) - np.asarray(y, np.float64)
    J = np.concatenate([2 * u * X, -2 * v * X], axis=1)
    g = X.T @ r / n
    return J.T @ J / n + np.diag(np.concatenate([2 * g, -2 * g]))


def column_weights(X) -> np.ndarray:
    """m_j = (1/n) Σ_i x_ij²."""
    X = np.asarray(X, np.float64)
    return np.mean(X ** 2, axis=0)


def sparse_quarter_trace(u, v, X) -> float:
    """Σ_j m_j (u_j² + v_j²): ¼ tr ∇²L at a zero-loss point of the sparse model."""
    return float(np.sum(column_weights(X) * (np.asarray(u, np.float64) ** 2 + np.asarray(v, np.float64) ** 2)))


# --------------------------------------------------------------------- weighted Lasso
def _lasso_check(X, y, lam):
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    if X.ndim != 2 or not np.all(np.isfinite(X)):
        check.fail("X", X, "a finite 2-D design matrix")
    if y.shape != (X.shape[0],) or not np.all(np.isfinite(y)):
        check.fail("y", y, f"a finite vector of length n = {X.shape[0]}")
    lam = check.nonnegative("lam", lam)
    m = column_weights(X)
    if np.any(m <= 0):
        check.fail("X", X, "no all-zero column (m_j > 0)")
    return X, y, lam, m


def lasso_objective(w, X, y, lam) -> float:
    """(1/(2n))‖Xw − y‖² + λ Σ_j m_j |w_j|, eq. (5)."""
    X, y, lam, m = _lasso_check(X, y, lam)
    w = np.asarray(w, np.float64)
    return float(0.5 * np.mean((X @ w - y) ** 2) + lam * np.sum(m * np.abs(w)))


def lasso_duality_gap(w, X, y, lam) -> float:
    """Primal − dual objective at w, with the dual point θ = s·(y − Xw)/n scaled into
    {|X_jᵀθ| ≤ λ m_j}; dual D(θ) = ‖y‖²/(2n) − (n/2)‖θ − y/n‖². Zero iff w is optimal."""
    X, y, lam, m = _lasso_check(X, y, lam)
    w = np.asarray(w, np.float64)
    n = X.shape[0]
    theta = (y - X @ w) / n
    corr = np.abs(X.T @ theta)
    with np.errstate(divide="ignore"):
        s = min(1.0, float(np.min(np.where(corr > 0, lam * m / corr, np.inf))))
    theta = s * theta
    dual = y @ y / (2 * n) - 0.5 * n * np.sum((theta - y / n) ** 2)
    return lasso_objective(w, X, y, lam) - dual


def lasso_kkt_violation(w, X, y, lam) -> float:
    """max_j of the KKT residual of (5), with g = (1/n) Xᵀ(Xw − y):
    |g_j + λ m_j sign(w_j)| for w_j ≠ 0 and max(|g_j| − λ m_j, 0) for w_j = 0."""
    X, y, lam, m = _lasso_check(X, y, lam)
    w = np.asarray(w, np.float64)
    g = X.T @ (X @ w - y) / X.shape[0]
    viol = np.where(w != 0, np.abs(g + lam * m * np.sign(w)), np.maximum(np.abs(g) - lam * m, 0.0))
    return float(viol.max())


def weighted_lasso(X, y, lam, *, tol: float = 1e-13, max_sweeps: int = 100_000) -> np.ndarray:
    """Solve (5) by cyclic coordinate descent, then polish on the found support.

    Coordinate step: the curvature in w_j is m_j, so
    w_j ← soft(w_j + X_jᵀ r/(n m_j), λ) with r = y − Xw (the weight m_j cancels).
    Stops when the duality gap ≤ tol·‖y‖²/(2n) or the KKT residual ≤ tol·max_j|X_jᵀy|/n
    (the gap alone cannot certify λ = 0, where the dual point is 0). The polish solves the stationarity
    equations on the support S with signs s exactly, (X_Sᵀ X_S/n) w_S = X_Sᵀy/n − λ m_S s,
    and keeps it if the signs agree and the KKT residual does not grow.
    """
    X, y, lam, m = _lasso_check(X, y, lam)
    max_sweeps = check.integer_at_least("max_sweeps", max_sweeps, 1)
    n, d = X.shape
    scale = max(y @ y / (2 * n), np.finfo(np.float64).tiny)
    g_scale = max(np.abs(X.T @ y).max() / n, np.finfo(np.float64).tiny)
    w = np.zeros(d)
    r = y.copy()
    for sweep in range(max_sweeps):
        for j in range(d):
            old = w[j]
            z = old + X[:, j] @ r / (n * m[j])
            new = np.sign(z) * max(abs(z) - lam, 0.0)
            if new != old:
                r -= X[:, j] * (new - old)
                w[j] = new
        if sweep % 10 == 9 and (lasso_duality_gap(w, X, y, lam) <= tol * scale
                                or lasso_kkt_violation(w, X, y, lam) <= tol * g_scale):
            break
    else:
        raise RuntimeError(f"weighted_lasso: duality gap {lasso_duality_gap(w, X, y, lam):.3g} and KKT "
                           f"residual {lasso_kkt_violation(w, X, y, lam):.3g} still above tolerance "
                           f"after {max_sweeps} sweeps")
    S = np.flatnonzero(w)
    if S.size:
        XS = X[:, S]
        wS = np.linalg.lstsq(XS.T @ XS / n, XS.T @ y / n - lam * m[S] * np.sign(w[S]), rcond=None)[0]
        polished = np.zeros(d)
        polished[S] = wS
        if (np.all(np.sign(wS) == np.sign(w[S]))
                and lasso_kkt_violation(polished, X, y, lam) <= lasso_kkt_violation(w, X, y, lam)):
            w = polished
    return w


def weighted_lasso_brute_force(X, y, lam) -> np.ndarray:
    """Exact minimizer of (5) for tiny d by enumerating the 3^d sign patterns: for each
    pattern s solve (X_Sᵀ X_S/n) w_S = X_Sᵀy/n − λ m_S s_S and keep sign-consistent
    solutions; the minimizer is one of them, so take the lowest objective."""
    X, y, lam, m = _lasso_check(X, y, lam)
    n, d = X.shape
    best, best_obj = np.zeros(d), lasso_objective(np.zeros(d), X, y, lam)
    for s in itertools.product((-1, 0, 1), repeat=d):
        s = np.asarray(s, np.float64)
        S = np.flatnonzero(s)
        if S.size == 0:
            continue
        XS = X[:, S]
        wS = np.linalg.lstsq(XS.T @ XS / n, XS.T @ y / n - lam * m[S] * s[S], rcond=None)[0]
        if np.all(np.sign(wS) == s[S]):
            w = np.zeros(d)
            w[S] = wS
            obj = lasso_objective(w, X, y, lam)
            if obj < best_obj:
                best, best_obj = w, obj
    return best


# --------------------------------------------------------------- three-parameter toy
TOY_X = np.eye(2)
TOY_Y = np.ones(2)


def toy_loss(theta) -> float:
    """L(a, b, c) = ¼[(ab − 1)² + (ac − 1)²]."""
    a, b, c = np.asarray(theta, np.float64)
    return 0.25 * ((a * b - 1) ** 2 + (a * c - 1) ** 2)


def toy_gradient(theta) -> np.ndarray:
    a, b, c = np.asarray(theta, np.float64)
    r1, r2 = a * b - 1, a * c - 1
    return 0.5 * np.array([r1 * b + r2 * c, r1 * a, r2 * a])


def toy_hessian(theta) -> np.ndarray:
    """Analytic ∇²L: ½ Σ_i ∇f_i∇f_iᵀ + ½ Σ_i r_i ∇²f_i, ∇f₁ = (b, a, 0), ∇f₂ = (c, 0, a)."""
    a, b, c = np.asarray(theta, np.float64)
    r1, r2 = a * b - 1, a * c - 1
    g1, g2 = np.array([b, a, 0.0]), np.array([c, 0.0, a])
    H = 0.5 * (np.outer(g1, g1) + np.outer(g2, g2))
    H[0, 1] += 0.5 * r1
    H[1, 0] += 0.5 * r1
    H[0, 2] += 0.5 * r2
    H[2, 0] += 0.5 * r2
    return H


def toy_hessian_derivative(theta) -> np.ndarray:
    """∂∇²L/∂θ_k for k = a, b, c, shape (3, 3, 3): from ∇²L = ½ Σ_i g_i g_iᵀ + ½ Σ_i r_i ∇²f_i
    with g₁ = (b, a, 0), g₂ = (c, 0, a), r₁ = ab − 1, r₂ = ac − 1 (exact; the third
    derivatives of f vanish)."""
    a, b, c = np.asarray(theta, np.float64)
    g1, g2 = np.array([b, a, 0.0]), np.array([c, 0.0, a])
    e = np.eye(3)
    dg1 = [e[1], e[0], np.zeros(3)]          # ∂g₁/∂(a, b, c)
    dg2 = [e[2], np.zeros(3), e[0]]          # ∂g₂/∂(a, b, c)
    dr1, dr2 = (b, a, 0.0), (c, 0.0, a)      # ∂r_i/∂(a, b, c)
    E01, E02 = np.outer(e[0], e[1]) + np.outer(e[1], e[0]), np.outer(e[0], e[2]) + np.outer(e[2], e[0])
    out = np.empty((3, 3, 3))
    for k in range(3):
        out[k] = 0.5 * (np.outer(dg1[k], g1) + np.outer(g1, dg1[k])
                        + np.outer(dg2[k], g2) + np.outer(g2, dg2[k])
                        + dr1[k] * E01 + dr2[k] * E02)
    return out


def toy_manifold_point(q) -> np.ndarray:
    """(a, b, c) = (√q, 1/√q, 1/√q): zero loss with a² = q."""
    q = check.positive("q", q)
    a = np.sqrt(q)
    return np.array([a, 1.0 / a, 1.0 / a])


def toy_hessian_eigenvalues(q) -> np.ndarray:
    """Eigenvalues (1/q + q/2, q/2, 0) of ∇²L on the manifold (module docstring)."""
    q = check.positive("q", q)
    return np.array([1.0 / q + q / 2.0, q / 2.0, 0.0])


def toy_stable_interval(eta):
    """(q_lo, q_hi) where R_η is finite on the manifold: 2/η ∓ √(4/η² − 2); needs η < √2."""
    eta = _eta(eta)
    if eta >= SQRT2:
        check.fail("eta", eta, f"eta < sqrt(2) = {SQRT2:.6g}: for eta >= sqrt(2) every zero-loss "
                               f"point has lambda_max >= 2/eta, so R_eta is +inf and no stable point exists")
    s = np.sqrt(4.0 / eta ** 2 - 2.0)
    return 2.0 / eta - s, 2.0 / eta + s


def toy_regularizer(q, eta) -> float:
    """R_η on the manifold, the objective of (6)."""
    return implicit_regularizer(toy_hessian_eigenvalues(q), eta)


def toy_q_star(eta) -> float:
    """q*(η) of (6): the root of dR_η/dq inside the stable interval (brentq, xtol 1e-15)."""
    lo, hi = toy_stable_interval(eta)

    def dR(q):  # (2η)·dR_η/dq
        return (eta * (0.5 - 1.0 / q ** 2) / 2.0) / (1.0 - eta * (1.0 / q + q / 2.0) / 2.0) \
            + (eta / 4.0) / (1.0 - eta * q / 4.0)

    w = hi - lo
    return float(optimize.brentq(dR, lo + 1e-12 * w, hi - 1e-12 * w, xtol=1e-15, rtol=4 * np.finfo(float).eps))


def toy_q_star_trace() -> float:
    """argmin_q ¼ tr ∇²L = ¼(1/q + q): q = 1 for every η."""
    return 1.0


# ------------------------------------------------------ regularized reference flows
REGULARIZERS = ("none", "trace", "R_eta")


def hessian_derivative_fd(hessian, theta, *, h: float = 1e-6) -> np.ndarray:
    """∂H/∂θ_k by central differences of ``hessian``, shape (p, p, p) (float64; error
    O(h²)·‖∂³H‖ plus O(ε/h)·‖H‖ round-off, about 1e-10 for h = 1e-6 on O(1) Hessians)."""
    theta = np.asarray(theta, np.float64)
    out = np.empty((len(theta),) * 3)
    for k in range(len(theta)):
        e = np.zeros_like(theta)
        e[k] = h
        out[k] = (hessian(theta + e) - hessian(theta - e)) / (2.0 * h)
    return out


def regularizer_gradient(hessian, theta, eta, kind: str = "R_eta", *,
                         hessian_derivative=None) -> np.ndarray:
    """∇_θ R(θ) for R = R_η (eq. 2) or ¼ tr ∇²L, from a Hessian function.

    Chain rule with eq. (4): ∂R_η/∂θ_k = tr(½(2I − ηH)⁻¹ ∂H/∂θ_k) (trace: ¼ tr ∂H/∂θ_k),
    with ∂H/∂θ from ``hessian_derivative(theta)`` (shape (p, p, p)) when given, else
    by :func:`hessian_derivative_fd`.
    """
    if kind not in REGULARIZERS[1:]:
        check.fail("kind", kind, f"one of {REGULARIZERS[1:]}")
    theta = np.asarray(theta, np.float64)
    G = 0.25 * np.eye(len(theta)) if kind == "trace" else implicit_regularizer_gradient(hessian(theta), eta)
    dH = hessian_derivative(theta) if hessian_derivative else hessian_derivative_fd(hessian, theta)
    return np.einsum("kij,ij->k", dH, G)


def regularized_gradient_descent(gradient, hessian, theta0, *, eta, lam, n_steps: int,
                                 record_every: int = 1, kind: str = "R_eta",
                                 hessian_derivative=None) -> np.ndarray:
    """Reference trajectory: θ ← θ − η(∇L(θ) + λ∇R(θ)), R = R_η, ¼ tr ∇²L or none.

    The deterministic flow that, by the paper's main result, the seed-averaged
    label-noise trajectory tracks to within O(√λ) when R = R_η. A plain NumPy
    loop: this is a float64 reference for low-dimensional testbeds (the toy), not a
    simulation. ``hessian_derivative`` (θ -> ∂H/∂θ, shape (p, p, p)) avoids finite
    differences. Returns the iterates at steps 0, r, 2r, …, n_steps, shape (records, p).
    """
    eta = _eta(eta)
    lam = check.nonnegative("lam", lam)
    n_steps = check.integer_at_least("n_steps", n_steps, 1)
    record_every = check.integer_at_least("record_every", record_every, 1)
    if n_steps % record_every:
        check.fail("record_every", record_every, f"a divisor of n_steps = {n_steps}")
    if kind not in REGULARIZERS:
        check.fail("kind", kind, f"one of {REGULARIZERS}")
    theta = np.asarray(theta0, np.float64).copy()
    out = [theta.copy()]
    for t in range(1, n_steps + 1):
        g = gradient(theta)
        if kind != "none" and lam > 0:
            g = g + lam * regularizer_gradient(hessian, theta, eta, kind,
                                               hessian_derivative=hessian_derivative)
        theta = theta - eta * g
        if not np.all(np.isfinite(theta)):
            raise FloatingPointError(f"reference flow diverged at step {t} (eta = {eta}, lam = {lam})")
        if t % record_every == 0:
            out.append(theta.copy())
    return np.asarray(out)
