"""Analytic results (float64 NumPy/SciPy, deterministic): one module per paper.

- :mod:`theory.quadratic` — noisy gradient descent on quadratics (Wen et al. 2020).
"""
from theory.validation import InvalidParameter

__all__ = ["InvalidParameter"]
