"""Deterministic reference flows: gradient descent on L + λR, compiled (lax.scan).

Damian, Ma, Lee (NeurIPS 2021, arXiv 2106.06530): label-noise SGD tracks gradient
descent on L + λR_η, with (derived from the paper's setting; see :mod:`theory.label_noise`)

    R_η(θ) = −(1/(2η)) log det(I − (η/2)∇²L(θ))      (= −(1/(2η)) Σ_j log(1 − ηλ_j/2)),
    R_tr(θ) = ¼ tr ∇²L(θ)                              (the small-η / linear-scaling limit),

    θ_{t+1} = θ_t − η(∇L(θ_t) + λ∇R(θ_t)),   λ = ησ²/B.

∇R is taken by automatic differentiation through the dense Hessian (jax.hessian), so
any small model works; :func:`theory.label_noise.regularized_gradient_descent` is the
NumPy float64 reference it is tested against. Outside the stable region
(λ_max ≥ 2/η) R_η is +∞: the log-determinant becomes NaN and the flow reports the first
non-finite step instead of a number.
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from theory import validation as check

KINDS = ("none", "trace", "R_eta")


def regularizer(loss_fn: Callable, kind: str, eta) -> Callable:
    """θ ↦ R(θ) for R = R_η (``"R_eta"``), ¼ tr ∇²L (``"trace"``) or 0 (``"none"``);
    θ is a flat parameter vector."""
    if kind not in KINDS:
        check.fail("kind", kind, f"one of {KINDS}")

    def R(theta):
        if kind == "none":
            return jnp.zeros((), theta.dtype)
        H = jax.hessian(loss_fn)(theta)
        if kind == "trace":
            return 0.25 * jnp.trace(H)
        sign, logdet = jnp.linalg.slogdet(jnp.eye(H.shape[0], dtype=H.dtype) - 0.5 * eta * H)
        return jnp.where(sign > 0, -logdet / (2.0 * eta), jnp.nan)

    return R


@functools.partial(jax.jit, static_argnames=("loss_fn", "kind", "n_steps", "record_every"))
def _flow(theta0, eta, lam, *, loss_fn, kind, n_steps, record_every):
    def objective(theta, eta):
        return loss_fn(theta) + lam * regularizer(loss_fn, kind, eta)(theta)

    grad = jax.grad(objective)

    def step(theta, _):
        return theta - eta * grad(theta, eta), None

    def window(theta, _):
        theta, _ = jax.lax.scan(step, theta, None, length=record_every)
        return theta, theta

    _, recorded = jax.lax.scan(window, theta0, None, length=n_steps // record_every)
    return jnp.concatenate([theta0[None], recorded])


def regularized_flow(loss_fn: Callable, theta0, *, eta, lam, n_steps: int,
                     record_every: int = 1, kind: str = "R_eta") -> np.ndarray:
    """Iterates of θ ← θ − η∇(L + λR)(θ) at steps 0, r, …, n_steps, in float64.

    Args:
      loss_fn: L as a function of a flat parameter vector (define it at module level: it
        is a static argument, so a new function object compiles again).
      theta0: (p,) start. eta: step size η > 0 (traced). lam: strength λ ≥ 0 (traced).
      kind: ``"R_eta"``, ``"trace"`` or ``"none"`` (plain GD on L).
    Returns:
      (records, p) iterates; rows after the flow left the region where R_η is finite
      are NaN. Raises InvalidParameter if R_η is already +∞ at θ₀ (η >= 2/λ_max).
    """
    eta = check.positive("eta", eta)
    lam = check.nonnegative("lam", lam)
    n_steps = check.integer_at_least("n_steps", n_steps, 1)
    record_every = check.integer_at_least("record_every", record_every, 1)
    if n_steps % record_every:
        check.fail("record_every", record_every, f"a divisor of n_steps = {n_steps}")
    if kind not in KINDS:
        check.fail("kind", kind, f"one of {KINDS}")
    theta0 = np.asarray(theta0, np.float64)
    if theta0.ndim != 1 or not np.all(np.isfinite(theta0)):
        check.fail("theta0", theta0, "a finite 1-D parameter vector")
    if kind == "R_eta":
        with jax.enable_x64(True):
            H = np.asarray(jax.hessian(loss_fn)(jnp.asarray(theta0)))
        lmax = float(np.linalg.eigvalsh(0.5 * (H + H.T))[-1])
        if lmax > 0 and eta >= 2.0 / lmax:
            check.fail("eta", eta, f"eta < 2/lambda_max = {2.0 / lmax:.6g} at theta0 (lambda_max = "
                                   f"{lmax:.6g}): R_eta is +inf for eta >= 2/lambda_max")
    with jax.enable_x64(True):
        out = _flow(jnp.asarray(theta0), jnp.float64(eta), jnp.float64(lam), loss_fn=loss_fn,
                    kind=kind, n_steps=n_steps, record_every=record_every)
        return np.asarray(out)
