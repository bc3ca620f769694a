"""The digits two-layer network as a finite-sum testbed with true minibatch sampling.

For the test-accuracy claim of SNGM (Zhao, Shi, Xie, Li, arXiv 2007.13985):
F(w) = (1/n) Σ_{i ≤ n} ℓ(w; x_i, y_i), ℓ the softmax cross-entropy of the two-layer ReLU
network of :mod:`simulations.testbeds.digits` on its training split (n = 1079 images).
The stochastic gradient of one step is the exact gradient of the mean loss over a
minibatch of B indices drawn uniformly *with replacement* from the training split
(``jax.random.randint``), so E g = ∇F and Cov g = Σ(w)/B, Σ the per-example gradient
covariance: real minibatch noise, not a Gaussian model of it.

:func:`train_grid` runs SNGM, MSGD and optax's LARS over a learning-rate grid per
method × seeds as ONE engine call: the method is a traced index
(:func:`simulations.optimizers.make_large_batch_method`) and η a traced hyperparameter, so
a new grid never recompiles (a batch size B is a shape: one compilation per B and grid
size). It returns the final validation / test accuracies per (method, η, seed). With ``common_random_numbers`` seed s has the same
initialization and the same sequence of minibatches for every η and every method (the
optimizers draw no randomness), so differences between methods are paired per seed.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from simulations import engine, optimizers
from simulations.testbeds import digits
from theory import validation as check

METHODS = optimizers.LARGE_BATCH_METHODS  # ("sngm", "msgd", "lars")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DigitsMLP:
    """The digits splits as arrays and the minibatch size (static: it is a shape).

    Attributes:
      x_train, y_train: (n, 64) features in [0, 1] and (n,) integer labels.
      x_val, y_val, x_test, y_test: the validation and test splits.
      batch_size: B, 1 ≤ B ≤ n (static).
      width: hidden units of the network (static).
    """

    x_train: jax.Array
    y_train: jax.Array
    x_val: jax.Array
    y_val: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    batch_size: int = dataclasses.field(metadata=dict(static=True), default=256)
    width: int = dataclasses.field(metadata=dict(static=True), default=64)

    @property
    def n_train(self) -> int:
        return int(np.shape(self.y_train)[0])

    def init(self, *, key):
        """He initialization, as :func:`digits.init_mlp`, from one normal draw (see
        :func:`init_mlp_flat`)."""
        return init_mlp_flat(key=key, n_in=int(np.shape(self.x_train)[1]), width=self.width)

    def gradient(self, params, *, key):
        """∇ of the mean cross-entropy over B training indices drawn uniformly with
        replacement: an unbiased estimate of ∇F with covariance Σ(w)/B."""
        idx = jax.random.randint(key, (self.batch_size,), 0, self.y_train.shape[0])
        return jax.grad(digits.cross_entropy)(params, self.x_train[idx], self.y_train[idx])

    def loss(self, params):
        """F(w): the mean cross-entropy over the whole training split."""
        return digits.cross_entropy(params, self.x_train, self.y_train)


def init_mlp_flat(*, key, n_in: int = 64, width: int = 64, n_out: int = digits.N_CLASSES):
    """The distribution of :func:`digits.init_mlp` (W₁ ~ N(0, 2/n_in), W₂ ~ N(0, 1/width),
    biases 0) drawn as ONE standard normal vector of n_in·width + width·n_out entries,
    split and scaled. Same law, other numbers than ``init_mlp`` at the same key. Reason:
    on CPU, XLA compiles two ``jax.random.normal`` draws under the engine's two vmaps an
    order of magnitude slower (tens of seconds) than one draw of their total size.
    """
    z = jax.random.normal(key, (n_in * width + width * n_out,))
    return {"w1": z[:n_in * width].reshape(n_in, width) * jnp.sqrt(2.0 / n_in),
            "b1": jnp.zeros(width),
            "w2": z[n_in * width:].reshape(width, n_out) * jnp.sqrt(1.0 / width),
            "b2": jnp.zeros(n_out)}


def make_digits_mlp(batch_size: int, *, width: int = 64, split_seed: int = 0) -> DigitsMLP:
    """The testbed on :func:`digits.load_digits_splits` (seed ``split_seed``); B ≤ n."""
    splits = digits.load_digits_splits(seed=split_seed)
    n = len(splits.train.labels)
    if isinstance(batch_size, bool) or not (np.isfinite(batch_size) and float(batch_size) == int(batch_size)
                                            and 1 <= int(batch_size) <= n):
        check.fail("B", batch_size, f"an integer batch size 1 <= B <= n = {n} (training examples)")
    width = check.integer_at_least("width", width, 1)
    return DigitsMLP(x_train=splits.train.features, y_train=splits.train.labels,
                     x_val=splits.validation.features, y_val=splits.validation.labels,
                     x_test=splits.test.features, y_test=splits.test.labels,
                     batch_size=int(batch_size), width=width)


# ------------------------------------------------------------------------ metrics
def val_accuracy(testbed, params):
    return digits.accuracy(params, testbed.x_val, testbed.y_val)


def test_accuracy(testbed, params):
    return digits.accuracy(params, testbed.x_test, testbed.y_test)


test_accuracy.__test__ = False  # a metric, not a pytest test


def check_methods(methods) -> tuple:
    methods = tuple(methods)
    if not methods:
        check.fail("methods", 0, f"a non-empty subset of {METHODS}")
    for m in methods:
        if m not in METHODS:
            check.fail("method", m, f"one of {METHODS}")
    return methods


def train_grid(testbed: DigitsMLP, etas, *, key, beta: float, n_steps: int, n_seeds: int,
               methods=METHODS, seed_chunk: int | None = None) -> dict:
    """Train every (method, η, seed) in ONE engine call with common random numbers.

    Args:
      testbed: a :class:`DigitsMLP`.
      etas: (method, η) learning-rate grid, one row per method (each value > 0).
      key: typed PRNG key.
      beta: momentum 0 ≤ β < 1 (all methods).
      n_steps: T iterations (T·B gradient computations for every method).
      n_seeds: trajectories per (method, η); seed s has the same initialization and
        minibatch sequence in every configuration.
      methods: subset of :data:`METHODS`, one per row of ``etas``.
      seed_chunk: seeds per compiled call (memory and progress only; see the engine).

    Returns a dict: ``val``/``test`` (method, η, seed) accuracies of the final iterate w_T
    (a run that became non-finite counts as accuracy 0), ``diverged`` (method, η, seed),
    ``wall_seconds`` and ``compilations`` (engine traces during the call).
    """
    methods = check_methods(methods)
    beta = check.in_range("beta", beta, 0.0, 1.0, closed_low=True, closed_high=False)
    etas = np.asarray(etas, dtype=np.float64)
    if etas.ndim != 2 or etas.shape[0] != len(methods) or etas.shape[1] == 0:
        check.fail("etas", etas, f"a ({len(methods)}, n_eta) grid of learning rates, one row per method")
    if not np.all(np.isfinite(etas) & (etas > 0)):
        check.fail("etas", etas, "learning rates eta > 0")
    n_steps = check.integer_at_least("n_steps", n_steps, 1)
    n_seeds = check.integer_at_least("n_seeds", n_seeds, 1)
    M, E = etas.shape
    grid, _ = engine.config_grid(method=np.arange(M), eta=np.arange(E))
    mi, ei = grid["method"], grid["eta"]
    index = np.array([METHODS.index(m) for m in methods], dtype=np.int32)
    hp = dict(method=index[mi], learning_rate=etas[mi, ei], momentum=np.full(mi.size, beta))
    before = engine.trace_count()
    res = engine.simulate(testbed, optimizers.make_large_batch_method, hp, key=key, n_seeds=n_seeds, n_steps=n_steps,
                          record_every=n_steps, seed_chunk=seed_chunk, common_random_numbers=True,
                          metrics={"val": val_accuracy, "test": test_accuracy})
    shape = (M, E, n_seeds)
    ok = res.valid.reshape(shape)
    final = {k: res.records[k][..., -1].reshape(shape).astype(np.float64) for k in ("val", "test")}
    return dict(val=np.where(ok, final["val"], 0.0), test=np.where(ok, final["test"], 0.0),
                diverged=~ok, wall_seconds=res.metadata["wall_seconds"],
                compilations=engine.trace_count() - before)
