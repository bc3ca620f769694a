"""The P/Q data of Li, Wei & Ma (NeurIPS 2019, arXiv 1907.04595) as a testbed: a
two-layer ReLU network trained by real minibatch SGD, with an annealed pre-activation
noise as a traced hyperparameter.

Model (both layers trained, no biases, so f is positively homogeneous):

    f(x) = Σ_j u_j relu(⟨w_j, x⟩ + ε_j),   ε_j ~ N(0, s_t²) while training,
    L_B(θ) = (1/B) Σ_{i∈batch} log(1 + exp(−y_i f(x_i))) + (λ/2)‖θ‖²,

with the batch drawn with replacement (``jax.random.randint``). The hyperparameters of
one configuration are traced, so arms and sweeps of their values share one compiled
program:

* ``eta1``, ``eta2``, ``anneal_step``: the step size is η₁ for t < anneal_step and η₂
  after (the optimizer :func:`simulations.optimizers.make_annealed_sgd`);
* ``noise_std``: s_t = noise_std for t < anneal_step and 0 after (the paper's
  mitigation: Gaussian noise on the pre-activations, annealed with the learning rate),
  applied by this testbed's gradient oracle;
* ``noise_scale``, ``noise_power`` (optional): an explicit pre-activation noise whose
  variance scales with the current step size, s_t = noise_scale·η_t^{power/2} (the
  theory's stand-in for the noise of a large learning rate; :func:`noise_level`).

Metrics: per-type training / test accuracy (vectors over ``theory.large_lr.TYPES``), the
Q-margin κ = f(z) − ½[f(z + ζ) + f(z − ζ)] (x₁ = 0), the training loss, P's alignment
with w* and the share of the P-weight gradient that comes from the examples with both
components (the paper's mechanism: while Q is not fitted, those examples keep teaching P).

A training set may be padded to ``n_pad`` rows (zeros after the n real examples): the
minibatch indices are drawn from the first ``n_active`` = n rows and every training
metric weighs the real rows only, so training sets of different sizes n share one
compiled shape (a d/n sweep compiles once).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from simulations.keys import numpy_rng
from theory import large_lr as th
from theory import validation as check


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PQTestbed:
    """Training and test sets of the P/Q distribution and the network's sizes.

    Attributes:
      x_train, y_train: (n_pad, 2d), (n_pad,) with y ∈ {±1}; rows ≥ n_active are padding.
      type_weights_train: (3, n_pad) averaging weights of each type over the real rows
        (rows sum to 1, or 0 if the type is absent).
      x_test, y_test, type_weights_test: the same for the (stratified) test set.
      q_points: (3, 2d) the points (0, z), (0, z + ζ), (0, z − ζ) defining κ.
      w_star: (d,) P's direction.
      row_weights: (n_pad,) 1/n on the n real training rows, 0 on the padding.
      n_active: the number n of real training examples (int32; minibatches draw from them).
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
    w_star: jax.Array
    row_weights: jax.Array
    n_active: jax.Array
    l2: jax.Array
    width: int = dataclasses.field(metadata=dict(static=True), default=128)
    batch_size: int = dataclasses.field(metadata=dict(static=True), default=16)

    gradient_uses_hyperparams = True

    @property
    def n(self) -> int:
        """The number of real training examples."""
        return int(self.n_active)

    def init(self, *, key):
        """He initialization: W₁ ~ N(0, 2/(2d)), u ~ N(0, 1/m)."""
        k1, k2 = jax.random.split(key)
        n_in = self.x_train.shape[1]
        return {"w1": jax.random.normal(k1, (n_in, self.width)) * jnp.sqrt(2.0 / n_in),
                "w2": jax.random.normal(k2, (self.width,)) * jnp.sqrt(1.0 / self.width)}

    def _penalty(self, params):
        return 0.5 * self.l2 * sum(jnp.sum(p ** 2) for p in jax.tree_util.tree_leaves(params))

    def _loss(self, params, x, y, noise):
        return jnp.mean(jax.nn.softplus(-y * forward(params, x, noise))) + self._penalty(params)

    def gradient(self, params, *, key, hparams, step):
        """∇L_B at a batch of B indices drawn with replacement from the n real examples,
        with pre-activation noise of standard deviation :func:`noise_level`."""
        k_idx, k_noise = jax.random.split(key)
        idx = jax.random.randint(k_idx, (self.batch_size,), 0, self.n_active)
        std = noise_level(hparams, step)
        noise = std * jax.random.normal(k_noise, (self.batch_size, self.width))
        return jax.grad(self._loss)(params, self.x_train[idx], self.y_train[idx], noise)

    def loss(self, params):
        """The full training objective over the real examples (no noise)."""
        return data_loss(self, params) + self._penalty(params)


def noise_level(hparams, step):
    """s_t = noise_std·[t < anneal_step] + noise_scale·η_t^{noise_power/2}, η_t = η₁ before
    the anneal step and η₂ from it: the fixed annealed noise of the paper's mitigation, plus
    an explicit noise whose variance grows with the step size (∝ η for power 1, ∝ η² for
    power 2; ``noise_scale`` and ``noise_power`` default to none)."""
    before = step < hparams["anneal_step"]
    eta = jnp.where(before, hparams["eta1"], hparams["eta2"])
    scaled = hparams.get("noise_scale", 0.0) * jnp.power(eta, 0.5 * hparams.get("noise_power", 1.0))
    return hparams["noise_std"] * before + scaled


def forward(params, x, noise=0.0):
    """f(x) = relu(x W₁ + ε) u for a batch x of shape (m, 2d)."""
    return jax.nn.relu(x @ params["w1"] + noise) @ params["w2"]


def example_losses(params, x, y):
    """log(1 + exp(−y f(x))) per example."""
    return jax.nn.softplus(-y * forward(params, x))


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


def data_loss(tb: PQTestbed, params):
    """Mean logistic loss over the real training examples (no penalty, no noise)."""
    return tb.row_weights @ example_losses(params, tb.x_train, tb.y_train)


def p_alignment(tb: PQTestbed, params):
    """cos(g, w*) with g = mean over the P-only test examples of ∇_{x₁} f(x) (for a linear
    f = ⟨v, x₁⟩, g = v): how much the direction the network uses on P is the generalizing
    direction w* (1: only w*; a classifier right on P on average has ⟨g, w*⟩ > 0)."""
    d = tb.w_star.shape[0]
    g = jax.grad(lambda x: tb.type_weights_test[0] @ forward(params, x))(tb.x_test)
    g = jnp.sum(g[:, :d], axis=0)
    return g @ tb.w_star / (jnp.linalg.norm(g) + 1e-30)


def both_share(tb: PQTestbed, params):
    """‖G_both‖/(‖G_P‖ + ‖G_both‖), G_type = ∇ over the rows of W₁ that read x₁ of the
    summed training loss of that type's examples (Q-only examples add nothing there):
    the share of P's training signal carried by the examples with both components."""
    d = tb.w_star.shape[0]
    per_type = (tb.type_weights_train > 0).astype(tb.row_weights.dtype)  # 0/1 row masks

    def grad_of(mask):
        g = jax.grad(lambda w1: mask @ example_losses({"w1": w1, "w2": params["w2"]},
                                                      tb.x_train, tb.y_train))(params["w1"])
        return jnp.linalg.norm(g[:d])

    gp, gb = grad_of(per_type[0]), grad_of(per_type[2])
    return gb / (gp + gb + 1e-30)


def fit_accuracy(tb: PQTestbed, params):
    """Training accuracy over all real training examples."""
    return tb.row_weights @ jnp.where(tb.y_train * forward(params, tb.x_train) > 0, 1.0, 0.0)


METRICS = {"train_acc": train_accuracy, "test_acc": test_accuracy, "kappa": q_margin}

#: the parts of :func:`all_metrics` and their lengths (in this order)
ALL_LAYOUT = (("train_acc", 3), ("test_acc", 3), ("kappa", 1), ("train_loss", 1), ("fit_acc", 1),
              ("p_align", 1), ("both_share", 1))


def all_metrics(tb: PQTestbed, params):
    """Every metric above in one vector (layout :data:`ALL_LAYOUT`), from one forward pass
    over the training and the test set and the ReLU network's gradients in closed form
    (∂ℓ_i/∂W₁ = x_i (g_i u ⊙ 1[x_i W₁ > 0])ᵀ, g_i = ∂ℓ_i/∂f_i; ∇_x f = W₁ (u ⊙ 1[x W₁ > 0])):
    the metrics of the regime gate (training loss and accuracy) and of the mechanism (P's
    alignment with w*, the share of P's gradient from the examples with both parts)."""
    w1, u = params["w1"], params["w2"]
    d = tb.w_star.shape[0]
    pre = tb.x_train @ w1
    act = (pre > 0).astype(pre.dtype)
    f = (pre * act) @ u
    correct = jnp.where(tb.y_train * f > 0, 1.0, 0.0)
    losses = jax.nn.softplus(-tb.y_train * f)
    g = -tb.y_train * jax.nn.sigmoid(-tb.y_train * f)              # ∂ℓ_i/∂f_i
    per_type = (tb.type_weights_train > 0).astype(pre.dtype)       # 0/1 row masks
    grads = jnp.einsum("ti,id,ij->tdj", per_type * g[None], tb.x_train[:, :d], act * u[None])
    norms = jnp.sqrt(jnp.sum(grads ** 2, axis=(1, 2)))
    pre_t = tb.x_test @ w1
    act_t = (pre_t > 0).astype(pre.dtype)
    f_t = (pre_t * act_t) @ u
    grad_x = w1[:d] @ ((act_t.T @ tb.type_weights_test[0]) * u)  # mean ∇_{x₁} f over P-only tests
    fq = forward(params, tb.q_points)
    return jnp.concatenate([
        tb.type_weights_train @ correct, tb.type_weights_test @ jnp.where(tb.y_test * f_t > 0, 1.0, 0.0),
        jnp.stack([fq[0] - 0.5 * (fq[1] + fq[2]), tb.row_weights @ losses, tb.row_weights @ correct,
                   grad_x @ tb.w_star / (jnp.linalg.norm(grad_x) + 1e-30),
                   norms[2] / (norms[0] + norms[2] + 1e-30)])])


def split_all(records):
    """{name: (..., length) or (...)} from records of :func:`all_metrics` (last axis)."""
    out, start = {}, 0
    for name, size in ALL_LAYOUT:
        part = records[..., start:start + size]
        out[name] = part if size > 1 else part[..., 0]
        start += size
    return out


#: one recorded vector with every metric (:func:`all_metrics`; split with :func:`split_all`)
GATE_METRICS = {"all": all_metrics}


# ------------------------------------------------------------------------ builder
def _type_weights(kind):
    w = (kind[None, :] == np.arange(3)[:, None]).astype(np.float64)
    return w / np.maximum(w.sum(axis=1, keepdims=True), 1.0)


def make_pq_testbed(spec: th.PQSpec, *, key, n: int = 256, n_test: int = 1500,
                    width: int = 128, batch_size: int = 16, l2: float = 1e-4,
                    n_pad: int | None = None) -> PQTestbed:
    """Draw the geometry, n training and n_test stratified test examples from ``key``.

    Args:
      spec: the distribution's constants (:class:`theory.large_lr.PQSpec`).
      key: typed key; the data are a deterministic function of it (not of ``n_pad``).
      n, n_test: training and test set sizes; width: hidden units; batch_size: B ≤ n;
      l2: λ ≥ 0; n_pad: rows of the stored training set (≥ n; None: n), zeros after
        the n real examples (one compiled shape for several n).
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
    n_pad = n if n_pad is None else check.integer_at_least("n_pad", n_pad, 1)
    if n_pad < n:
        check.fail("n_pad", n_pad, f"n_pad >= n = {n} (None: no padding)")
    rng = numpy_rng(key)
    geo = th.make_geometry(spec, rng)
    train = th.sample_pq(spec, geo, n, rng)
    test = th.sample_pq(spec, geo, n_test, rng, stratified=True)
    zero = np.zeros(spec.d)
    q_points = np.stack([np.concatenate([zero, geo.z + s * geo.zeta]) for s in (0.0, 1.0, -1.0)])
    pad = n_pad - n
    tw = _type_weights(train.kind)
    return PQTestbed(x_train=np.pad(train.x, ((0, pad), (0, 0))), y_train=np.pad(train.y, (0, pad)),
                     type_weights_train=np.pad(tw, ((0, 0), (0, pad))),
                     x_test=test.x, y_test=test.y, type_weights_test=_type_weights(test.kind),
                     q_points=q_points, w_star=geo.w_star,
                     row_weights=np.pad(np.full(n, 1.0 / n), (0, pad)),
                     n_active=np.int32(n), l2=np.float64(l2), width=width, batch_size=batch_size)
