"""Hessian tools in JAX: Hessian-vector products, Lanczos, power iteration, Hutchinson.

All functions take a scalar ``loss_fn(params)`` and a parameter pytree ``params``; they
work in the dtype of ``params`` (float32 or, under ``jax.enable_x64``, float64), never
form the Hessian (except :func:`dense_hessian`, a reference for tests), and are
jit/vmap-compatible in ``params`` and ``key``. The integer arguments (``k``, ``n_iter``,
``n_samples``) are static: they fix array shapes and are validated on the Python side,
raising :class:`theory.validation.InvalidParameter` (message names parameter, value,
allowed range).

* :func:`hvp` — H v as the forward-mode derivative of the gradient (forward-over-reverse).
* :func:`top_eigenvalues` — Lanczos with full (twice-applied) reorthogonalization, a
  fixed number of iterations in ``lax.fori_loop``; eigenvalues of the tridiagonal matrix
  T = Vᵀ H V by ``eigh``. With ``n_iter = d`` the Krylov space is the whole space and
  the Ritz values are the eigenvalues of H up to round-off.
* :func:`power_iteration` — the eigenvalue of largest magnitude (= λ_max for a PSD H).
* :func:`hutchinson_trace` — tr H ≈ mean of zᵀHz over Rademacher probes z. Each probe has
  mean tr H and variance 2(‖H‖_F² − Σ_i H_ii²) (exact for Rademacher entries), so the
  estimate's variance is that over ``n_samples``.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from theory import validation as check

__all__ = ["hvp", "flat_hvp", "dense_hessian", "top_eigenvalues", "power_iteration",
           "hutchinson_samples", "hutchinson_trace"]


# ------------------------------------------------------------------------------ HVP
def hvp(loss_fn: Callable, params, v):
    """H(params) v for a pytree ``v`` shaped like ``params``: jvp of grad."""
    return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def flat_hvp(loss_fn: Callable, params):
    """(matvec, x0, d): matvec(x) = H x on the flattened parameter vector x0 (length d)."""
    x0, unravel = ravel_pytree(params)
    flat_loss = lambda x: loss_fn(unravel(x))
    grad = jax.grad(flat_loss)

    def matvec(v):
        return jax.jvp(grad, (x0,), (v.astype(x0.dtype),))[1]

    return matvec, x0, x0.shape[0]


def dense_hessian(loss_fn: Callable, params):
    """The (d, d) Hessian of the flattened loss (reference for small problems)."""
    x0, unravel = ravel_pytree(params)
    return jax.hessian(lambda x: loss_fn(unravel(x)))(x0)


def _project_out(V, w):
    """w minus its components along the rows of V, applied twice ("twice is enough")."""
    w = w - V.T @ (V @ w)
    return w - V.T @ (V @ w)


# --------------------------------------------------------------------------- Lanczos
def top_eigenvalues(loss_fn: Callable, params, k: int, *, key, n_iter: int | None = None,
                    return_vectors: bool = False):
    """The k largest Hessian eigenvalues (descending) by Lanczos.

    Args:
      loss_fn, params: scalar loss and parameter pytree (d parameters in all).
      k: number of eigenvalues, 1 <= k <= d.
      key: typed PRNG key (``jax.random.key``) for the start vector and the (rare)
        restart after a breakdown.
      n_iter: Lanczos steps m, k <= m <= d (default min(d, max(2k, 30))). Full
        reorthogonalization keeps the basis orthonormal, so m = d is exact up to round-off.
      return_vectors: also return the Ritz vectors as a (k, d) array over the flattened
        parameters (``jax.flatten_util.ravel_pytree`` order).
    Returns:
      eigenvalues (k,) descending, or (eigenvalues, vectors).
    """
    matvec, x0, d = flat_hvp(loss_fn, params)
    k = check.integer_at_least("k", k, 1)
    if k > d:
        check.fail("k", k, f"1 <= k <= d = {d} (the number of parameters)")
    m = min(d, max(2 * k, 30)) if n_iter is None else check.integer_at_least("n_iter", n_iter, 1)
    if not k <= m <= d:
        check.fail("n_iter", m, f"k = {k} <= n_iter <= d = {d}")
    dtype = x0.dtype
    eps = jnp.finfo(dtype).eps
    k_start, k_restart = jax.random.split(key)
    v0 = jax.random.normal(k_start, (d,), dtype)
    V = jnp.zeros((m + 1, d), dtype).at[0].set(v0 / jnp.linalg.norm(v0))

    def body(i, state):
        V, alpha, beta = state
        v = V[i]
        hv = matvec(v)
        a = jnp.dot(hv, v)
        w = _project_out(V, hv)  # removes a·v_i, β_{i−1}·v_{i−1} and round-off drift
        b = jnp.linalg.norm(w)
        ok = b > d * eps * jnp.maximum(jnp.linalg.norm(hv), jnp.finfo(dtype).tiny)
        # breakdown (invariant subspace found): continue with a fresh orthogonal direction
        r = _project_out(V, jax.random.normal(jax.random.fold_in(k_restart, i), (d,), dtype))
        r = r / jnp.maximum(jnp.linalg.norm(r), jnp.finfo(dtype).tiny)
        v_next = jnp.where(ok, w / jnp.where(ok, b, 1.0), r)
        return (V.at[i + 1].set(v_next), alpha.at[i].set(a),
                beta.at[i].set(jnp.where(ok, b, 0.0)))

    V, alpha, beta = lax.fori_loop(0, m, body, (V, jnp.zeros(m, dtype), jnp.zeros(m, dtype)))
    T = jnp.diag(alpha) + jnp.diag(beta[:-1], 1) + jnp.diag(beta[:-1], -1)
    theta, S = jnp.linalg.eigh(T)
    top = theta[::-1][:k]
    if not return_vectors:
        return top
    vecs = (V[:m].T @ S[:, ::-1][:, :k]).T
    return top, vecs


def power_iteration(loss_fn: Callable, params, *, key, n_iter: int = 100):
    """Largest-magnitude Hessian eigenvalue (λ_max when H is PSD) by power iteration.

    Converges like (|λ₂|/|λ₁|)^{2·n_iter} in the Rayleigh quotient. Returns
    (eigenvalue, unit vector over the flattened parameters).
    """
    matvec, x0, d = flat_hvp(loss_fn, params)
    n_iter = check.integer_at_least("n_iter", n_iter, 1)
    tiny = jnp.finfo(x0.dtype).tiny
    v = jax.random.normal(key, (d,), x0.dtype)
    v = v / jnp.linalg.norm(v)

    def body(_, v):
        w = matvec(v)
        return w / jnp.maximum(jnp.linalg.norm(w), tiny)

    v = lax.fori_loop(0, n_iter, body, v)
    return jnp.dot(v, matvec(v)), v


# ------------------------------------------------------------------------ Hutchinson
def hutchinson_samples(loss_fn: Callable, params, *, key, n_samples: int):
    """zᵀ H z for ``n_samples`` independent Rademacher probes z: shape (n_samples,)."""
    matvec, x0, d = flat_hvp(loss_fn, params)
    n = check.integer_at_least("n_samples", n_samples, 1)
    Z = jax.random.rademacher(key, (n, d), dtype=x0.dtype)
    return jax.vmap(lambda z: jnp.dot(z, matvec(z)))(Z)


def hutchinson_trace(loss_fn: Callable, params, *, key, n_samples: int):
    """(estimate, standard error) of tr H from Rademacher probes.

    The standard error is sample-std/√n_samples (unbiased variance); it is NaN for
    n_samples = 1.
    """
    s = hutchinson_samples(loss_fn, params, key=key, n_samples=n_samples)
    n = s.shape[0]
    mean = jnp.mean(s)
    se = jnp.sqrt(jnp.sum((s - mean) ** 2) / (n - 1) / n) if n > 1 else jnp.full((), jnp.nan, s.dtype)
    return mean, se
