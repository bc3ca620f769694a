"""Strict test settings: warnings from our code are errors, keys are explicit, and the
engine runs in float32 on whatever CPU devices JAX sees (multi-device tests spawn a
subprocess, since the device count is fixed when JAX initializes)."""
import jax
import numpy as np
import pytest


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
