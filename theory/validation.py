"""Input checks shared by the whole toolkit.

Every check raises :class:`InvalidParameter` (a ``ValueError``) whose message names the
parameter, the value given and what is allowed, e.g.::

    alpha = 2.5 is not allowed: need 0 < alpha < 2/lambda_max(A) = 2

The checks run on concrete (NumPy) values before anything is compiled.
"""
from __future__ import annotations

import numpy as np


class InvalidParameter(ValueError):
    """A parameter value outside its allowed range; the message says which and why."""


def _fmt(value) -> str:
    arr = np.asarray(value)
    if arr.ndim == 0:
        return f"{arr.item():.6g}" if np.issubdtype(arr.dtype, np.floating) else repr(arr.item())
    return f"array of shape {arr.shape}"


def fail(name: str, value, allowed: str):
    """Raise InvalidParameter('<name> = <value> is not allowed: need <allowed>')."""
    raise InvalidParameter(f"{name} = {_fmt(value)} is not allowed: need {allowed}")


def positive(name: str, value) -> float:
    """Check value > 0 (finite) and return it as float."""
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        fail(name, value, f"{name} > 0")
    return v


def nonnegative(name: str, value) -> float:
    v = float(value)
    if not np.isfinite(v) or v < 0:
        fail(name, value, f"{name} >= 0")
    return v


def in_range(name: str, value, low: float, high: float, *, closed_low=True, closed_high=False):
    """Check low <=/< value <=/< high and return value as float."""
    v = float(value)
    ok_low = v >= low if closed_low else v > low
    ok_high = v <= high if closed_high else v < high
    if not (np.isfinite(v) and ok_low and ok_high):
        lo = "<=" if closed_low else "<"
        hi = "<=" if closed_high else "<"
        fail(name, value, f"{low:g} {lo} {name} {hi} {high:g}")
    return v


def integer_at_least(name: str, value, low: int) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < low:
        fail(name, value, f"an integer {name} >= {low}")
    return int(value)


def square_matrix(name: str, a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        fail(name, a, f"a square matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        fail(name, a, "finite entries")
    return a


def symmetric(name: str, a, *, rtol: float = 1e-10) -> np.ndarray:
    """Square and symmetric to rtol·max|a| (float64 round-off of a symmetric product)."""
    a = square_matrix(name, a)
    scale = max(np.max(np.abs(a)), np.finfo(np.float64).tiny)
    asym = np.max(np.abs(a - a.T)) / scale
    if asym > rtol:
        fail(name, a, f"a symmetric matrix (max |a - a^T|/max|a| = {asym:.3g} > {rtol:g})")
    return 0.5 * (a + a.T)


def psd(name: str, a, *, rtol: float = 1e-10) -> np.ndarray:
    """Symmetric positive semi-definite: min eigenvalue >= -rtol·max|eigenvalue|."""
    a = symmetric(name, a)
    w = np.linalg.eigvalsh(a)
    if w[0] < -rtol * max(abs(w[-1]), np.finfo(np.float64).tiny):
        fail(name, a, f"a positive semi-definite matrix (smallest eigenvalue {w[0]:.3g} < 0)")
    return a


def numerically_singular_threshold(eigenvalues) -> float:
    """n·u·max|λ|: an eigenvalue of a symmetric n×n matrix at or below this is not resolved
    from 0 by a backward-stable eigensolver (its error is O(n·u·‖A‖₂), u = float64 unit
    round-off), so whether it comes out +1e-17 or −1e-17 depends on the LAPACK kernels."""
    w = np.asarray(eigenvalues, np.float64)
    return float(w.size * np.finfo(np.float64).eps * max(np.max(np.abs(w)), np.finfo(np.float64).tiny))


def positive_definite(name: str, a) -> np.ndarray:
    """Symmetric positive definite *to working precision*: min eigenvalue above
    :func:`numerically_singular_threshold` (a rank-deficient matrix is rejected on every
    CPU, not only where round-off happens to make its zero eigenvalue negative)."""
    a = symmetric(name, a)
    w = np.linalg.eigvalsh(a)
    if w[0] <= numerically_singular_threshold(w):
        fail(name, a, f"a positive definite matrix (smallest eigenvalue {w[0]:.3g} is not above "
                      f"the round-off level n·u·λ_max = {numerically_singular_threshold(w):.3g})")
    return a


def same_shape(name_a: str, a, name_b: str, b):
    if np.shape(a) != np.shape(b):
        raise InvalidParameter(
            f"{name_b} has shape {np.shape(b)} but {name_a} has shape {np.shape(a)}: need equal shapes")


def finite_vector(name: str, v) -> np.ndarray:
    """``v`` as a non-empty, finite float64 vector, else :class:`InvalidParameter`."""
    v = np.asarray(v, np.float64)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        fail(name, v, "a non-empty finite vector")
    return v
