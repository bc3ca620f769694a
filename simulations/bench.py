"""``python -m simulations bench``: engine throughput against the NumPy alternatives.

Workload: the noisy quadratic x ← x − α(Ax + Dξ), ξ ~ N(0, I_d), d = 64, R = 1024
trajectories, T = 1000 steps (full-Fisher noise, D = (sA)^{1/2}). All numbers come from
one run on this machine; nothing here is a timed assertion.

* engine: :func:`simulations.engine.simulate` (compiled once; the second call is timed).
* per-seed loop: a Python loop over seeds and steps with NumPy (how the papers' reference
  code runs); timed on a subset of seeds and scaled, as its cost is linear in seeds.
* vectorized NumPy: all seeds as one (R, d) array, a Python loop over steps.
* RNG ceiling: the engine's random draws alone (a key split and d normals per
  trajectory-step, vmapped over seeds, scanned over steps, nothing else computed); the
  engine needs d normals per trajectory-step, so engine rate × d / ceiling is the fraction
  of that bound reached. The rate of one large ``jax.random.normal`` draw is shown too.
* SNGM sweep: the full-fidelity (B, η) sweep of the ``sngm.*`` claims on the L-smooth
  testbed (2 methods × 8 batch sizes × 16 learning rates × 8 seeds, budgets 2¹² and 2¹⁴,
  so 4096 steps per trajectory) as one :func:`simulations.sweep.sweep` call: wall time of
  the first call (compilation included) and of a second call on a new η grid, with the
  number of engine compilations of each (``engine.trace_count()``).
* label-noise SGD: the ``labelnoise.sparse_recovery`` model (64 seeds × 3·10⁵ steps,
  d = 100, n = 40) by the engine against a per-seed, per-step NumPy loop (the papers'
  reference-code style) and NumPy vectorized over seeds, each timed on a slice of the
  steps and scaled linearly.
* devices: the noisy-quadratic engine run over 1, 2, 4, 8 devices (on CPU, each in a
  fresh process with that many forced host devices: the cores are shared, so this shows
  the shape of the scaling and what sharding costs, not more hardware), and as two
  processes of one device each under ``jax.distributed`` on the loopback address.
* reproduction (``--evidence DIR``): the claims' run times per paper that ``reproduce``
  stored with each claim's evidence in DIR (summed over claims and keys; with several
  ``--jobs`` the reproduction's wall time is shorter than the sum).

``python -m simulations bench`` prints every part as a Markdown table.
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
    """Normals per second of one large ``jax.random.normal`` draw."""
    f = jax.jit(lambda k: jax.random.normal(k, (n_samples,), jnp.float32).sum())
    f(jax.random.key(0)).block_until_ready()
    t = _timed(lambda: f(jax.random.key(1)).block_until_ready(), repeat=3)
    return n_samples / t


def _rng_only(key, n_seeds: int, n_steps: int, d: int):
    def trajectory(k):
        def step(carry, _):
            x, k = carry
            k, sub = jax.random.split(k)
            return (x + jax.random.normal(sub, (d,), jnp.float32), k), None
        return jax.lax.scan(step, (jnp.zeros(d, jnp.float32), k), None, length=n_steps)[0][0].sum()
    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(n_seeds))
    return jax.vmap(trajectory)(keys).sum()


def rng_ceiling(n_seeds: int, n_steps: int, d: int) -> float:
    """Normals per second of the engine's random draws alone: per trajectory a key split
    and d normals per step, vmapped over seeds and scanned over steps as in the engine,
    with nothing else computed (a rate no engine run of that shape can exceed)."""
    f = jax.jit(_rng_only, static_argnums=(1, 2, 3))
    f(jax.random.key(0), n_seeds, n_steps, d).block_until_ready()
    t = _timed(lambda: f(jax.random.key(1), n_seeds, n_steps, d).block_until_ready(), repeat=2)
    return n_seeds * n_steps * d / t


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


PARTS = ("engine", "sweep", "labelnoise", "scaling")


# ------------------------------------------------------------- devices and processes
def _quadratic_workload(d: int):
    tb = make_noisy_quadratic(d=d, x0_norm=1.0, key=jax.random.key(0))
    A = np.asarray(tb.hessian)
    D = optimizers.covariance_factor(quadratic.structured_covariance(A, "full", 0.06))
    return tb, A, D, {"learning_rate": np.array([1.0]), "noise_factor": D[None]}


def time_engine(n_seeds: int, n_steps: int, d: int, devices=None) -> dict:
    """First call (compilation included) and the best of two further calls of the engine
    on the noisy quadratic, over ``devices`` (default: every device, of every process)."""
    tb, _, _, hp = _quadratic_workload(d)
    kw = dict(key=jax.random.key(1), n_seeds=n_seeds, n_steps=n_steps, record_every=n_steps,
              metrics={"loss": _final_loss}, devices=devices)
    first = _timed(lambda: engine.simulate(tb, optimizers.make_noisy_sgd, hp, **kw))
    steady = _timed(lambda: engine.simulate(tb, optimizers.make_noisy_sgd, hp, **kw), repeat=2)
    n_dev = len(devices) if devices is not None else jax.device_count()
    return dict(devices=n_dev, processes=jax.process_count(), seconds=steady,
                compile_seconds=max(first - steady, 0.0), trajectory_steps=n_seeds * n_steps)


def _worker() -> None:
    """``python -c 'from simulations.bench import _worker; _worker()' R T d [HOST:PORT N I]``:
    one engine timing in a fresh process (printed as JSON on the last line)."""
    import json
    import sys

    args = sys.argv[1:]
    if len(args) > 3:
        from simulations import distributed
        distributed.initialize(args[3], int(args[4]), int(args[5]))
    out = time_engine(int(args[0]), int(args[1]), int(args[2]))
    print(json.dumps(out), flush=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(n_devices: int, args):
    import os
    import subprocess
    import sys

    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={n_devices}")
    return subprocess.Popen([sys.executable, "-c", "from simulations.bench import _worker; _worker()",
                             *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _collect(procs, timeout: float) -> list[dict]:
    import json

    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            if proc.returncode:
                raise RuntimeError(f"bench worker failed: {err.strip().splitlines()[-1:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def device_scaling(counts=(1, 2, 4, 8), *, n_seeds: int = 1024, n_steps: int = 1000, d: int = 64,
                   processes: bool = True, timeout: float = 600) -> list[dict]:
    """Engine throughput over 1, 2, 4, 8 … devices. On CPU each count runs in a fresh
    process with that many forced host devices (the cores are shared: this measures the
    shape of the scaling, and what sharding costs); with accelerators, in this process
    over the first n devices. With ``processes`` (CPU) also two processes of one device
    each under ``jax.distributed`` on the loopback address (outputs gathered over gloo)."""
    rows = []
    if jax.default_backend() == "cpu":
        for n in counts:
            rows += _collect([_spawn(n, (n_seeds, n_steps, d))], timeout)
        if processes:
            port = _free_port()
            procs = [_spawn(1, (n_seeds, n_steps, d, f"127.0.0.1:{port}", 2, i)) for i in range(2)]
            rows.append(_collect(procs, timeout)[0])
    else:
        for n in counts:
            if n <= jax.device_count():
                rows.append(time_engine(n_seeds, n_steps, d, devices=jax.devices()[:n]))
    return rows


# ------------------------------------------------------------ reproduction wall time
def reproduction_seconds(folder) -> list[dict]:
    """Per paper: the wall seconds its claims' runs took, as stored with their evidence in
    ``folder`` (a ``reproduce --out`` folder; summed over the keys stored there)."""
    from simulations import registry, report

    paper_of = {c.id: (c.package or c.id.split(".")[0]) for c in registry.all_claims().values()}
    rows: dict[str, dict] = {}
    for label, per_claim in report.stored_seconds(folder).items():
        for cid, seconds in per_claim.items():
            row = rows.setdefault(paper_of.get(cid, cid.split(".")[0]),
                                  dict(claims=set(), keys=set(), seconds=0.0))
            row["claims"].add(cid)
            row["keys"].add(label)
            row["seconds"] += seconds
    order = {p: i for i, p in enumerate(registry.PAPER_ORDER)}
    return [dict(paper=p, claims=len(r["claims"]), keys=len(r["keys"]), seconds=r["seconds"])
            for p, r in sorted(rows.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))]


# ------------------------------------------------------------------------ the table
def _table(head, rows) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + \
        ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]


def main(*, n_seeds: int = 1024, n_steps: int = 1000, d: int = 64, loop_seeds: int = 8,
         devices=(1, 2, 4, 8), evidence=None, parts=PARTS) -> dict:
    """Run the benchmark parts and print them as Markdown tables (what the README's
    performance section shows); returns the numbers."""
    results: dict = {}
    lines = [f"Benchmark: {jax.device_count()} {jax.default_backend()} device(s) "
             f"({jax.devices()[0].device_kind}), {jax.process_count()} process(es), jax {jax.__version__}. "
             "Trajectory-steps/s = trajectories × optimizer steps per second.", ""]

    def show(block):
        lines.extend(block)
        print("\n".join(block), flush=True)

    print(lines[0] + "\n", flush=True)
    if "engine" in parts:
        tb, A, D, hp = _quadratic_workload(d)
        eng = time_engine(n_seeds, n_steps, d)
        t_engine, work = eng["seconds"], n_seeds * n_steps
        rng = np.random.default_rng(0)
        x0 = np.asarray(tb.x0, np.float32)
        A32, D32 = A.astype(np.float32), D.astype(np.float32)
        t_loop = _timed(lambda: per_seed_loop(A32, D32, 1.0, x0, loop_seeds, n_steps, rng)) * n_seeds / loop_seeds
        t_vec = _timed(lambda: vectorized_numpy(A32, D32, 1.0, x0, n_seeds, n_steps, rng))
        normals_per_s = rng_ceiling(n_seeds, n_steps, d)
        one_draw = rng_rate(min(work * d, 2 ** 26))
        rate = work / t_engine
        rows = [("engine (jit, vmap over seeds, lax.scan)", t_engine),
                (f"per-seed Python loop (NumPy; {loop_seeds} seeds timed, scaled)", t_loop),
                ("NumPy vectorized over seeds", t_vec)]
        show([f"**Noisy quadratic** (d = {d}, R = {n_seeds} seeds, T = {n_steps} steps, full-Fisher noise)", ""]
             + _table(["method", "seconds", "trajectory-steps/s", "engine speed-up"],
                      [(m, f"{t:.3f}", f"{work / t:.3g}", f"{t / t_engine:.1f}x") for m, t in rows])
             + ["", f"Engine compilation (first call − steady call): {eng['compile_seconds']:.2f} s. "
                f"RNG ceiling: the engine's draws alone (same vmap and scan, no arithmetic) run at "
                f"{normals_per_s:.3g} normals/s; the engine consumes {rate * d:.3g}/s (d per "
                f"trajectory-step) = {rate * d / normals_per_s:.0%} of it (one large `jax.random.normal` "
                f"draw: {one_draw:.3g}/s).", ""])
        results.update(engine_seconds=t_engine, loop_seconds=t_loop, numpy_seconds=t_vec,
                       first_call_seconds=t_engine + eng["compile_seconds"],
                       compile_seconds=eng["compile_seconds"], rng_rate=normals_per_s,
                       one_draw_rate=one_draw, rng_fraction=rate * d / normals_per_s,
                       speedup_vs_loop=t_loop / t_engine, speedup_vs_numpy=t_vec / t_engine)
    work_rows = []
    if "sweep" in parts:
        sweep = sngm_sweep()
        steps = sweep["trajectories"] * sweep["steps"]
        work_rows.append((f"SNGM (B, η) sweep, L-smooth: {sweep['trajectories']} trajectories × "
                          f"{sweep['steps']} steps, one engine call", f"{steps:.3g}",
                          f"{sweep['first_seconds']:.1f} ({sweep['first_compilations']} compilation)",
                          f"{sweep['new_eta_grid_seconds']:.1f} ({sweep['new_eta_grid_compilations']} compilations)",
                          f"{steps / sweep['new_eta_grid_seconds']:.3g}", "—", "—"))
        results.update(sngm_sweep_seconds=sweep["first_seconds"],
                       sngm_sweep_compilations=sweep["first_compilations"],
                       sngm_sweep_new_grid_seconds=sweep["new_eta_grid_seconds"],
                       sngm_sweep_new_grid_compilations=sweep["new_eta_grid_compilations"])
    if "labelnoise" in parts:
        ln = label_noise_sparse()
        work_rows.append(("label-noise SGD, sparse u⊙u − v⊙v (d = 100, n = 40): 64 seeds × 3·10⁵ steps",
                          f"{ln['trajectory_steps']:.3g}",
                          f"{ln['engine_seconds'] + ln['engine_compile_seconds']:.1f} (1 compilation)",
                          f"{ln['engine_seconds']:.1f}", f"{ln['trajectory_steps'] / ln['engine_seconds']:.3g}",
                          f"{ln['per_seed_loop_seconds']:.0f} s ({ln['loop_over_engine']:.0f}x)",
                          f"{ln['numpy_vectorized_seconds']:.1f} s ({ln['numpy_over_engine']:.1f}x)"))
        results["label_noise"] = ln
    if work_rows:
        show(["**Workloads of the claims**", ""]
             + _table(["workload", "trajectory-steps", "first call, s", "again (new values), s",
                       "trajectory-steps/s", "per-seed NumPy loop", "NumPy vectorized"], work_rows)
             + ["", "The label-noise engine and NumPy times are timed on a slice of the steps and scaled "
                "linearly; the sweep's second call runs a new η grid (no recompilation).", ""])
    if "scaling" in parts and devices:
        rows = device_scaling(tuple(devices), n_seeds=n_seeds, n_steps=n_steps, d=d)
        base = next((r["seconds"] for r in rows if r["devices"] == 1 and r["processes"] == 1), None)
        how = "forced host devices, one process each" if jax.default_backend() == "cpu" else "devices of this process"
        table = []
        for r in rows:
            name = f"{r['devices']} device{'s' if r['devices'] > 1 else ''}" if r["processes"] == 1 else \
                f"{r['processes']} processes × {r['devices'] // r['processes']} device (jax.distributed, loopback)"
            speedup = base / r["seconds"] if base else float("nan")
            table.append((name, f"{r['seconds']:.3f}", f"{r['trajectory_steps'] / r['seconds']:.3g}",
                          f"{speedup:.2f}x", f"{speedup / r['devices']:.0%}", f"{r['compile_seconds']:.2f}"))
        show([f"**Devices** (the noisy quadratic above; {how})", ""]
             + _table(["devices", "seconds", "trajectory-steps/s", "speed-up vs 1", "per device",
                       "compilation, s"], table) + [""])
        results["scaling"] = rows
    if evidence is not None:
        rows = reproduction_seconds(evidence)
        if rows:
            show([f"**Claim run time per paper** (summed over claims and keys, stored with the "
                  f"evidence in {evidence}; with several workers the wall time is shorter)", ""]
                 + _table(["paper", "claims", "keys", "seconds"],
                          [(r["paper"], r["claims"], r["keys"], f"{r['seconds']:.1f}") for r in rows]
                          + [("all", sum(r["claims"] for r in rows), max(r["keys"] for r in rows),
                              f"{sum(r['seconds'] for r in rows):.1f}")]) + [""])
        else:
            show([f"No run times stored in {evidence} (evidence written by `reproduce` stores them).", ""])
        results["reproduction"] = rows
    results["text"] = "\n".join(lines)
    return results
