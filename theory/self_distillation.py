"""Self-distillation in a reproducing-kernel Hilbert space: the round recursion in closed form.

Paper: Mobahi, Farajtabar, Bartlett, "Self-Distillation Amplifies Regularization in Hilbert
Space", NeurIPS 2020, arXiv 2002.05715. Setting (the paper's, in this notation):

K training points x_k, kernel g, Gram matrix G[j,k] = g(x_j, x_k)/K and g_x[k] = g(x, x_k)/K.
One round fits the targets y under a tolerance ε on the training error,

    f = argmin ‖f‖²_H  s.t.  (1/K) Σ_k (f(x_k) − y_k)² ≤ ε,

whose solution is kernel ridge regression f(x) = g_xᵀ (cI + G)⁻¹ y with c > 0 chosen so
that the constraint is active (paper):

    h(c; y) = (1/K) ‖c (cI + G)⁻¹ y‖² = ε.                                          (1)

h increases in c from 0 to ‖y‖²/K (for G positive definite), so a root exists iff
‖y‖² > Kε; otherwise the minimum-norm feasible f is f ≡ 0: the *collapse*. Round t fits
y_t (y_0 = the labels) and hands its training predictions to the next round,

    y_{t+1} = G (c_t I + G)⁻¹ y_t.                                                  (2)

Closed form (paper): with G = Vᵀ D V (rows of V are eigenvectors) and z = V y₀,

    A_t = diag(d_k/(c_t + d_k)),  B_t = Π_{i<t} A_i,  y_t = Vᵀ B_t z,
    f_t(x) = g_xᵀ Vᵀ D⁻¹ B_{t+1} z = g_xᵀ Vᵀ (c_t + D)⁻¹ B_t z.                      (3)

A collapsed round has c_t = ∞, i.e. A_t = 0, so every later round is 0 too.

Bounds (the paper's results, restated with r_t = ‖y_t‖/√(Kε) and
κ = d_max/d_min; they need r_t > 1, i.e. a non-collapsed round, and d_min > 0):

    d_min/(r_t − 1) ≤ c_t ≤ d_max/(r_t − 1),                                         (4)
    r_t (r_t − 1)/(r_t − 1 + κ) ≤ r_{t+1} ≤ r_t κ (r_t − 1)/(1 + κ (r_t − 1)),       (5)
    (r₀ − 1)/κ ≤ T ≤ κ (r₀ − 1) + 1,   T = #{t : r_t > 1} (non-trivial rounds).    (6)

Proof sketch (re-derived here): c/(c + d_max) ≤ c/(c + d_k) ≤ c/(c + d_min) in (1) gives
(4); d_min/(c + d_min) ≤ ‖y_{t+1}‖/‖y_t‖ ≤ d_max/(c + d_max) with (4) gives (5); by (5) r
drops by at most κ and at least 1/κ per round, which gives (6). The upper bound in (6)
needs r₀ > 1: at r₀ ≤ 1, T = 0 while κ(r₀ − 1) + 1 can be < 0.

Sharper bounds (derived here, not in the paper). The active constraint says the residual
y_t − y_{t+1} = c_t (c_t I + G)⁻¹ y_t has norm exactly √(Kε), and it is non-negatively
correlated with y_{t+1}: ⟨y_{t+1}, y_t − y_{t+1}⟩ = Σ_k d_k c_t z_{t,k}²/(c_t + d_k)² ≥ 0.
Hence, for every non-collapsed round,

    r_t − 1 ≤ r_{t+1} ≤ √(r_t² − 1),                                                (7)
    ⌈r₀ − 1⌉ ≤ T ≤ ⌈r₀² − 1⌉   (r₀ > 1),                                            (8)

independently of κ; for the κ of real kernels (10³–10⁸) (8) is far tighter than (6), and
the left side of (7) is at least as tight as the left side of (5) for every κ ≥ 1.

Round-off (derived here): :func:`round_off_bound` bounds, to first order, the float64 error
of one computation of the rounds from the backward error of its eigensolver or solves,
propagated through the root c_t and the rounds; two computations (the closed form and the
iterated fits) can differ by twice it. With the jittered Gaussian kernel (κ ≈ 1e7) it is
far above 1e-12 on some rounds, so agreement to 1e-12 is not a float64 identity there.

Everything here is float64 NumPy/SciPy; inputs are validated with :mod:`theory.validation`.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import optimize

from theory import validation as check

KERNELS = ("laplace", "gaussian")
#: jitter added to the diagonal of the *raw* Gaussian kernel matrix g(X, X) before the 1/K
#: scaling: without it the Gaussian Gram matrix of ~40 points on [0, 1] has eigenvalues at
#: round-off level, some of them negative. The Laplace (Matérn-1/2) kernel needs none.
#: With it, d_min ≈ 1e-6/K and κ ≈ 1e7 at K = 40, so the closed form and iterated fits can
#: only agree to ~u·κ ≈ 1e-9 there (a conditioning limit of float64, not of the algebra).
GAUSSIAN_JITTER = 1e-6
_EPS64 = np.finfo(np.float64).eps
#: a round counts as collapsed when r ≤ 1 + ROUNDOFF_MARGIN: at r = 1 + δ the fit is
#: O(δ)·y, and for δ near float64 round-off the root of eq. (1) is not resolvable (h − ε is
#: below the rounding of h). So ε = ‖y‖²/K computed in float64 collapses, as in exact math.
ROUNDOFF_MARGIN = 1e-12


# ----------------------------------------------------------------------------- kernels
def kernel_matrix(kernel: str, a, b, length_scale: float) -> np.ndarray:
    """g(a_i, b_j) for 1-D inputs: Laplace exp(−|a − b|/ℓ) or Gaussian exp(−(a − b)²/(2ℓ²))."""
    if kernel not in KERNELS:
        check.fail("kernel", kernel, f"one of {KERNELS}")
    ell = check.positive("length_scale", length_scale)
    diff = np.subtract.outer(np.asarray(a, np.float64), np.asarray(b, np.float64))
    if kernel == "laplace":
        return np.exp(-np.abs(diff) / ell)
    return np.exp(-0.5 * (diff / ell) ** 2)


def default_jitter(kernel: str) -> float:
    """The jitter used for ``kernel``: GAUSSIAN_JITTER for the Gaussian kernel, 0 for Laplace."""
    return GAUSSIAN_JITTER if kernel == "gaussian" else 0.0


def gram_matrix(x, kernel: str, length_scale: float, jitter: float | None = None) -> np.ndarray:
    """G = (g(X, X) + jitter·I)/K (paper's 1/K scaling; the jitter is ours, see GAUSSIAN_JITTER)."""
    x = np.asarray(x, np.float64)
    jit = default_jitter(kernel) if jitter is None else check.nonnegative("jitter", jitter)
    raw = kernel_matrix(kernel, x, x, length_scale)
    return (raw + jit * np.eye(x.size)) / x.size


def feature_rows(x_new, x, kernel: str, length_scale: float) -> np.ndarray:
    """Rows g_xᵀ with g_x[k] = g(x, x_k)/K for each x in x_new: shape (M, K)."""
    x = np.asarray(x, np.float64)
    return kernel_matrix(kernel, x_new, x, length_scale) / x.size


# ----------------------------------------------------------------------------- checks
def check_tolerance(eps) -> float:
    """ε > 0 (ε = 0 is interpolation, outside the constrained problem's regime)."""
    return check.positive("eps", eps)


def gram_spectrum(G):
    """Validate G (symmetric PSD, then d_min > 0) and return (d ascending, V) with G = Vᵀ D V."""
    G = check.psd("G", G)
    d, W = np.linalg.eigh(G)
    floor = check.numerically_singular_threshold(d)
    if d[0] <= floor:  # round-off aware: a rank-deficient G fails on every CPU
        check.fail("G", G, f"a positive definite Gram matrix (smallest eigenvalue {d[0]:.3g} "
                           f"is not above the round-off level K·u·d_max = {floor:.3g}; add jitter "
                           "to the kernel diagonal)")
    return d, W.T


def check_targets(y, K: int) -> np.ndarray:
    y = np.asarray(y, np.float64)
    if y.shape != (K,) or not np.all(np.isfinite(y)):
        check.fail("y", y, f"a finite vector of shape ({K},)")
    return y


# ----------------------------------------------------------------------------- one round
def constraint_value(c: float, G, y) -> float:
    """h(c; y) = (1/K)‖c (cI + G)⁻¹ y‖² by a direct linear solve, eq. (1)."""
    G = np.asarray(G, np.float64)
    resid = c * np.linalg.solve(c * np.eye(G.shape[0]) + G, y)
    return float(resid @ resid) / G.shape[0]


def constraint_value_spectral(c: float, d, z) -> float:
    """h(c) = (1/K) Σ_k (c/(c + d_k))² z_k² in the eigenbasis (z = V y), eq. (1)."""
    d = np.asarray(d, np.float64)
    return float(np.sum((c / (c + d)) ** 2 * np.asarray(z) ** 2)) / d.size


def ratio_to_tolerance(norm_y: float, K: int, eps: float) -> float:
    """r = ‖y‖/√(Kε); the round is non-trivial iff r > 1."""
    return float(norm_y) / math.sqrt(K * eps)


def is_collapsed(r: float) -> bool:
    """‖y‖² ≤ Kε, i.e. r ≤ 1 (up to ROUNDOFF_MARGIN): the fit is f ≡ 0 (paper)."""
    return not r > 1.0 + ROUNDOFF_MARGIN


def ridge_constant_bounds(r: float, d_min: float, d_max: float):
    """Eq. (4) (paper): d_min/(r − 1) ≤ c ≤ d_max/(r − 1), valid for r > 1 only."""
    if not r > 1:
        check.fail("r", r, "r > 1 (a non-collapsed round)")
    return d_min / (r - 1.0), d_max / (r - 1.0)


def solve_ridge_constant(h, r: float, eps: float, d_min: float, d_max: float) -> float:
    """The root c of h(c) = ε by Brent's method on log c (h spans many decades).

    The bracket is eq. (4) widened by a factor 2 on each side; h is increasing, so any
    bracket holding the root works. Returns +inf when r ≤ 1 (collapse: f ≡ 0).
    """
    if is_collapsed(r):
        return math.inf
    lo, hi = ridge_constant_bounds(r, d_min, d_max)
    u_lo, u_hi = math.log(lo) - math.log(2.0), math.log(hi) + math.log(2.0)
    log_eps = math.log(eps)

    def phi(u):
        return math.log(h(math.exp(u))) - log_eps

    for _ in range(60):  # round-off safety: widen until the signs differ
        if phi(u_lo) < 0:
            break
        u_lo -= 1.0
    for _ in range(60):
        if phi(u_hi) > 0:
            break
        u_hi += 1.0
    u = optimize.brentq(phi, u_lo, u_hi, xtol=1e-15, rtol=4 * _EPS64, maxiter=500)
    return math.exp(u)


@dataclasses.dataclass(frozen=True)
class RidgeFit:
    """One constrained fit: c (inf when collapsed), training predictions, collapse flag."""

    c: float
    fitted: np.ndarray
    collapsed: bool


def ridge_fit(G, y, eps) -> RidgeFit:
    """Constrained kernel ridge fit by direct linear solves (independent of the eigenbasis).

    f(X) = G (cI + G)⁻¹ y with h(c; y) = ε; f ≡ 0 when ‖y‖² ≤ Kε (paper).
    """
    eps = check_tolerance(eps)
    d, _ = gram_spectrum(G)
    G = np.asarray(G, np.float64)
    y = check_targets(y, G.shape[0])
    r = ratio_to_tolerance(np.linalg.norm(y), y.size, eps)
    c = solve_ridge_constant(lambda cc: constraint_value(cc, G, y), r, eps, d[0], d[-1])
    if math.isinf(c):
        return RidgeFit(c, np.zeros_like(y), True)
    return RidgeFit(c, G @ np.linalg.solve(c * np.eye(y.size) + G, y), False)


# ----------------------------------------------------------------------------- rounds
@dataclasses.dataclass(frozen=True)
class Distillation:
    """Rounds t = 0..n−1 of self-distillation.

    Attributes:
      c: (n,) ridge constants c_t (inf for collapsed rounds).
      targets: (n + 1, K) y_t (y_0 = labels, y_{t+1} = training predictions of round t).
      predictions: (n, M) f_t at the query points (empty if none were given).
      ratio: (n + 1,) r_t = ‖y_t‖/√(Kε).
      n_nontrivial: T = number of rounds with r_t > 1 (f_t ≠ 0).
      eigenvalues, A, B: closed form only (d ascending, (n, K) and (n + 1, K)); else None.
      eigenvectors: closed form only: V with G = Vᵀ D V (rows are eigenvectors); else None.
    """

    c: np.ndarray
    targets: np.ndarray
    predictions: np.ndarray
    ratio: np.ndarray
    n_nontrivial: int
    eigenvalues: np.ndarray | None = None
    A: np.ndarray | None = None
    B: np.ndarray | None = None
    eigenvectors: np.ndarray | None = None


def _round_limit(r0: float) -> int:
    """Rounds to run so that the first collapsed round is included: ⌈r₀² − 1⌉ + 1 by eq. (8),
    plus one for round-off at the boundary."""
    return (max(int(math.ceil(r0 * r0 - 1.0)), 0) if r0 > 1 else 0) + 2


def _prepare(G, y0, eps, x_rows):
    eps = check_tolerance(eps)
    d, V = gram_spectrum(G)
    y0 = check_targets(y0, d.size)
    rows = np.zeros((0, d.size)) if x_rows is None else np.asarray(x_rows, np.float64)
    if rows.ndim != 2 or rows.shape[1] != d.size:
        check.fail("x_rows", rows, f"a matrix of shape (M, {d.size})")
    return eps, d, V, y0, rows


def iterate_distillation(G, y0, eps, n_rounds: int | None = None, x_rows=None) -> Distillation:
    """Iterate eq. (2) with a fresh constrained fit per round (direct solves, no eigenbasis).

    n_rounds None runs up to and including the first collapsed round. ``x_rows`` are the
    rows g_xᵀ of :func:`feature_rows` for off-training predictions f_t(x) = g_xᵀ(c_tI+G)⁻¹y_t.
    """
    eps, d, _, y0, rows = _prepare(G, y0, eps, x_rows)
    G = check.symmetric("G", G)
    K = y0.size
    limit = _round_limit(ratio_to_tolerance(np.linalg.norm(y0), K, eps))
    n = limit if n_rounds is None else check.integer_at_least("n_rounds", n_rounds, 1)
    cs, ys, preds = [], [y0], []
    for t in range(n):
        y = ys[-1]
        r = ratio_to_tolerance(np.linalg.norm(y), K, eps)
        c = solve_ridge_constant(lambda cc: constraint_value(cc, G, y), r, eps, d[0], d[-1])
        if math.isinf(c):
            alpha = np.zeros(K)
        else:
            alpha = np.linalg.solve(c * np.eye(K) + G, y)
        cs.append(c)
        ys.append(G @ alpha)
        preds.append(rows @ alpha)
        if n_rounds is None and math.isinf(c):
            break
    return _finish(np.array(cs), np.array(ys), np.array(preds).reshape(len(cs), -1), eps)


def closed_form_distillation(G, y0, eps, n_rounds: int | None = None, x_rows=None) -> Distillation:
    """Eq. (3): A_t, B_t in the eigenbasis of G, c_t from the spectral form of eq. (1)."""
    eps, d, V, y0, rows = _prepare(G, y0, eps, x_rows)
    K = y0.size
    z = V @ y0
    limit = _round_limit(ratio_to_tolerance(np.linalg.norm(y0), K, eps))
    n = limit if n_rounds is None else check.integer_at_least("n_rounds", n_rounds, 1)
    row_basis = rows @ V.T  # g_xᵀ Vᵀ
    cs, As, Bs, preds = [], [], [np.ones(K)], []
    for t in range(n):
        zt = Bs[-1] * z
        r = ratio_to_tolerance(np.linalg.norm(zt), K, eps)
        c = solve_ridge_constant(lambda cc: constraint_value_spectral(cc, d, zt), r, eps,
                                 d[0], d[-1])
        A = np.zeros(K) if math.isinf(c) else d / (c + d)
        preds.append(np.zeros(rows.shape[0]) if math.isinf(c) else row_basis @ (zt / (c + d)))
        cs.append(c)
        As.append(A)
        Bs.append(Bs[-1] * A)
        if n_rounds is None and math.isinf(c):
            break
    B = np.array(Bs)
    targets = (B * z) @ V  # rows y_t = Vᵀ B_t z
    out = _finish(np.array(cs), targets, np.array(preds).reshape(len(cs), -1), eps)
    return dataclasses.replace(out, eigenvalues=d, A=np.array(As), B=B, eigenvectors=V)


def _finish(c, targets, predictions, eps) -> Distillation:
    K = targets.shape[1]
    ratio = np.linalg.norm(targets, axis=1) / math.sqrt(K * eps)
    return Distillation(c=c, targets=targets, predictions=predictions, ratio=ratio,
                        n_nontrivial=int(np.sum(np.isfinite(c))))


# ----------------------------------------------------------------------------- bounds
def ratio_bounds_paper(r: float, kappa: float):
    """Eq. (5) (paper): bounds on r_{t+1} given r_t > 1 and κ = d_max/d_min."""
    if not r > 1:
        check.fail("r", r, "r > 1 (a non-collapsed round)")
    s = r - 1.0
    return r * s / (s + kappa), r * kappa * s / (1.0 + kappa * s)


def ratio_bounds_derived(r: float):
    """Eq. (7) (derived here): r_t − 1 ≤ r_{t+1} ≤ √(r_t² − 1), for r_t > 1."""
    if not r > 1:
        check.fail("r", r, "r > 1 (a non-collapsed round)")
    return r - 1.0, math.sqrt(r * r - 1.0)


def rounds_bounds_paper(r0: float, kappa: float):
    """Eq. (6) (paper): (r₀ − 1)/κ ≤ T ≤ κ(r₀ − 1) + 1, for r₀ > 1."""
    if not r0 > 1:
        check.fail("r0", r0, "r0 > 1 (at r0 <= 1 the first round collapses, T = 0)")
    return (r0 - 1.0) / kappa, kappa * (r0 - 1.0) + 1.0


def rounds_bounds_derived(r0: float):
    """Eq. (8) (derived here): ⌈r₀ − 1⌉ ≤ T ≤ ⌈r₀² − 1⌉, for r₀ > 1."""
    if not r0 > 1:
        check.fail("r0", r0, "r0 > 1 (at r0 <= 1 the first round collapses, T = 0)")
    return int(math.ceil(r0 - 1.0)), int(math.ceil(r0 * r0 - 1.0))


def condition_number(d) -> float:
    """κ = d_max/d_min of the Gram eigenvalues."""
    d = np.asarray(d, np.float64)
    return float(d[-1] / d[0])


def basis_count(B, tau: float) -> np.ndarray:
    """Number of k with B_t[k]/max_k B_t[k] > τ, per round (0 for a collapsed round, B_t = 0)."""
    B = np.atleast_2d(np.asarray(B, np.float64))
    top = B.max(axis=1, keepdims=True)
    rel = np.divide(B, top, out=np.zeros_like(B), where=top > 0)
    return np.sum(rel > tau, axis=1)


# ----------------------------------------------------------------------------- round-off
@dataclasses.dataclass(frozen=True)
class RoundOff:
    """First-order float64 error bounds of one computation of the rounds (see
    :func:`round_off_bound`): training targets, test-grid fits, relative error of c_t."""

    train: np.ndarray
    test: np.ndarray
    root: np.ndarray


def round_off_bound(dist: Distillation, eps, x_rows=None, gamma: float | None = None):
    """First-order bound on the float64 error of one computation of the rounds.

    Either computation (closed form or iterated fits) returns, to first order, the exact
    rounds of a perturbed problem: G + E with ‖E‖₂ ≤ γ‖c_tI + G‖₂ (the backward error of a
    symmetric eigensolver or an LU solve; γ = K·u by default, u = float64 epsilon), an
    error δy_t in the round's targets, and a root c_t off by δc_t. With M = c_tI + G,
    α = M⁻¹y_t and a_x = M⁻¹g_x (all from the spectrum of ``dist``, a closed form):

      δf_t(x)  ≤ ‖a_x‖(e_t + γ‖M‖‖α‖) + η_t·c_t·|a_xᵀα|
      e_{t+1}  = e_t + η_t·c_t·‖GM⁻¹α‖ + γ‖M‖‖α‖,      e_0 = γ‖y₀‖
      η_t      = (2γκ(M) + 2·c_t/(c_t + d_min)·e_t/√(Kε)) / s_t + 2e-15 + 8u|log c_t|

    where η_t bounds |δc_t|/c_t: the relative error of h (a solve with condition κ(M),
    squared; and the targets' error through h) divided by the slope s_t = d log h/d log c
    = 2Σ_k (d_k/(c_t + d_k)) w_k (w the residual's weights), plus the root finder's own
    tolerance on log c. Collapsed rounds are exactly 0 in both computations (bound 0).

    Returns :class:`RoundOff`: ``train`` (n + 1,), bounds on y_0 … y_n (the closed form's
    reconstruction Vᵀ(B_t z) adds γ‖y_t‖); ``test`` (n,), the max over the rows of
    ``x_rows`` of the bound on f_t(x) (0 without rows); ``root`` (n,), η_t (0 when
    collapsed). Two computations of the same rounds differ by at most twice these bounds
    (to first order).
    """
    if dist.eigenvectors is None:
        check.fail("dist", "an iterated distillation", "a closed_form_distillation result")
    eps = check_tolerance(eps)
    d, V, B = dist.eigenvalues, dist.eigenvectors, dist.B
    K = d.size
    g = K * _EPS64 if gamma is None else check.positive("gamma", gamma)
    rows = np.zeros((0, K)) if x_rows is None else np.asarray(x_rows, np.float64)
    z = V @ dist.targets[0]
    W = rows @ V.T
    e = g * float(np.linalg.norm(dist.targets[0]))
    train, test, root = [e], [], []
    for t, c in enumerate(dist.c):
        if not np.isfinite(c):
            train.append(0.0)
            test.append(0.0)
            root.append(0.0)
            continue
        zt = B[t] * z
        den = c + d
        alpha = float(np.linalg.norm(zt / den))
        w = (c / den) ** 2 * zt ** 2
        slope = 2.0 * float(np.sum(d / den * w) / np.sum(w))
        norm_m, kappa_m = c + d[-1], (c + d[-1]) / (c + d[0])
        eta = ((2 * g * kappa_m + 2 * c / (c + d[0]) * e / math.sqrt(K * eps)) / slope
               + 2e-15 + 8 * _EPS64 * abs(math.log(c)))
        root.append(eta)
        a_norm = np.linalg.norm(W / den, axis=1)
        a_alpha = np.abs((W * zt / den ** 2).sum(axis=1))
        test.append(float(np.max(a_norm * (e + g * norm_m * alpha) + eta * c * a_alpha, initial=0.0)))
        e = e + eta * c * float(np.linalg.norm(d * zt / den ** 2)) + g * norm_m * alpha
        train.append(e + g * float(np.linalg.norm(dist.targets[t + 1])))
    return RoundOff(np.array(train), np.array(test), np.array(root))
