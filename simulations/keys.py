"""Explicit randomness: typed JAX keys everywhere, and NumPy generators derived from them.

Claims receive a typed key (``jax.random.key(seed)``). Code that needs NumPy randomness
(float64 data generation, closed-form checks) derives a generator from the key, so the
whole toolkit is driven by one explicit key and never by a hidden global seed.
"""
from __future__ import annotations

import jax
import numpy as np


def numpy_rng(key) -> np.random.Generator:
    """A NumPy Generator seeded by the bits of a typed JAX key (deterministic)."""
    bits = np.asarray(jax.random.key_data(key), dtype=np.uint32).ravel()
    return np.random.default_rng([int(b) for b in bits])


def subkey(key, name: str):
    """A key for a named purpose: fold_in(key, crc32(name)). Stable across runs."""
    import zlib

    return jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)
