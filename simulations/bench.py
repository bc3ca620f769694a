"""``python -m simulations bench``: engine throughput against the NumPy alternatives.

Workload: the noisy quadratic x ← x − α(Ax + Dξ), ξ ~ N(0, I_d), d = 64, R = 1024
trajectories, T = 1000 steps (full-Fisher noise, D = (sA)^{1/2}). All numbers come from
one run on this machine; nothing here is a timed assertion.

* engine: :func:`simulations.engine.simulate` (compiled once; the second call is timed).
* per-seed loop: a Python loop over seeds and steps with NumPy (how the papers' reference
  code runs); timed on a subset of seeds and scaled, as its cost is linear in seeds.
* vectorized NumPy: all seeds as one (R, d) array, a Python loop over steps.
* RNG bound: the rate of ``jax.random.normal`` here; the engine needs d normals per
  trajectory-step, so engine rate × d / RNG rate is the fraction of that bound reached.
* SNGM sweep: the full-fidelity (B, η) sweep of the ``sngm.*`` claims on the L-smooth
  testbed (2 methods × 8 batch sizes × 16 learning rates × 8 seeds, budgets 2¹² and 2¹⁴,
  so 4096 steps per trajectory) as one :func:`simulations.sweep.sweep` call: wall time of
  the first call (compilation included) and of a second call on a new η grid, with the
  number of engine compilations of each (``engine.trace_count()``).
* label-noise SGD: the ``labelnoise.sparse_recovery`` model (64 seeds × 3·10⁵ steps,
  d = 100, n = 40) by the engine against a per-seed, per-step NumPy loop (the papers'
  reference-code style) and NumPy vectorized over seeds, each timed on a slice of the
  steps and scaled linearly.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from simulations import engine, optimizers
from simulations import sweep as sw
from simulations.testbeds import make_noisy_quadratic
from theory import quadratic


def _timed(fn, repeat: int = 1) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _final_loss(testbed, params):
    return testbed.loss(params)


def per_seed_loop(A, D, alpha, x0, n_seeds, n_steps, rng):
    for _ in range(n_seeds):
        x = x0.copy()
        for _ in range(n_steps):
            x = x - alpha * (A @ x + D @ rng.standard_normal(x.shape[0]))
    return x


def vectorized_numpy(A, D, alpha, x0, n_seeds, n_steps, rng):
    X = np.tile(x0, (n_seeds, 1))
    for _ in range(n_steps):
        X = X - alpha * (X @ A + rng.standard_normal(X.shape) @ D.T)
    return X


def rng_rate(n_samples: int) -> float:
    f = jax.jit(lambda k: jax.random.normal(k, (n_samples,), jnp.float32).sum())
    f(jax.random.key(0)).block_until_ready()
    t = _timed(lambda: f(jax.random.key(1)).block_until_ready(), repeat=3)
    return n_samples / t


def sngm_sweep() -> dict:
    """Time the full SNGM sweep (see the module docstring); returns seconds and compilations."""
    from simulations.claims.sngm import FULL_LS as cfg
    from simulations.testbeds.smooth import make_smooth_testbed

    tb = make_smooth_testbed(cfg["testbed"], x0=cfg["x0"], d=cfg["d"])
    etas = np.stack([np.geomspace(*cfg["sngm_eta_range"], cfg["n_eta"]),
                     np.geomspace(*cfg["msgd_eta_range"], cfg["n_eta"])])
    kw = dict(batch_sizes=cfg["batch_sizes"], budgets=cfg["budgets"], beta=cfg["beta"],
              sigma=cfg["sigma"], n_seeds=cfg["n_seeds"], key=jax.random.key(2))
    out = {}
    for name, grid in (("first", etas), ("new_eta_grid", etas * 1.5)):
        before = engine.trace_count()
        t = time.perf_counter()
        res = sw.sweep(tb, etas=grid, **kw)
        out[f"{name}_seconds"] = time.perf_counter() - t
        out[f"{name}_compilations"] = engine.trace_count() - before
    out["trajectories"] = int(np.prod(res.tail.shape[1:]))
    out["steps"] = int(res.n_steps)
    return out


# ------------------------------------------------------------------ label-noise SGD
def _sparse_loop_one_seed(X, y, eta, sigma, n_steps, rng):
    """Label-noise GD on u⊙u − v⊙v for one seed, one NumPy step at a time."""
    n, d = X.shape
    u, v = np.ones(d), np.ones(d)
    for _ in range(n_steps):
        r = X @ (u * u - v * v) - y - sigma * rng.choice((-1.0, 1.0), size=n)
        g = X.T @ r / n
        u, v = u - eta * 2 * u * g, v + eta * 2 * v * g
    return u, v


def _sparse_numpy_vectorized(X, y, eta, sigma, n_seeds, n_steps, rng):
    """The same, all seeds as (R, d) arrays and a Python loop over steps."""
    n, d = X.shape
    U, V = np.ones((n_seeds, d)), np.ones((n_seeds, d))
    for _ in range(n_steps):
        R = (U * U - V * V) @ X.T - y - sigma * (2.0 * rng.integers(0, 2, (n_seeds, n)) - 1.0)
        G = R @ X / n
        U, V = U - eta * 2 * U * G, V + eta * 2 * V * G
    return U, V


def label_noise_sparse(*, n_seeds: int = 64, n_steps: int = 300_000, timed_steps: int = 30_000,
                       loop_steps: int = 5_000, numpy_steps: int = 5_000) -> dict:
    """The ``labelnoise.sparse_recovery`` workload (d = 100, n = 40, full batch, η = 0.01,
    σ = √40) run by the engine (64 seeds, one program, compiled once) against a per-seed
    per-step NumPy loop and NumPy vectorized over seeds; each is timed on a slice of the
    steps and scaled linearly to n_seeds × n_steps trajectory-steps."""
    from simulations.claims.label_noise import SPARSE, runs
    from simulations.optimizers import make_momentum_sgd
    from simulations.testbeds import label_noise as tbs
    from simulations.testbeds.label_noise import label_noise_hyperparams

    cfg = dict(SPARSE["full"])
    tb = runs.sparse_testbed(cfg, jax.random.key(0))
    X, y = np.asarray(tb.features, np.float64), np.asarray(tb.targets, np.float64)
    hp = label_noise_hyperparams(cfg["eta"], cfg["sigma"])
    kw = dict(n_seeds=n_seeds, n_steps=timed_steps, record_every=timed_steps // 100,
              metrics={"loss": tbs.loss}, window_metrics={"w": tbs.sparse_w})
    t = time.perf_counter()
    engine.simulate(tb, make_momentum_sgd, hp, key=jax.random.key(1), **kw)
    first = time.perf_counter() - t
    engine_s = _timed(lambda: engine.simulate(tb, make_momentum_sgd, hp, key=jax.random.key(2), **kw))
    rng = np.random.default_rng(0)
    loop_s = _timed(lambda: _sparse_loop_one_seed(X, y, cfg["eta"], cfg["sigma"], loop_steps, rng))
    vec_s = _timed(lambda: _sparse_numpy_vectorized(X, y, cfg["eta"], cfg["sigma"], n_seeds, numpy_steps, rng))
    total = n_seeds * n_steps
    out = dict(trajectory_steps=total,
               engine_seconds=engine_s * n_steps / timed_steps,
               engine_compile_seconds=first - engine_s,
               per_seed_loop_seconds=loop_s * total / loop_steps,
               numpy_vectorized_seconds=vec_s * n_steps / numpy_steps)
    out["loop_over_engine"] = out["per_seed_loop_seconds"] / out["engine_seconds"]
    out["numpy_over_engine"] = out["numpy_vectorized_seconds"] / out["engine_seconds"]
    return out


def main(*, n_seeds: int = 1024, n_steps: int = 1000, d: int = 64, loop_seeds: int = 8) -> dict:
    tb = make_noisy_quadratic(d=d, x0_norm=1.0, key=jax.random.key(0))
    A = np.asarray(tb.hessian)
    D = optimizers.covariance_factor(quadratic.structured_covariance(A, "full", 0.06))
    alpha = 1.0
    hp = {"learning_rate": np.array([alpha]), "noise_factor": D[None]}
    kw = dict(key=jax.random.key(1), n_seeds=n_seeds, n_steps=n_steps, record_every=n_steps,
              metrics={"loss": _final_loss})
    t_first = _timed(lambda: engine.simulate(tb, optimizers.make_noisy_sgd, hp, **kw))
    t_engine = _timed(lambda: engine.simulate(tb, optimizers.make_noisy_sgd, hp, **kw), repeat=2)
    work = n_seeds * n_steps
    rng = np.random.default_rng(0)
    x0 = np.asarray(tb.x0, np.float32)
    A32, D32 = A.astype(np.float32), D.astype(np.float32)
    t_loop = _timed(lambda: per_seed_loop(A32, D32, alpha, x0, loop_seeds, n_steps, rng)) * n_seeds / loop_seeds
    t_vec = _timed(lambda: vectorized_numpy(A32, D32, alpha, x0, n_seeds, n_steps, rng))
    normals_per_s = rng_rate(min(work * d, 2 ** 26))
    rate = work / t_engine
    rows = {
        "engine (jit, vmap over seeds, lax.scan)": t_engine,
        f"per-seed Python loop (NumPy; {loop_seeds} seeds timed, scaled)": t_loop,
        "NumPy vectorized over seeds": t_vec,
    }
    print(f"noisy quadratic: d = {d}, R = {n_seeds} seeds, T = {n_steps} steps, "
          f"{jax.device_count()} {jax.default_backend()} device(s), jax {jax.__version__}")
    print(f"{'method':62s} {'seconds':>9s} {'traj-steps/s':>14s} {'engine speed-up':>16s}")
    for name, t in rows.items():
        print(f"{name:62s} {t:9.3f} {work / t:14.3e} {t / t_engine:15.1f}x")
    print(f"engine first call (includes compilation): {t_first:.2f} s")
    print(f"jax.random.normal rate: {normals_per_s:.3e} samples/s; engine uses {rate * d:.3e} "
          f"normals/s = {rate * d / normals_per_s:.0%} of it")
    sweep = sngm_sweep()
    print(f"SNGM sweep (L-smooth; 2 methods x 8 B x 16 eta x 8 seeds = {sweep['trajectories']} "
          f"trajectories x {sweep['steps']} steps): {sweep['first_seconds']:.2f} s first call "
          f"({sweep['first_compilations']} compilation), {sweep['new_eta_grid_seconds']:.2f} s on a "
          f"new eta grid ({sweep['new_eta_grid_compilations']} compilations)")
    ln = label_noise_sparse()
    print(f"label-noise SGD, sparse u*u - v*v (d = 100, n = 40, full batch; 64 seeds x 3e5 steps = "
          f"{ln['trajectory_steps']:.2e} trajectory-steps): engine {ln['engine_seconds']:.1f} s "
          f"(+{ln['engine_compile_seconds']:.1f} s compilation), per-seed loop "
          f"{ln['per_seed_loop_seconds']:.0f} s ({ln['loop_over_engine']:.0f}x), NumPy vectorized "
          f"{ln['numpy_vectorized_seconds']:.1f} s ({ln['numpy_over_engine']:.1f}x); each timed on a slice of "
          "the steps and scaled")
    return dict(engine_seconds=t_engine, loop_seconds=t_loop, numpy_seconds=t_vec,
                first_call_seconds=t_first, rng_rate=normals_per_s,
                speedup_vs_loop=t_loop / t_engine, speedup_vs_numpy=t_vec / t_engine,
                sngm_sweep_seconds=sweep["first_seconds"],
                sngm_sweep_compilations=sweep["first_compilations"],
                sngm_sweep_new_grid_seconds=sweep["new_eta_grid_seconds"],
                sngm_sweep_new_grid_compilations=sweep["new_eta_grid_compilations"],
                label_noise=ln)
