"""Exact facts of a replicated-layer regularizer for large-batch SGD (DReg).

Yuan, Hua, Zhou & Yu, "Contrastive Weight Regularization for Large Minibatch SGD",
arXiv 2011.08968 (2020), call it distinctive regularization (DReg): replicate a layer of
the network and encourage the parameters of the two copies to be diverse. The paper's
details (which layer, how the copies combine, the regularizer and its weight, the
inference rule) were not available, so the project studies a parametrized family:

    forward        W_eff = (W + W′)/κ,   κ = 1 (sum) or κ = 2 (average)
    loss           L_task(W_eff) + λ·R(W, W′)
    R              "cosine":   cos(vec W, vec W′)                       (default)
                   "unitwise": (1/k) Σ_j cos(W[:, j], W′[:, j])   (k output units, x @ W)
                   "margin":   −min(‖W − W′‖²_F, m)
    inference      the merged weight W_eff = (W + W′)/κ
    initialization W = (κ/2)(W₀ + ρD), W′ = (κ/2)(W₀ − ρD), W₀ the plain network's draw
                   and D an independent draw of the same law: W_eff(0) = W₀ for every
                   (κ, ρ); ρ = 0 is an exact copy, ρ = 1 two copies whose half-sum and
                   half-difference are independent with the layer's initial law.

Derived facts (proved here; the simulations check them to float precision):

1. ∂L_task/∂W = ∂L_task/∂W′ = G/κ with G = ∇_{W_eff} L_task (chain rule through W + W′).
2. SGD with heavy-ball momentum β (buffers m, m′ from 0) on (W, W′):
       m ← βm + G/κ + λ∇_W R,  W ← W − ηm  (and the same for W′ with ∇_{W′}R)
   gives, with u = κ(m + m′)/2 and s = ∇_W R + ∇_{W′} R,
       u ← βu + G + (κλ/2)·s,   W_eff ← W_eff − (2η/κ²)·u.
   At λ = 0 this is SGD with momentum on the plain network with the layer's learning
   rate multiplied by :func:`effective_lr_factor` ``2/κ²`` (the sum form, κ = 1,
   doubles it): any gain of DReg must be measured against that learning-rate control.
   A copy-layer factor ``κ²/2`` (:func:`baseline_copy_factor`) recovers the plain network.
3. Δ = W − W′ moves by the regularizer only: v ← βv + λ(∇_W R − ∇_{W′} R), Δ ← Δ − ηv;
   at λ = 0, Δ(t) = Δ(0) for every t.
4. If R depends on W − W′ only (the margin form) then s = 0: DReg's W_eff trajectory is
   the learning-rate control's for every λ. DReg can differ from the control only through
   the component s of ∇R along W + W′ (nonzero for the cosine forms).
5. At an exact copy W = W′ the gradient of each R is zero (the cosine forms sit at their
   maximum 1, the margin form at ‖W − W′‖ = 0 where its gradient −2(W − W′) vanishes),
   and every step treats the two copies alike: the copies stay equal and DReg is inert
   unless the copy is perturbed (ρ > 0) or initialized independently (ρ = 1).

All functions are NumPy float64 and deterministic.
"""
from __future__ import annotations

import numpy as np

from theory import validation as check

REGULARIZERS = ("cosine", "unitwise", "margin")


# ------------------------------------------------------------------ validation
def check_kappa(kappa) -> float:
    """κ > 0 (the family uses κ = 1, the sum, and κ = 2, the average)."""
    return check.positive("kappa", kappa)


def check_regularizer(kind: str) -> str:
    if kind not in REGULARIZERS:
        check.fail("regularizer", kind, f"one of {REGULARIZERS}")
    return kind


def _pair(W, Wc):
    W, Wc = np.asarray(W, np.float64), np.asarray(Wc, np.float64)
    check.same_shape("W", W, "W_copy", Wc)
    if W.ndim != 2:
        check.fail("W", W, f"a 2-d layer weight (inputs × outputs), got {W.ndim} dimensions")
    return W, Wc


# ------------------------------------------------------------- the reparametrization
def effective_lr_factor(kappa) -> float:
    """2/κ²: the factor by which DReg at λ = 0 multiplies the replicated layer's learning
    rate (fact 2): W_eff moves by −(2η/κ²)·G."""
    return 2.0 / check_kappa(kappa) ** 2


def baseline_copy_factor(kappa) -> float:
    """κ²/2: the learning-rate factor on both copies that makes λ = 0 DReg move W_eff by
    −η·G, i.e. equal the plain network (the inverse of :func:`effective_lr_factor`)."""
    return check_kappa(kappa) ** 2 / 2.0


def merge(W, Wc, kappa):
    """W_eff = (W + W′)/κ, the weight of the forward pass and of inference."""
    W, Wc = _pair(W, Wc)
    return (W + Wc) / check_kappa(kappa)


def split_init(W0, D, kappa, offset):
    """(W, W′) = ((κ/2)(W₀ + ρD), (κ/2)(W₀ − ρD)): W_eff(0) = W₀, W − W′ = κρD."""
    W0, D = _pair(W0, D)
    kappa = check_kappa(kappa)
    rho = check.nonnegative("offset", offset)
    return 0.5 * kappa * (W0 + rho * D), 0.5 * kappa * (W0 - rho * D)


# --------------------------------------------------------------------- regularizers
def regularizer(kind: str, W, Wc, margin: float = np.inf) -> float:
    """R(W, W′) of the family (see the module docstring)."""
    check_regularizer(kind)
    W, Wc = _pair(W, Wc)
    if kind == "cosine":
        return float(np.sum(W * Wc) / (np.linalg.norm(W) * np.linalg.norm(Wc)))
    if kind == "unitwise":
        a, b = np.linalg.norm(W, axis=0), np.linalg.norm(Wc, axis=0)
        return float(np.mean(np.sum(W * Wc, axis=0) / (a * b)))
    check.positive("margin", margin)
    return float(-min(np.sum((W - Wc) ** 2), margin))


def regularizer_grad(kind: str, W, Wc, margin: float = np.inf):
    """(∇_W R, ∇_{W′} R) in closed form.

    cosine, a = ‖W‖, b = ‖W′‖, c = ⟨W, W′⟩/(ab):  ∇_W = W′/(ab) − c·W/a², ∇_{W′} = W/(ab) − c·W′/b²
    (each orthogonal to its own argument); unitwise: the same per column j, divided by
    the number of columns; margin: ∇_W = −2(W − W′)·1[‖W − W′‖² < m] = −∇_{W′}.
    """
    check_regularizer(kind)
    W, Wc = _pair(W, Wc)
    if kind in ("cosine", "unitwise"):
        axis = None if kind == "cosine" else 0
        a = np.sqrt(np.sum(W ** 2, axis=axis, keepdims=True))
        b = np.sqrt(np.sum(Wc ** 2, axis=axis, keepdims=True))
        c = np.sum(W * Wc, axis=axis, keepdims=True) / (a * b)
        scale = 1.0 if kind == "cosine" else 1.0 / W.shape[1]
        return scale * (Wc / (a * b) - c * W / a ** 2), scale * (W / (a * b) - c * Wc / b ** 2)
    check.positive("margin", margin)
    diff = W - Wc
    active = float(np.sum(diff ** 2) < margin)
    return -2.0 * active * diff, 2.0 * active * diff


def sum_component(kind: str, W, Wc, margin: float = np.inf):
    """s = ∇_W R + ∇_{W′} R: the only way the regularizer moves W_eff (fact 2); zero for
    the margin form (fact 4)."""
    gW, gWc = regularizer_grad(kind, W, Wc, margin)
    return gW + gWc


# ------------------------------------------------- one SGD step, both parametrizations
def dreg_step(state, G, *, eta, beta, kappa, lam, kind="cosine", margin=np.inf):
    """One step of SGD with momentum on (W, W′) given G = ∇_{W_eff} L_task at the current
    W_eff (fact 1 gives each copy G/κ). ``state`` = (W, W′, m, m′); returns the new state.
    """
    W, Wc, m, mc = (np.asarray(x, np.float64) for x in state)
    kappa = check_kappa(kappa)
    gW, gWc = regularizer_grad(kind, W, Wc, margin) if lam else (0.0, 0.0)
    m = beta * m + G / kappa + lam * gW
    mc = beta * mc + G / kappa + lam * gWc
    return W - eta * m, Wc - eta * mc, m, mc


def control_step(state, G, *, eta, beta, factor):
    """One step of SGD with momentum on the plain layer with learning rate factor·η:
    u ← βu + G, W ← W − factor·η·u. ``state`` = (W, u)."""
    W, u = (np.asarray(x, np.float64) for x in state)
    u = beta * u + G
    return W - factor * eta * u, u


# ------------------------------------------------------------------- the float rule
def roundoff_tolerance(n_steps, scale, *, dtype=np.float64, ulps: float = 16.0):
    """ulps·(t + 1)·u·scale for t = 0 … n_steps: the allowance for two programs that run
    the same arithmetic in a different association (u the unit round-off of ``dtype``).

    Each step rounds the merged weight and the two copies' updates a few times (a few
    ulps of the largest magnitude involved, ``scale``); over t steps the differences add
    up. The rule assumes the training map does not amplify differences much over the run
    (its linearization I − ηH, or the momentum recursion, close to non-expanding): then a
    difference beyond it is not round-off. On a chaotic trajectory (large η/(1 − β), long
    runs) round-off differences grow exponentially and the rule does not apply; the
    checks choose η and T inside its range and report the ratios they reach.
    """
    steps = np.arange(check.integer_at_least("n_steps", n_steps, 0) + 1, dtype=np.float64)
    u = float(np.finfo(dtype).eps) / 2
    return check.positive("ulps", ulps) * (steps + 1) * u * check.positive("scale", scale)
