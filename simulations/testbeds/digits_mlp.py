"""The digits two-layer network as a finite-sum testbed with true minibatch sampling.

F(w) = (1/n) Σ_{i ≤ n} ℓ(w; x_i, y_i), ℓ the softmax cross-entropy of the two-layer ReLU
network of :mod:`simulations.testbeds.digits` on its training split (n = 1079 images).

* :class:`DigitsMLP` — one batch size B (a static shape): the stochastic gradient is the
  exact gradient of the mean loss over B indices drawn uniformly *with replacement*
  (``jax.random.randint``), so E g = ∇F and Cov g = Σ(w)/B, Σ the per-example gradient
  covariance: real minibatch noise, not a Gaussian model of it.
* :class:`DigitsMicrobatch` — every batch size in one program: each engine step draws a
  micro-batch of b examples (with replacement) and the optimizer accumulates k of them
  (:func:`simulations.optimizers.accumulate`, k traced), so one optimizer step sees a
  minibatch of B = kb drawn with replacement; with ``full_batch`` the k = ⌈n/b⌉
  micro-batches of a step are the consecutive b-blocks of the training split (the last one
  masked), so the step is exact gradient descent on F. At a fixed number of micro-steps M
  every batch size processes the same number of examples (M·b): a fixed epoch budget.
  :func:`train_batch_sweep` runs methods × B × η × seeds this way, one compiled program per
  optimizer family (SNGM/MSGD/SGD share one; LARS and LAMB one each).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from simulations import engine, optimizers
from simulations.testbeds import digits
from theory import validation as check

#: the optimizers of :func:`train_batch_sweep`; SNGM, MSGD and SGD (MSGD with β = 0) share
#: one compiled program (:func:`simulations.optimizers.make_accumulated_momentum`).
BATCH_METHODS = ("sngm", "msgd", "sgd", "lars", "lamb")
_PROGRAMS = {"sngm": (optimizers.make_accumulated_momentum, 0, True),
             "msgd": (optimizers.make_accumulated_momentum, 1, True),
             "sgd": (optimizers.make_accumulated_momentum, 1, False),
             "lars": (optimizers.make_accumulated_lars, 0, True),
             "lamb": (optimizers.make_accumulated_lamb, 0, True)}


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




# ------------------------------------------------- every batch size in one program
@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DigitsMicrobatch:
    """The digits splits with a micro-batch oracle (see the module docstring).

    The gradient of engine step t is ∇ Σ_i w_i ℓ_i over b indices: drawn uniformly with
    replacement with w_i = 1/b, or, when ``hparams["full_batch"]`` is set, the positions
    jb, …, jb + b − 1 of the training split with j = t mod k, k = ``hparams["accumulate"]``
    = ⌈n/b⌉, and w_i = k/n (0 beyond n): the mean of the k micro-gradients of one
    accumulation cycle is then exactly ∇F. Both hyperparameters are traced.

    Attributes:
      x_train, y_train, x_val, y_val, x_test, y_test: the splits (as :class:`DigitsMLP`).
      micro_batch: b (static).
      width: hidden units (static).
    """

    x_train: jax.Array
    y_train: jax.Array
    x_val: jax.Array
    y_val: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    micro_batch: int = dataclasses.field(metadata=dict(static=True), default=8)
    width: int = dataclasses.field(metadata=dict(static=True), default=64)
    gradient_uses_hyperparams = True

    @property
    def n_train(self) -> int:
        return int(np.shape(self.y_train)[0])

    @property
    def full_accumulate(self) -> int:
        """k = ⌈n/b⌉: micro-batches per full-batch step."""
        return -(-self.n_train // self.micro_batch)

    def init(self, *, key):
        return init_mlp_flat(key=key, n_in=int(np.shape(self.x_train)[1]), width=self.width)

    def gradient(self, params, *, key, hparams, step):
        n, b = self.y_train.shape[0], self.micro_batch
        k = hparams["accumulate"]
        full = hparams["full_batch"] > 0
        pos = (step % k) * b + jnp.arange(b)
        idx = jnp.where(full, jnp.minimum(pos, n - 1), jax.random.randint(key, (b,), 0, n))
        dtype = self.x_train.dtype
        weights = jnp.where(full, (pos < n) * (k / n), 1.0 / b).astype(dtype)

        def weighted_loss(p):
            logp = jax.nn.log_softmax(digits.mlp_logits(p, self.x_train[idx]))
            return -jnp.sum(weights * jnp.take_along_axis(logp, self.y_train[idx][:, None], axis=1)[:, 0])

        return jax.grad(weighted_loss)(params)

    def loss(self, params):
        return digits.cross_entropy(params, self.x_train, self.y_train)


def make_digits_microbatch(*, micro_batch: int = 8, width: int = 64, split_seed: int = 0) -> DigitsMicrobatch:
    """The testbed on :func:`digits.load_digits_splits` (seed ``split_seed``)."""
    splits = digits.load_digits_splits(seed=split_seed)
    n = len(splits.train.labels)
    if isinstance(micro_batch, bool) or not (float(micro_batch) == int(micro_batch) and 1 <= int(micro_batch) <= n):
        check.fail("micro_batch", micro_batch, f"an integer 1 <= micro_batch <= n = {n}")
    return DigitsMicrobatch(x_train=splits.train.features, y_train=splits.train.labels,
                            x_val=splits.validation.features, y_val=splits.validation.labels,
                            x_test=splits.test.features, y_test=splits.test.labels,
                            micro_batch=int(micro_batch), width=check.integer_at_least("width", width, 1))


@jax.jit
def _accuracies(params, x, y):
    """(config, seed) accuracies of a batch of final parameters."""
    return jax.vmap(jax.vmap(lambda p: digits.accuracy(p, x, y)))(params)


def check_batch_methods(methods) -> tuple:
    methods = tuple(methods)
    if not methods or len(set(methods)) != len(methods):
        check.fail("methods", 0, f"a non-empty subset of {BATCH_METHODS} without repeats")
    for m in methods:
        if m not in BATCH_METHODS:
            check.fail("method", m, f"one of {BATCH_METHODS}")
    return methods


def check_accumulation(testbed: DigitsMicrobatch, accumulate, full_batch: bool, n_micro_steps: int,
                       record_every: int) -> np.ndarray:
    """The k of each batch size (k = ⌈n/b⌉ appended for the full batch), each dividing the
    number of micro-steps M (so every B takes an integer number T = M/k of steps) and
    ``record_every`` dividing M."""
    ks = np.asarray(accumulate)
    if ks.ndim != 1 or (ks.size == 0 and not full_batch):
        check.fail("accumulate", ks, "a 1-d list of micro-batches per step k >= 1")
    for k in ks:
        if not (float(k) == int(k) and k >= 1):
            check.fail("k", k, "an integer number of micro-batches per step k >= 1")
    ks = np.concatenate([ks, [testbed.full_accumulate] if full_batch else []]).astype(np.int64)
    if np.any(np.diff(ks) <= 0):
        check.fail("accumulate", ks, f"increasing k below the full batch's {testbed.full_accumulate}")
    M = check.integer_at_least("n_micro_steps", n_micro_steps, 1)
    for k in ks:
        if M % int(k):
            check.fail("n_micro_steps", M, f"a multiple of every k (T = M/k steps), k = {int(k)}")
    r = check.integer_at_least("record_every", record_every, 1)
    if M % r:
        check.fail("record_every", r, f"a divisor of n_micro_steps = {M}")
    return ks


def train_batch_sweep(testbed: DigitsMicrobatch, *, methods, accumulate, full_batch: bool, etas, key,
                      momentum: float, n_micro_steps: int, record_every: int, n_seeds: int) -> dict:
    """Train every (method, B, η, seed) for M micro-steps (a fixed epoch budget).

    Args:
      testbed: a :class:`DigitsMicrobatch`.
      methods: subset of :data:`BATCH_METHODS` (SGD is MSGD with momentum 0).
      accumulate: k per batch size below the full batch (B = k·b); ``full_batch`` appends
        the full batch (exact gradient descent, k = ⌈n/b⌉).
      etas: (method, B, η) learning rates (> 0).
      key: typed PRNG key; every method and η sees the same initialization and micro-batch
        stream for seed s (common random numbers), so differences are paired per seed.
      momentum: β of SNGM, MSGD, LARS and LAMB's b1 (0 <= β < 1).
      n_micro_steps: M; every B takes T = M/k optimizer steps (M·b examples).
      record_every: validation accuracy every r micro-steps.
      n_seeds: trajectories per configuration.

    Returns a dict: ``val`` (method, B, η, seed, record) validation accuracy at micro-steps
    ``record_steps`` (a diverged run counts 0 from its divergence on); ``test`` and
    ``val_final`` (method, B, η, seed) at the end; ``diverged``; ``steps_per_record``
    (B, record) optimizer steps taken by each record (⌊micro-steps/k⌋); ``accumulate``
    (B,); ``compilations`` (engine traces) and ``wall_seconds``.
    """
    methods = check_batch_methods(methods)
    beta = check.in_range("momentum", momentum, 0.0, 1.0, closed_low=True, closed_high=False)
    ks = check_accumulation(testbed, accumulate, full_batch, n_micro_steps, record_every)
    etas = np.asarray(etas, np.float64)
    if etas.shape[:2] != (len(methods), ks.size) or etas.ndim != 3 or etas.shape[2] == 0:
        check.fail("etas", etas, f"a ({len(methods)}, {ks.size}, n_eta) grid of learning rates")
    if not np.all(np.isfinite(etas) & (etas > 0)):
        check.fail("etas", etas, "learning rates eta > 0")
    n_seeds = check.integer_at_least("n_seeds", n_seeds, 1)
    NB, NE, M, r = ks.size, etas.shape[2], int(n_micro_steps), int(record_every)
    full = np.zeros(NB, np.int32)
    full[-1] = int(bool(full_batch))
    shape = (len(methods), NB, NE, n_seeds)
    out = {name: np.zeros(shape + ((M // r + 1,) if name == "val" else ()))
           for name in ("val", "test", "val_final")}
    out["diverged"] = np.zeros(shape, bool)
    before, wall = engine.trace_count(), 0.0
    groups: dict = {}
    for i, m in enumerate(methods):
        groups.setdefault(_PROGRAMS[m][0], []).append(i)
    for make, rows in groups.items():
        grid, gshape = engine.config_grid(row=np.asarray(rows), batch=np.arange(NB), eta=np.arange(NE))
        mi, bi, ei = grid["row"], grid["batch"], grid["eta"]
        hp = dict(method=np.array([_PROGRAMS[methods[i]][1] for i in mi], np.int32),
                  momentum=np.array([beta if _PROGRAMS[methods[i]][2] else 0.0 for i in mi]),
                  learning_rate=etas[mi, bi, ei], accumulate=ks[bi].astype(np.int32), full_batch=full[bi])
        res = engine.simulate(testbed, make, hp, key=key, n_seeds=n_seeds, n_steps=M, record_every=r,
                              metrics={"val": val_accuracy}, common_random_numbers=True, return_final=True)
        wall += res.metadata["wall_seconds"]
        ok = res.valid
        steps = res.record_steps[None, None, :]
        val = np.where(steps < np.where(ok, M + 1, res.diverged_at)[..., None], res.records["val"], 0.0)
        finals = {"test": _accuracies(res.final_params, testbed.x_test, testbed.y_test),
                  "val_final": _accuracies(res.final_params, testbed.x_val, testbed.y_val)}
        for j, i in enumerate(rows):
            sl = slice(j * NB * NE, (j + 1) * NB * NE)
            out["val"][i] = val[sl].reshape(NB, NE, n_seeds, -1)
            out["diverged"][i] = ~ok[sl].reshape(NB, NE, n_seeds)
            for name, acc in finals.items():
                out[name][i] = np.where(ok[sl], np.asarray(acc, np.float64)[sl], 0.0).reshape(NB, NE, n_seeds)
    record_steps = np.arange(0, M + 1, r)
    out.update(record_steps=record_steps, accumulate=ks, steps_per_record=record_steps[None, :] // ks[:, None],
               compilations=engine.trace_count() - before, wall_seconds=wall)
    return out
