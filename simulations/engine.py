"""The Monte-Carlo engine: seeds × hyperparameter configurations as one compiled program.

    simulate(testbed, make_optimizer, hyperparams, *, key, n_seeds, n_steps,
             record_every, metrics, window_metrics) -> SimulationResult

* ``vmap`` over seeds and over a grid of configurations, ``lax.scan`` over steps, a
  nested scan that records every ``record_every``-th step; metrics are reduced inside
  the scan, full trajectories are never stored.
* Hyperparameters are traced arrays with a leading config axis, so a new grid of values
  never recompiles (:func:`trace_count` lets a test check it). Shapes (batch size,
  n_steps, number of configs, seeds per chunk) compile once per value.
* Randomness: trajectory (c, s) uses ``fold_in(fold_in(key, c), s)``, so adding a
  configuration or a seed never changes another's random numbers. With
  ``common_random_numbers`` seed s gets ``fold_in(fold_in(key, 0), s)`` in every
  configuration (paired designs).
* Reproducibility, the guarantee that holds on every CPU: the same call (key, sizes,
  ``seed_chunk``, device count) gives bitwise-identical results. A different chunking
  or device count draws the same random numbers but runs another compiled shape, and
  XLA may then pick another kernel for a batched product (seen on some x86-64 CPUs, not
  on others), so results agree to float round-off, not bitwise: for a contraction such
  as SGD on a quadratic with |1 − αλ| ≤ 1, at most n_steps·(d + 1)·u relative to the
  largest |x| (u the unit round-off of the dtype), which the tests check.
* Divergence is a result: the first step at which a parameter becomes non-finite is
  recorded per trajectory (``diverged_at``; −1 if never). :meth:`SimulationResult.stats`
  excludes diverged trajectories and reports how many it excluded.
* The seed axis of each chunk is sharded over ``jax.devices()`` with a ``NamedSharding``.
  Under JAX's multi-controller runtime (``jax.distributed.initialize``, see
  :mod:`simulations.distributed`) ``jax.devices()`` lists the devices of every process:
  the mesh spans them all, each process builds only the key shards of its own devices,
  and the outputs are gathered, so every process returns the same result. A run over P
  processes with D devices in all compiles the same per-device program as one process
  with D devices (trajectories never communicate), so on CPU the two agree bitwise (the
  tests run two processes on one machine); against another device count they agree to
  the round-off bound above.

Records: ``records[name]`` has shape (config, seed, record) with the metric evaluated at
steps 0, r, 2r, …, n_steps (r = record_every). ``windows[name]`` has shape
(config, seed, window): the mean of the metric over the iterates x_{wr}, …, x_{wr+r−1}
of window w (so the mean over all windows is the average over iterates x_0 … x_{T−1}).
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import time
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from simulations import __version__
from simulations.stats import mean_stderr
from theory import validation as check

Metric = Callable[[Any, Any], jax.Array]  # (testbed, params) -> scalar

_TRACES = {"count": 0}
_REPORTER: contextvars.ContextVar = contextvars.ContextVar("simulate_reporter", default=None)


@contextlib.contextmanager
def reporting(callback: Callable[[str], None]):
    """Within this context every :func:`simulate` call reports one line per seed chunk
    through ``callback`` (the CLI uses it to show progress inside long claims)."""
    token = _REPORTER.set(callback)
    try:
        yield
    finally:
        _REPORTER.reset(token)


def trace_count() -> int:
    """How many times the engine's program has been traced (= compiled) so far."""
    return _TRACES["count"]


# --------------------------------------------------------------------------- results
@dataclasses.dataclass(frozen=True)
class SimulationResult:
    """Output of :func:`simulate`: NumPy arrays with named axes and reproduction metadata.

    Attributes:
      records: name -> (config, seed, record) metric values at ``record_steps``.
      windows: name -> (config, seed, window) window means (see module docstring).
      record_steps: (record,) step index of each record.
      diverged_at: (config, seed) first step with a non-finite parameter, −1 if none.
      hyperparams: name -> (config, ...) the values of each configuration.
      final_params: pytree with leading (config, seed) axes, or None if not asked for.
      metadata: testbed, sizes, key, dtype, versions, devices, chunking, wall time.
    """

    records: Mapping[str, np.ndarray]
    windows: Mapping[str, np.ndarray]
    record_steps: np.ndarray
    diverged_at: np.ndarray
    hyperparams: Mapping[str, np.ndarray]
    final_params: Any
    metadata: Mapping[str, Any]

    @property
    def valid(self) -> np.ndarray:
        """(config, seed) True for trajectories that stayed finite."""
        return self.diverged_at < 0

    @property
    def n_diverged(self) -> np.ndarray:
        """(config,) number of excluded (diverged) trajectories."""
        return (~self.valid).sum(axis=1)

    def stats(self, values: np.ndarray):
        """(mean, stderr, n) over the seed axis (axis 1) of a (config, seed, ...) array,
        excluding diverged trajectories (the rule: a trajectory with any non-finite
        parameter before the last step is dropped from every statistic)."""
        values = np.asarray(values, dtype=np.float64)
        valid = self.valid.reshape(self.valid.shape + (1,) * (values.ndim - 2))
        return mean_stderr(values, axis=1, valid=np.broadcast_to(valid, values.shape))

    def window_average(self, name: str, start_fraction: float = 0.0) -> np.ndarray:
        """(config, seed, ...) mean of window metric ``name`` over the windows from
        ``start_fraction`` of the run to the end (e.g. 0.75: the last 25% of iterates);
        a vector-valued metric keeps its trailing axes."""
        w = self.windows[name]
        first = int(np.floor(start_fraction * w.shape[2]))
        return w[:, :, first:].mean(axis=2)


# ---------------------------------------------------------------------- validation
def _validate(hyperparams, n_seeds, n_steps, record_every, metrics, window_metrics, seed_chunk):
    n_seeds = check.integer_at_least("n_seeds", n_seeds, 1)
    n_steps = check.integer_at_least("n_steps", n_steps, 1)
    record_every = check.integer_at_least("record_every", record_every, 1)
    if n_steps % record_every:
        check.fail("record_every", record_every, f"a divisor of n_steps = {n_steps}")
    if seed_chunk is not None:
        check.integer_at_least("seed_chunk", seed_chunk, 1)
    if not isinstance(hyperparams, Mapping) or not hyperparams:
        check.fail("hyperparams", 0, "a non-empty dict name -> array with a leading config axis")
    sizes = {k: np.shape(v)[0] if np.ndim(v) else None for k, v in hyperparams.items()}
    if any(s is None for s in sizes.values()) or len(set(sizes.values())) != 1:
        raise check.InvalidParameter(
            f"hyperparams leading (config) axes are {sizes}: need arrays with one common "
            "leading length (use simulations.engine.config_grid to build a grid)")
    for name, arr in hyperparams.items():
        if not np.all(np.isfinite(np.asarray(arr, dtype=np.float64))):
            check.fail(f"hyperparams[{name!r}]", np.asarray(arr), "finite values")
    overlap = set(metrics) & set(window_metrics)
    if not metrics and not window_metrics:
        check.fail("metrics", 0, "at least one metric or window metric")
    if overlap:
        check.fail("window_metrics", 0, f"names distinct from metrics (both have {sorted(overlap)})")
    return n_seeds, n_steps, record_every, next(iter(sizes.values()))


def config_grid(**axes) -> tuple[dict[str, np.ndarray], tuple[int, ...]]:
    """Cartesian product of hyperparameter values, flattened to one config axis.

    ``config_grid(learning_rate=[.1, .2], noise_factor=[D1, D2, D3])`` returns
    (hyperparams with leading axis 6, grid shape (2, 3)); config index c corresponds to
    ``np.unravel_index(c, shape)`` (the last named axis varies fastest).
    """
    if not axes:
        check.fail("axes", 0, "at least one hyperparameter axis")
    values = {k: np.asarray(v) for k, v in axes.items()}
    shape = tuple(len(v) for v in values.values())
    idx = np.indices(shape).reshape(len(shape), -1)
    return {k: v[i] for (k, v), i in zip(values.items(), idx)}, shape


# ------------------------------------------------------------------- the program
def _all_finite(tree) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _trajectory(testbed, hparams, key, *, make_optimizer, metrics, window_metrics,
                n_windows, record_every, return_final):
    """One trajectory: nested lax.scan over windows and steps; returns reduced metrics."""
    k_init, k_opt, k_data = jax.random.split(key, 3)
    params = testbed.init(key=k_init)
    optimizer = make_optimizer(hparams, key=k_opt)
    opt_state = optimizer.init(params)
    # transforms that take extra arguments (optax's ExtraArgs protocol) see the testbed, so
    # state-dependent noise can query it (e.g. the gradient covariance Σ(w_t))
    extra = {"testbed": testbed} if isinstance(optimizer, optax.GradientTransformationExtraArgs) else {}
    # a testbed whose gradient oracle depends on a swept hyperparameter (label-noise σ,
    # annealed pre-activation noise) sets ``gradient_uses_hyperparams`` and receives the
    # configuration's hyperparameters and the step index
    hp_aware = bool(getattr(testbed, "gradient_uses_hyperparams", False))

    def evaluate(fns, p):
        return {name: jnp.asarray(fn(testbed, p)) for name, fn in fns}

    def step(carry, _):
        params, opt_state, data_key, bad_step, t = carry
        data_key, sub = jax.random.split(data_key)
        window_values = evaluate(window_metrics, params)
        grads = (testbed.gradient(params, key=sub, hparams=hparams, step=t) if hp_aware
                 else testbed.gradient(params, key=sub))
        updates, opt_state = optimizer.update(grads, opt_state, params, **extra)
        params = optax.apply_updates(params, updates)
        bad_step = jnp.where((bad_step < 0) & ~_all_finite(params), t + 1, bad_step)
        return (params, opt_state, data_key, bad_step, t + 1), window_values

    def window(carry, _):
        carry, per_step = jax.lax.scan(step, carry, None, length=record_every)
        means = {k: v.mean(axis=0) for k, v in per_step.items()}
        return carry, (evaluate(metrics, carry[0]), means)

    carry0 = (params, opt_state, k_data, jnp.asarray(-1, jnp.int32), jnp.asarray(0, jnp.int32))
    first = evaluate(metrics, params)
    carry, (recorded, window_means) = jax.lax.scan(window, carry0, None, length=n_windows)
    records = {k: jnp.concatenate([first[k][None], recorded[k]]) for k in first}
    final = carry[0] if return_final else None
    return records, window_means, carry[3], final


_STATIC = ("make_optimizer", "metrics", "window_metrics", "n_windows", "record_every",
           "return_final")
#: On CPU, XLA's YNNPACK dot fusion picks size-dependent kernels even on a single CPU
#: type, so a trajectory's last bits depended on how many seeds shared the call; with it
#: off, XLA's default dots are chunking-independent on some CPUs but not all (see the
#: module docstring for the guarantee that holds everywhere).
_CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}
_PROGRAMS: dict[str, Callable] = {}


def _program_body(testbed, hyperparams, keys, *, make_optimizer, metrics, window_metrics,
                  n_windows, record_every, return_final):
    _TRACES["count"] += 1  # runs only while tracing
    one = functools.partial(_trajectory, make_optimizer=make_optimizer, metrics=metrics,
                            window_metrics=window_metrics, n_windows=n_windows,
                            record_every=record_every, return_final=return_final)
    over_seeds = jax.vmap(one, in_axes=(None, None, 0))
    over_configs = jax.vmap(over_seeds, in_axes=(None, 0, 0))
    return over_configs(testbed, hyperparams, keys)


def _program(platform: str) -> Callable:
    """The jit-compiled engine program for a platform (one jit cache per platform)."""
    if platform not in _PROGRAMS:
        options = _CPU_COMPILER_OPTIONS if platform == "cpu" else None
        _PROGRAMS[platform] = jax.jit(_program_body, static_argnames=_STATIC,
                                      compiler_options=options)
    return _PROGRAMS[platform]


def _cast(tree, dtype):
    def cast(x):
        x = jnp.asarray(x)
        return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
    return jax.tree_util.tree_map(cast, tree)


def trajectory_keys(key, n_configs: int, seed_indices: np.ndarray, common: bool = False):
    """(config, seed) typed keys: fold_in(fold_in(key, c), s); with ``common`` (common
    random numbers) c = 0 for every config, so all configs see the same noise."""
    configs = jnp.zeros(n_configs, jnp.int32) if common else jnp.arange(n_configs)
    cfg = jax.vmap(lambda c: jax.random.fold_in(key, c))(configs)
    return jax.vmap(lambda k: jax.vmap(lambda s: jax.random.fold_in(k, s))(
        jnp.asarray(seed_indices)))(cfg)


def _seed_sharding(devices):
    if len(devices) < 2:
        return None
    return NamedSharding(Mesh(np.asarray(devices), ("seed",)), PartitionSpec(None, "seed"))


def _feed(keys, sharding):
    """The (config, seed) keys as one array sharded over the mesh: this process builds
    only the shards of its own devices (every process holds the same small key array)."""
    return jax.make_array_from_callback(keys.shape, sharding, lambda index: keys[index])


def _fetch(tree):
    """Outputs as NumPy arrays; shards held by other processes are all-gathered first, so
    every process gets the whole result."""
    leaves = jax.tree_util.tree_leaves(tree)
    if all(getattr(x, "is_fully_addressable", True) for x in leaves):
        return jax.tree_util.tree_map(np.asarray, tree)
    from jax.experimental import multihost_utils

    return jax.tree_util.tree_map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def simulate(testbed, make_optimizer, hyperparams: Mapping[str, Any], *, key, n_seeds: int,
             n_steps: int, record_every: int = 1, metrics: Mapping[str, Metric] | None = None,
             window_metrics: Mapping[str, Metric] | None = None, seed_chunk: int | None = None,
             dtype=jnp.float32, return_final: bool = False, devices=None,
             common_random_numbers: bool = False,
             progress: Callable[[int, int], None] | None = None) -> SimulationResult:
    """Run n_configs × n_seeds trajectories of ``n_steps`` optimizer steps.

    Args:
      testbed: a testbed pytree (see :mod:`simulations.testbeds`).
      make_optimizer: ``f(hparams, *, key) -> optax.GradientTransformation``; define it at
        module level (it is a static argument: a new function object recompiles).
      hyperparams: name -> array with a leading config axis (see :func:`config_grid`).
      key: typed PRNG key (``jax.random.key(seed)``).
      n_seeds: trajectories per configuration (≥ 1).
      n_steps: optimizer steps per trajectory (≥ 1).
      record_every: record metrics every r steps (r divides n_steps).
      metrics: name -> ``f(testbed, params)`` evaluated at the recorded steps (static, like
        ``make_optimizer``: a module-level function compiles once, a fresh lambda each call).
      window_metrics: name -> ``f(testbed, params)`` averaged over every step of a window.
      seed_chunk: seeds per compiled call (default: all; rounded up to a multiple of the
        device count). Memory and progress depend on it; results only at round-off level
        (see the module docstring).
      dtype: float32 (default) or float64 (enabled for this call only).
      return_final: also return the final parameters of every trajectory.
      devices: devices to shard the seed axis over (default ``jax.devices()``: under
        ``jax.distributed`` the devices of every process, and then every process must make
        the same call, as in any multi-controller JAX program).
      common_random_numbers: give seed s the same key in every configuration, so that
        differences between configurations are paired (far smaller variance); compare
        configurations with per-seed differences then.
      progress: optional callback ``progress(done_seeds, n_seeds)`` after each chunk.
    """
    metrics = dict(metrics or {})
    window_metrics = dict(window_metrics or {})
    n_seeds, n_steps, record_every, n_configs = _validate(
        hyperparams, n_seeds, n_steps, record_every, metrics, window_metrics, seed_chunk)
    devices = list(devices or jax.devices())
    # at least 2 seeds per device: a 1-row product takes another (matrix-vector) kernel
    chunk = max(min(seed_chunk or n_seeds, n_seeds), 2 * len(devices))
    chunk = -(-chunk // len(devices)) * len(devices)
    program = _program(devices[0].platform)
    static = dict(make_optimizer=make_optimizer, metrics=tuple(sorted(metrics.items())),
                  window_metrics=tuple(sorted(window_metrics.items())),
                  n_windows=n_steps // record_every, record_every=record_every,
                  return_final=return_final)
    x64 = jnp.dtype(dtype) == jnp.float64
    start = time.perf_counter()
    with jax.enable_x64(x64):
        tb, hp = _cast(testbed, dtype), _cast(dict(hyperparams), dtype)
        sharding = _seed_sharding(devices)
        outputs = []
        for lo in range(0, n_seeds, chunk):
            keys = trajectory_keys(key, n_configs, np.arange(lo, lo + chunk), common_random_numbers)
            if sharding is not None:
                keys = _feed(keys, sharding)
            out = program(tb, hp, keys, **static)
            outputs.append(_fetch(out))
            done = min(lo + chunk, n_seeds)
            if progress is not None:
                progress(done, n_seeds)
            if _REPORTER.get() is not None:
                _REPORTER.get()(f"{type(testbed).__name__}: {n_configs} configs x {done}/{n_seeds} "
                                f"seeds x {n_steps} steps, {time.perf_counter() - start:.1f} s")
    records, windows, diverged, final = jax.tree_util.tree_map(
        lambda *xs: np.concatenate(xs, axis=1)[:, :n_seeds], *outputs)
    wall = time.perf_counter() - start
    meta = dict(testbed=type(testbed).__name__, n_configs=n_configs, n_seeds=n_seeds,
                n_steps=n_steps, record_every=record_every, dtype=jnp.dtype(dtype).name,
                key=np.asarray(jax.random.key_data(key)).tolist(), seed_chunk=chunk,
                devices=len(devices), processes=len({d.process_index for d in devices}),
                common_random_numbers=common_random_numbers,
                version=__version__, jax_version=jax.__version__,
                wall_seconds=wall)
    return SimulationResult(
        records=records, windows=windows,
        record_steps=np.arange(0, n_steps + 1, record_every), diverged_at=diverged,
        hyperparams={k: np.asarray(v) for k, v in hyperparams.items()},
        final_params=final if return_final else None, metadata=meta)
