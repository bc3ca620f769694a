"""P/Q data (Li, Wei & Ma 2019, CLAIMS.md §4) as a testbed: a two-layer ReLU network
trained by real minibatch SGD, with the learning-rate schedule and an annealed
pre-activation noise as traced hyperparameters.

Model (both layers trained, no biases, so f is positively homogeneous):

    f(x) = Σ_j u_j relu(⟨w_j, x⟩ + ε_j),   ε_j ~ N(0, s_t²) while training,
    L_B(θ) = (1/B) Σ_{i∈batch} log(1 + exp(−y_i f(x_i))) + (λ/2)‖θ‖²,

with the batch drawn with replacement (``jax.random.randint``). The hyperparameters of
one configuration (all traced, so the three arms and any sweep of values share one
compiled program):

* ``eta1``, ``eta2``, ``anneal_step``: the step size is η₁ for t < anneal_step and η₂
  after (:func:`make_annealed_sgd`);
* ``noise_std``: s_t = noise_std for t < anneal_step and 0 after (the paper's
  mitigation: Gaussian noise on the pre-activations, annealed with the learning rate).

Arms: large → anneal (η₁ > η₂, s = 0); small (η₁ = η₂, s = 0); small + noise
(η₁ = η₂, s > 0). Metrics: per-type training / test accuracy (vectors over
``theory.large_lr.TYPES``) and the Q-margin κ = f(z) − ½[f(z + ζ) + f(z − ζ)] (x₁ = 0).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from simulations.keys import numpy_rng
from theory import large_lr as th
from theory import validation as check


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PQTestbed:
    """Training and test sets of the P/Q distribution and the network's sizes.

    Attributes:
      x_train, y_train: (n, 2d), (n,) with y ∈ {±1}.
      type_weights_train: (3, n) averaging weights of each type (rows sum to 1, or 0 if
        the type is absent).
      x_test, y_test, type_weights_test: the same for the (stratified) test set.
      q_points: (3, 2d) the points (0, z), (0, z + ζ), (0, z − ζ) defining κ.
      l2: λ of the ℓ2 penalty.
      width: hidden units m (static).
      batch_size: B (static).
    """

    x_train: jax.Array
    y_train: jax.Array
    type_weights_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    type_weights_test: jax.Array
    q_points: jax.Array
    l2: jax.Array
    width: int = dataclasses.field(metadata=dict(static=True), default=128)
    batch_size: int = dataclasses.field(metadata=dict(static=True), default=16)

    gradient_uses_hyperparams = True

    @property
    def n(self) -> int:
        return int(np.shape(self.x_train)[0])

    def init(self, *, key):
        """He initialization: W₁ ~ N(0, 2/(2d)), u ~ N(0, 1/m)."""
        k1, k2 = jax.random.split(key)
        n_in = self.x_train.shape[1]
        return {"w1": jax.random.normal(k1, (n_in, self.width)) * jnp.sqrt(2.0 / n_in),
                "w2": jax.random.normal(k2, (self.width,)) * jnp.sqrt(1.0 / self.width)}

    def _loss(self, params, x, y, noise):
        f = forward(params, x, noise)
        reg = 0.5 * self.l2 * sum(jnp.sum(p ** 2) for p in jax.tree_util.tree_leaves(params))
        return jnp.mean(jax.nn.softplus(-y * f)) + reg

    def gradient(self, params, *, key, hparams, step):
        """∇L_B at a batch of B indices drawn with replacement, with pre-activation noise
        of standard deviation noise_std·[step < anneal_step]."""
        k_idx, k_noise = jax.random.split(key)
        idx = jax.random.randint(k_idx, (self.batch_size,), 0, self.x_train.shape[0])
        std = hparams["noise_std"] * (step < hparams["anneal_step"])
        noise = std * jax.random.normal(k_noise, (self.batch_size, self.width))
        return jax.grad(self._loss)(params, self.x_train[idx], self.y_train[idx], noise)

    def loss(self, params):
        """The full training objective (no noise)."""
        return self._loss(params, self.x_train, self.y_train, 0.0)


def forward(params, x, noise=0.0):
    """f(x) = relu(x W₁ + ε) u for a batch x of shape (m, 2d)."""
    return jax.nn.relu(x @ params["w1"] + noise) @ params["w2"]


def make_annealed_sgd(hparams, *, key):
    """Plain SGD with step size η₁ for t < anneal_step and η₂ after (traced values)."""
    del key
    return optax.sgd(lambda t: jnp.where(t < hparams["anneal_step"], hparams["eta1"],
                                         hparams["eta2"]))


# ------------------------------------------------------------------------- metrics
def train_accuracy(tb: PQTestbed, params):
    """(3,) training accuracy of each type (P-only, Q-only, both)."""
    return tb.type_weights_train @ jnp.where(tb.y_train * forward(params, tb.x_train) > 0, 1.0, 0.0)


def test_accuracy(tb: PQTestbed, params):
    """(3,) test accuracy of each type."""
    return tb.type_weights_test @ jnp.where(tb.y_test * forward(params, tb.x_test) > 0, 1.0, 0.0)


def q_margin(tb: PQTestbed, params):
    """κ = f(z) − ½[f(z + ζ) + f(z − ζ)] (0 for any affine f: the midpoint identity)."""
    f = forward(params, tb.q_points)
    return f[0] - 0.5 * (f[1] + f[2])


METRICS = {"train_acc": train_accuracy, "test_acc": test_accuracy, "kappa": q_margin}


# ------------------------------------------------------------------------ builder
def _type_weights(kind):
    w = (kind[None, :] == np.arange(3)[:, None]).astype(np.float64)
    return w / np.maximum(w.sum(axis=1, keepdims=True), 1.0)


def make_pq_testbed(spec: th.PQSpec, *, key, n: int = 256, n_test: int = 1500,
                    width: int = 128, batch_size: int = 16, l2: float = 1e-4) -> PQTestbed:
    """Draw the geometry, n training and n_test stratified test examples from ``key``.

    Args:
      spec: the distribution's constants (:class:`theory.large_lr.PQSpec`).
      key: typed key; the data are a deterministic function of it.
      n, n_test: training and test set sizes; width: hidden units; batch_size: B ≤ n;
      l2: λ ≥ 0.
    """
    if not isinstance(spec, th.PQSpec):
        check.fail("spec", 0, "a theory.large_lr.PQSpec")
    n = check.integer_at_least("n", n, 2)
    n_test = check.integer_at_least("n_test", n_test, 3)
    width = check.integer_at_least("width", width, 1)
    batch_size = check.integer_at_least("batch_size", batch_size, 1)
    if batch_size > n:
        check.fail("batch_size", batch_size, f"1 <= batch_size <= n = {n}")
    l2 = check.nonnegative("l2", l2)
    rng = numpy_rng(key)
    geo = th.make_geometry(spec, rng)
    train = th.sample_pq(spec, geo, n, rng)
    test = th.sample_pq(spec, geo, n_test, rng, stratified=True)
    zero = np.zeros(spec.d)
    q_points = np.stack([np.concatenate([zero, geo.z + s * geo.zeta]) for s in (0.0, 1.0, -1.0)])
    return PQTestbed(x_train=train.x, y_train=train.y, type_weights_train=_type_weights(train.kind),
                     x_test=test.x, y_test=test.y, type_weights_test=_type_weights(test.kind),
                     q_points=q_points, l2=np.float64(l2), width=width, batch_size=batch_size)
