"""Strict test settings and the shared fixtures.

* Warnings from the project's theory code are errors (``pyproject.toml``), and so is any
  warning a test does not expect from JAX's key handling (typed keys only).
* Keys are explicit: the ``key`` fixture, or ``jax.random.key(n)`` in a test.
* The engine runs in float32 on whatever CPU devices JAX sees in this process. Tests that
  need N devices run a script in a subprocess through :func:`run_on_cpu_devices` (the
  device count is fixed when JAX initializes): the one place that sets it.
* :func:`quick` evaluates a registered claim at quick fidelity exactly as production does
  (shared runs, JSON round trip, typed evidence, rule), once per session and key: the
  registry-wide contract test and the papers' tests share the runs.
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from simulations.registry import get_claims


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def run_on_cpu_devices(n_devices: int, args, *, timeout: float = 300, env=None, **kw):
    """Run ``[python, *args]`` in a subprocess whose JAX sees ``n_devices`` CPU devices."""
    env = dict(os.environ if env is None else env, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={n_devices}")
    return subprocess.run([sys.executable, *args], env=env, timeout=timeout, check=True, **kw)


@functools.lru_cache(maxsize=None)
def quick(claim_id: str, seed: int = 0):
    """(claim, config, evidence, verdict) at quick fidelity and key ``seed`` (memoized)."""
    claim = get_claims([claim_id])[0]
    config, evidence, verdict = claim.evaluate("quick", key=jax.random.key(seed))
    return claim, config, evidence, verdict
