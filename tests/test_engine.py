"""simulations.engine: Monte Carlo vs closed form, compilation, determinism, divergence."""
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from simulations import engine, optimizers
from simulations.stats import critical_z
from simulations.testbeds import make_noisy_quadratic
from theory import quadratic as qt
from theory.validation import InvalidParameter


def _loss(tb, p):
    return tb.loss(p)


def _setup(d=8, x0_norm=2.0):
    tb = make_noisy_quadratic(d=d, x0_norm=x0_norm, key=jax.random.key(3))
    A = np.asarray(tb.hessian)
    C = qt.structured_covariance(A, "full", 0.05)
    return tb, A, C, optimizers.covariance_factor(C)


def _hp(D, alphas):
    return {"learning_rate": np.asarray(alphas, float), "noise_factor": np.stack([D] * len(alphas))}


def test_monte_carlo_mean_matches_closed_form(key):
    tb, A, C, D = _setup()
    alphas = [0.5, 1.5]
    res = engine.simulate(tb, optimizers.make_noisy_sgd, _hp(D, alphas), key=key, n_seeds=1000,
                          n_steps=60, record_every=10, metrics={"loss": _loss})
    mean, se, n = res.stats(res.records["loss"])
    assert np.all(n == 1000)
    x0 = np.asarray(tb.x0, np.float64)
    exact = np.stack([qt.expected_loss(A, C, a, x0, res.record_steps) for a in alphas])
    z = critical_z(n_comparisons=exact[:, 1:].size)  # Bonferroni, family-wise 1e-4, >= 4
    # rule: |mean − exact| <= z·SE + 1e-5·exact (float32 round-off); step 0 is deterministic
    assert np.all(np.abs(mean - exact) <= z * se + 1e-5 * exact)


def test_window_means_average_the_iterates(key):
    tb, A, C, D = _setup()
    res = engine.simulate(tb, optimizers.make_noisy_sgd, _hp(D, [1.0]), key=key, n_seeds=4,
                          n_steps=12, record_every=3, metrics={"loss": _loss},
                          window_metrics={"wloss": _loss})
    every = engine.simulate(tb, optimizers.make_noisy_sgd, _hp(D, [1.0]), key=key, n_seeds=4,
                            n_steps=12, record_every=1, metrics={"loss": _loss})
    per_step = every.records["loss"][..., :-1].reshape(1, 4, 4, 3).mean(-1)  # x_0 … x_11
    np.testing.assert_allclose(res.windows["wloss"], per_step, rtol=1e-6)  # float32 sums of 3


def test_new_hyperparameter_values_do_not_recompile(key):
    tb, A, C, D = _setup()
    kw = dict(key=key, n_seeds=8, n_steps=20, record_every=5, metrics={"loss": _loss})
    engine.simulate(tb, optimizers.make_noisy_sgd, _hp(D, [0.3, 0.6]), **kw)
    before = engine.trace_count()
    engine.simulate(tb, optimizers.make_noisy_sgd, _hp(0.5 * D, [0.9, 1.2]), **kw)
    engine.simulate(tb, optimizers.make_noisy_sgd, _hp(D, [0.1, 1.9]), key=jax.random.key(7),
                    n_seeds=8, n_steps=20, record_every=5, metrics={"loss": _loss})
    assert engine.trace_count() == before


def _roundoff_bound(res, d):
    """The engine's stated cross-shape guarantee for a contraction (|1 − αλ| ≤ 1 here):
    |Δx| ≤ n_steps·(d + 1)·u·max|x| — each step's length-d dot product adds at most
    d·u relative error (plus one rounding of the update) and the contraction does not
    amplify earlier errors. A float round-off bound, not a fitted tolerance."""
    u = np.finfo(np.float32).eps
    return res.metadata["n_steps"] * (d + 1) * u * np.max(np.abs(res.final_params))


@pytest.mark.parametrize("d", [3, 6, 16])
def test_chunking_changes_results_at_most_by_round_off(key, d):
    tb, A, C, D = _setup(d=d)
    kw = dict(key=key, n_seeds=24, n_steps=40, record_every=10, metrics={"loss": _loss},
              return_final=True)
    ref = engine.simulate(tb, optimizers.make_noisy_sgd, _hp(D, [0.5, 1.0]), **kw)
    for chunk in (5, 16):  # chunk sizes that do not divide the 24 seeds
        other = engine.simulate(tb, optimizers.make_noisy_sgd, _hp(D, [0.5, 1.0]), seed_chunk=chunk, **kw)
        assert np.max(np.abs(ref.final_params - other.final_params)) <= _roundoff_bound(ref, d)
        # the same call again (same compiled shape, same inputs): bitwise
        again = engine.simulate(tb, optimizers.make_noisy_sgd, _hp(D, [0.5, 1.0]), seed_chunk=chunk, **kw)
        assert np.array_equal(other.final_params, again.final_params)


def test_adding_a_configuration_keeps_the_others(key):
    tb, A, C, D = _setup()
    kw = dict(key=key, n_seeds=6, n_steps=10, record_every=5, metrics={"loss": _loss}, return_final=True)
    two = engine.simulate(tb, optimizers.make_noisy_sgd, _hp(D, [0.5, 1.0]), **kw)
    three = engine.simulate(tb, optimizers.make_noisy_sgd, _hp(D, [0.5, 1.0, 1.5]), **kw)
    # same random numbers; another compiled shape, so equal up to the stated round-off
    assert np.max(np.abs(two.final_params - three.final_params[:2])) <= _roundoff_bound(two, 8)
    # and not merely close by accident: another key moves them far beyond round-off
    other = engine.simulate(tb, optimizers.make_noisy_sgd, _hp(D, [0.5, 1.0]),
                            **dict(kw, key=jax.random.key(99)))
    assert np.max(np.abs(two.final_params - other.final_params)) > 1e3 * _roundoff_bound(two, 8)


_DEVICE_SCRIPT = textwrap.dedent("""
    import sys, jax, numpy as np
    from simulations import engine, optimizers
    from simulations.testbeds import make_noisy_quadratic
    from theory import quadratic as qt
    tb = make_noisy_quadratic(d=8, x0_norm=2.0, key=jax.random.key(3))
    D = optimizers.covariance_factor(qt.structured_covariance(np.asarray(tb.hessian), "full", 0.05))
    hp = {"learning_rate": np.array([0.5, 1.0]), "noise_factor": np.stack([D, D])}
    r = engine.simulate(tb, optimizers.make_noisy_sgd, hp, key=jax.random.key(0), n_seeds=33,
                        n_steps=25, record_every=5, metrics={"l": lambda t, p: t.loss(p)},
                        return_final=True)
    assert r.metadata["devices"] == jax.device_count(), r.metadata
    np.save(sys.argv[1], r.final_params)
""")


def test_one_and_two_devices_agree_to_round_off(tmp_path):
    out = {}
    for n_dev in (1, 2):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n_dev}",
                   JAX_PLATFORMS="cpu")
        path = tmp_path / f"final{n_dev}.npy"
        subprocess.run([sys.executable, "-c", _DEVICE_SCRIPT, str(path)], check=True, env=env)
        out[n_dev] = np.load(path)
    # d = 8, 25 steps, contraction: the engine's stated round-off guarantee (see _roundoff_bound)
    bound = 25 * (8 + 1) * np.finfo(np.float32).eps * np.max(np.abs(out[1]))
    assert np.max(np.abs(out[1] - out[2])) <= bound


def test_divergent_trajectories_are_flagged_and_excluded(key):
    tb, A, C, D = _setup()
    unstable = 2.0 / np.linalg.eigvalsh(A)[-1] * 1.5  # |1 − αλ_max| = 2: blows up
    res = engine.simulate(tb, optimizers.make_noisy_sgd, _hp(D, [0.5, unstable]), key=key,
                          n_seeds=16, n_steps=400, record_every=100, metrics={"loss": _loss})
    assert np.all(res.diverged_at[0] == -1)
    assert np.all(res.diverged_at[1] > 0) and np.all(res.diverged_at[1] <= 400)
    assert list(res.n_diverged) == [0, 16]
    mean, se, n = res.stats(res.records["loss"])
    assert np.all(np.isfinite(mean[0])) and np.all(n[0] == 16)
    assert np.all(n[1] == 0)  # nothing left to average: reported as n = 0, not a NaN mean of data


def test_common_random_numbers_share_noise(key):
    tb, A, C, D = _setup(x0_norm=0.0)
    res = engine.simulate(tb, optimizers.make_noisy_sgd, _hp(D, [1.0, 1.0]), key=key, n_seeds=4,
                          n_steps=5, metrics={"loss": _loss}, return_final=True,
                          common_random_numbers=True)
    # the same noise in both configurations: equal up to round-off (rows of one batched
    # product; the stated guarantee), while independent streams differ at O(1)
    assert np.max(np.abs(res.final_params[0] - res.final_params[1])) <= _roundoff_bound(res, 8)
    indep = engine.simulate(tb, optimizers.make_noisy_sgd, _hp(D, [1.0, 1.0]), key=key, n_seeds=4,
                            n_steps=5, metrics={"loss": _loss}, return_final=True)
    assert not np.array_equal(indep.final_params[0], indep.final_params[1])


def test_float64_is_scoped_to_the_call(key):
    tb, A, C, D = _setup()
    res = engine.simulate(tb, optimizers.make_noisy_sgd, _hp(D, [1.0]), key=key, n_seeds=2,
                          n_steps=5, metrics={"loss": _loss}, return_final=True, dtype=np.float64)
    assert res.final_params.dtype == np.float64
    assert not jax.config.jax_enable_x64


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_seeds=0), r"n_seeds = 0 .*>= 1"),
    (dict(n_steps=10, record_every=3), r"record_every = 3 .*divisor of n_steps = 10"),
    (dict(metrics={}), r"at least one metric"),
    (dict(hyperparams={"learning_rate": np.ones(2), "noise_factor": np.zeros((3, 8, 8))}),
     r"leading \(config\) axes"),
    (dict(hyperparams={"learning_rate": np.array([np.nan])}), r"finite values"),
])
def test_bad_input_fails_before_compiling(key, kwargs, match):
    tb, A, C, D = _setup()
    args = dict(hyperparams=_hp(D, [1.0]), key=key, n_seeds=2, n_steps=10, record_every=5,
                metrics={"loss": _loss})
    args.update(kwargs)
    before = engine.trace_count()
    with pytest.raises(InvalidParameter, match=match):
        engine.simulate(tb, optimizers.make_noisy_sgd, **args)
    assert engine.trace_count() == before


def test_config_grid_order():
    grid, shape = engine.config_grid(a=[1, 2], b=[10, 20, 30])
    assert shape == (2, 3)
    assert list(grid["a"]) == [1, 1, 1, 2, 2, 2] and list(grid["b"]) == [10, 20, 30] * 2


# ------------------------------------------- gradient oracles that read hyperparameters
import dataclasses  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class _ScaledGradient:
    """g = scale · w after step ``switch``, else 0: the oracle reads hparams and step."""

    w0: jax.Array
    gradient_uses_hyperparams = True

    def init(self, *, key=None):
        return self.w0

    def gradient(self, params, *, key, hparams, step):
        return jnp.where(step >= hparams["switch"], hparams["scale"] * params, 0.0)

    def loss(self, params):
        return 0.5 * jnp.sum(params ** 2)


def _plain_sgd(hparams, *, key):
    return optax.sgd(1.0)


def test_gradient_oracle_receives_hyperparameters_and_step(key):
    tb = _ScaledGradient(w0=np.ones(2))
    hp = {"scale": np.array([0.5, 0.25]), "switch": np.array([3.0, 1.0])}
    kw = dict(key=key, n_seeds=2, n_steps=4, record_every=1, metrics={"loss": _loss})
    before = engine.trace_count()
    res = engine.simulate(tb, _plain_sgd, hp, **kw)
    # w_{t+1} = (1 − scale·[t ≥ switch]) w_t, from w_0 = 1: loss = 0.5·2·w_t²
    w = np.ones((2, 5))
    for c, (s, k) in enumerate(zip(hp["scale"], hp["switch"])):
        for t in range(4):
            w[c, t + 1] = w[c, t] * (1 - s * (t >= k))
    np.testing.assert_allclose(res.records["loss"][:, 0], w ** 2, rtol=1e-6)  # float32
    engine.simulate(tb, _plain_sgd, {"scale": np.array([0.1, 0.2]), "switch": np.array([0.0, 2.0])}, **kw)
    assert engine.trace_count() == before + 1  # new values of a traced hparam: no recompile


def _vector(tb, p):
    return jnp.stack([p[0], 2.0 * p[0]])


def test_vector_metrics_keep_their_axes_in_window_average(key):
    tb = _ScaledGradient(w0=np.ones(2))
    res = engine.simulate(tb, _plain_sgd, {"scale": np.array([0.5]), "switch": np.array([0.0])}, key=key,
                          n_seeds=2, n_steps=4, record_every=1, metrics={"v": _vector},
                          window_metrics={"wv": _vector})
    assert res.records["v"].shape == (1, 2, 5, 2)
    # w_t = 0.5^t: windows of one step hold x_t, the last half is x_2, x_3
    np.testing.assert_allclose(res.window_average("wv", 0.5)[0, 0], [0.1875, 0.375], rtol=1e-6)
