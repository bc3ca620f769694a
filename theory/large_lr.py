"""The P/Q data of Li, Wei & Ma (NeurIPS 2019, arXiv 1907.04595) and its analytic facts.

An example is x = (x₁, x₂) ∈ R^{2d} with a uniform label y ∈ {±1} and
one of three types (paper's structure, constants are parameters):

* P-only (x₂ = 0) with probability p₀, Q-only (x₁ = 0) with probability q₀, both
  components with probability 1 − p₀ − q₀.
* P ("easy to fit, hard to generalize"): x₁ = γ₀ y w* + ξ, ξ ~ N(0, σ_P²/(d−1) P⊥)
  with P⊥ = I − w*w*ᵀ, so ‖ξ‖² = σ_P²/(d−1)·χ²_{d−1} and E‖ξ‖² = σ_P²
  (:func:`noise_moments`). The noise is orthogonal to w*, hence
  y⟨w*, x₁⟩ = γ₀ exactly: P is linearly separable along w* with margin γ₀ (derived).
  With n ≲ d the noise alone also separates any labels (easy to fit), while a
  generalizing classifier must find the weak direction w* (hard to generalize).
* Q ("hard to fit, easy to generalize"): on the plane of two fixed orthogonal vectors
  z, ζ ∈ R^d with ‖z‖ = 1, ‖ζ‖ = r: y = +1: x₂ = α z; y = −1: x₂ = α (z ± ζ) with a
  random sign; α ~ U[0, 1]; optional isotropic noise N(0, σ_Q²/d I) (‖z‖ = ``z_norm``
  generalizes the default 1, to change Q's scale relative to P's). Q is NOT linearly
  separable (derived; the midpoint argument): for every affine g,
  g(αz) = ½[g(α(z + ζ)) + g(α(z − ζ))], so g cannot be positive at the midpoint and
  negative at both ends. The same identity makes the Q-margin
  κ(f) = f(z) − ½[f(z + ζ) + f(z − ζ)] vanish for every affine f: κ > 0 measures the
  nonlinearity a network has learned for Q.

Defaults: d = 128, γ₀ = d^{-1/2}, σ_P = 1, r = d^{-1/4}, σ_Q = 0, ‖z‖ = 1, p₀ = q₀ = 0.2.
Everything here is NumPy float64 and deterministic given a NumPy Generator.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import optimize

from theory import validation as check

TYPES = ("P", "Q", "PQ")  # type index 0: P-only, 1: Q-only, 2: both


@dataclasses.dataclass(frozen=True)
class PQSpec:
    """The constants of the P/Q distribution (validated on construction).

    Attributes:
      d: dimension of each component (x ∈ R^{2d}); d ≥ 2.
      p0, q0: probabilities of P-only and Q-only examples (p0, q0 ≥ 0, p0 + q0 ≤ 1).
      margin: γ₀ > 0 (None: d^{-1/2}).
      p_noise: σ_P ≥ 0, the expected norm of P's noise.
      r: ‖ζ‖ > 0 (None: d^{-1/4}).
      q_noise: σ_Q ≥ 0, the expected norm of Q's isotropic noise.
      z_norm: ‖z‖ > 0.
    """

    d: int = 128
    p0: float = 0.2
    q0: float = 0.2
    margin: float | None = None
    p_noise: float = 1.0
    r: float | None = None
    q_noise: float = 0.0
    z_norm: float = 1.0

    def __post_init__(self):
        check.integer_at_least("d", self.d, 2)
        check.in_range("p0", self.p0, 0.0, 1.0, closed_high=True)
        check.in_range("q0", self.q0, 0.0, 1.0, closed_high=True)
        if self.p0 + self.q0 > 1.0:
            check.fail("p0 + q0", self.p0 + self.q0, "p0 + q0 <= 1 (type probabilities)")
        if self.margin is not None:
            check.positive("margin", self.margin)
        if self.r is not None:
            check.positive("r", self.r)
        check.nonnegative("p_noise", self.p_noise)
        check.nonnegative("q_noise", self.q_noise)
        check.positive("z_norm", self.z_norm)

    @property
    def gamma0(self) -> float:
        return float(self.d ** -0.5 if self.margin is None else self.margin)

    @property
    def radius(self) -> float:
        return float(self.d ** -0.25 if self.r is None else self.r)


def type_proportions(p0: float, q0: float) -> np.ndarray:
    """(P-only, Q-only, both) probabilities (p₀, q₀, 1 − p₀ − q₀) (paper's definition)."""
    spec = PQSpec(d=2, p0=p0, q0=q0)
    return np.array([spec.p0, spec.q0, 1.0 - spec.p0 - spec.q0])


@dataclasses.dataclass(frozen=True)
class PQGeometry:
    """The fixed directions of one P/Q distribution: w* (P), z and ζ (Q), all in R^d."""

    w_star: np.ndarray
    z: np.ndarray
    zeta: np.ndarray


def make_geometry(spec: PQSpec, rng: np.random.Generator) -> PQGeometry:
    """Random orthogonal unit w*, z/‖z‖ and ζ = r·(unit vector ⟂ z) (ζ need not be ⟂ w*:
    the components live in different halves of x)."""
    q, _ = np.linalg.qr(rng.standard_normal((spec.d, 3)))
    return PQGeometry(w_star=q[:, 0], z=spec.z_norm * q[:, 1], zeta=spec.radius * q[:, 2])


@dataclasses.dataclass(frozen=True)
class PQSample:
    """n examples: x (n, 2d), y (n,) in {±1}, kind (n,) type index, alpha (n,) Q scale."""

    x: np.ndarray
    y: np.ndarray
    kind: np.ndarray
    alpha: np.ndarray


def sample_pq(spec: PQSpec, geometry: PQGeometry, n: int, rng: np.random.Generator, *,
              stratified: bool = False) -> PQSample:
    """Draw n examples (types i.i.d. with :func:`type_proportions`, or with ``stratified``
    n/3 of each type: the per-type test sets)."""
    n = check.integer_at_least("n", n, 1)
    d = spec.d
    if stratified:
        kind = np.repeat(np.arange(3), -(-n // 3))[:n]
    else:
        kind = rng.choice(3, size=n, p=type_proportions(spec.p0, spec.q0))
    y = rng.choice([-1.0, 1.0], size=n)
    w = geometry.w_star
    xi = rng.standard_normal((n, d)) * (spec.p_noise / np.sqrt(d - 1))
    xi -= np.outer(xi @ w, w)  # noise orthogonal to w*: exact margin γ₀
    x1 = spec.gamma0 * y[:, None] * w[None, :] + xi
    alpha = rng.uniform(0.0, 1.0, size=n)
    sign = rng.choice([-1.0, 1.0], size=n)
    offset = np.where(y[:, None] < 0, sign[:, None] * geometry.zeta[None, :], 0.0)
    x2 = alpha[:, None] * (geometry.z[None, :] + offset)
    x2 += rng.standard_normal((n, d)) * (spec.q_noise / np.sqrt(d))
    x1 = np.where((kind == 1)[:, None], 0.0, x1)
    x2 = np.where((kind == 0)[:, None], 0.0, x2)
    return PQSample(x=np.concatenate([x1, x2], axis=1), y=y, kind=kind, alpha=alpha)


def noise_moments(spec: PQSpec) -> dict[str, tuple[float, float]]:
    """(E, Var) of the squared norm of each component's noise (derived).

    P: ξ = P⊥g with g ~ N(0, σ_P²/(d−1) I_d) and P⊥ a rank-(d−1) orthogonal projection, so
    ‖ξ‖² = σ_P²/(d−1)·χ²_{d−1}: E = σ_P², Var = 2σ_P⁴/(d−1). Q: isotropic N(0, σ_Q²/d I_d),
    ‖·‖² = σ_Q²/d·χ²_d: E = σ_Q², Var = 2σ_Q⁴/d.
    """
    d = spec.d
    return {"P": (spec.p_noise ** 2, 2.0 * spec.p_noise ** 4 / (d - 1)),
            "Q": (spec.q_noise ** 2, 2.0 * spec.q_noise ** 4 / d)}


def p_margin(sample: PQSample, geometry: PQGeometry) -> np.ndarray:
    """min over P-containing examples of y⟨w*, x₁⟩ (= γ₀ exactly, derived)."""
    d = geometry.w_star.shape[0]
    has_p = sample.kind != 1
    return np.min(sample.y[has_p] * (sample.x[has_p, :d] @ geometry.w_star))


def q_margin(f, geometry: PQGeometry) -> float:
    """κ(f) = f(z) − ½[f(z + ζ) + f(z − ζ)] for a function f of the Q component (derived;
    0 for every affine f by the midpoint identity)."""
    z, zeta = geometry.z, geometry.zeta
    return float(f(z) - 0.5 * (f(z + zeta) + f(z - zeta)))


def linearly_separable(x: np.ndarray, y: np.ndarray, *, affine: bool = True) -> bool:
    """Whether some (w, b) has y_i(⟨w, x_i⟩ + b) ≥ 1 for all i: an LP feasibility
    problem (brute force, used to check the separability facts)."""
    x = np.asarray(x, dtype=np.float64)
    a = np.concatenate([x, np.ones((len(x), 1))], axis=1) if affine else x
    res = optimize.linprog(np.zeros(a.shape[1]), A_ub=-(y[:, None] * a), b_ub=-np.ones(len(x)),
                           bounds=[(None, None)] * a.shape[1], method="highs")
    return res.status == 0


def p_only_accuracy_of_mean_classifier(m: float, spec: PQSpec) -> float:
    """Test accuracy on P of the mean classifier w = (1/m) Σ y_i x₁ᵢ fitted on m P examples
    (derived, Gaussian approximation of the noise inner products, used only to motivate the
    sample-size mechanism): y⟨w, x⟩ = γ₀² + ⟨ē, ξ⟩ with ‖ē‖² ≈ σ_P²/m, so the accuracy is
    Φ(γ₀² √(m(d−1)) / σ_P²): it grows with the number m of examples that teach P."""
    from scipy import stats as sps

    m = check.positive("m", m)
    if spec.p_noise == 0:
        return 1.0
    return float(sps.norm.cdf(spec.gamma0 ** 2 * np.sqrt(m * (spec.d - 1)) / spec.p_noise ** 2))
