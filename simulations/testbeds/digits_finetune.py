"""Few-shot fine-tuning of a normalized network on scikit-learn's 8×8 digits.

The setting of Stochastic Normalization (Kou, You, Long, Wang, NeurIPS 2020), scaled down:
a network with (stochastic) batch normalization after every hidden linear layer

    x (64) → [W_l → StochNorm(p) → ReLU] for each hidden width → head (K classes)

(:func:`init_bn_mlp`, :func:`bn_mlp`; one hidden layer is the toolkit's two-layer
digits network with a normalization layer, two hidden layers the three-layer one) is
pretrained on a *source task* (half of the images of every digit) and fine-tuned on a
*target task* (the other half, with a pixel-intensity shift x ↦ x^γ: :func:`transfer_tasks`)
from n labelled examples per class, with a new head. The same testbed trains the source
task (from scratch, with n covering the whole training split).

:class:`FineTune` is the engine testbed of one task. Its params carry, besides the
trained weights, the moving statistics and the example ranks as ``"state"`` (the oracle
returns the state's update in the gradient's place; see
:func:`simulations.optimizers.finetune_sgd`). Per trajectory, from its init key:

* which network it starts from (one of the P in ``start``, uniformly);
* the partition of the task's images: within each class a uniform random rank r; the
  images with r < n are the training examples (n is a traced hyperparameter, so the
  subsets are nested in n for one seed), ``n_max`` <= r < ``n_max`` + ``n_val`` the
  validation split, r >= ``n_max`` + ``n_val`` the test split;
* the new head, W ~ N(0, 0.01²), b = 0 (the paper's code), and for training from scratch
  He-initialized hidden weights.

Each step draws one uniform vector: a score per image, whose B highest among the rank < n
images make the minibatch (min(B, K·n) examples without replacement; a padded batch: the
normalization and the loss use the real examples only), and a number u per channel of
every normalization layer, s = [u < p] (one Bernoulli(p) draw per channel per step).
Seeds that share a key share these numbers across p, so the masks of two arms are coupled
(s for p = 0.25 is a subset of s for p = 0.5). Accuracies use evaluation mode (moving
statistics). Randomness comes in as few draws as possible (one normal vector at init, one
uniform vector per step): every separate draw under the engine's two vmaps adds seconds of
compilation on CPU.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from simulations import layers
from simulations.testbeds import digits
from theory import validation as check

HEAD_STD = 0.01  #: the new head's initial weight scale (the paper's code)


# ----------------------------------------------------------------- the network
def init_bn_mlp(*, key=None, n_in: int = 64, widths=(64,), n_out: int = digits.N_CLASSES, z=None):
    """(params, state) of x → [W_l → norm → ReLU]_l → head: He-initialized W_l (no bias:
    the norm's offset β plays its part), γ = 1, β = 0, moving statistics (0, 1), head
    W ~ N(0, HEAD_STD²), b = 0. All weights come from ONE standard normal vector, drawn
    from ``key`` or given as ``z`` (:func:`n_weights` entries; see
    :func:`simulations.testbeds.digits_mlp.init_mlp_flat` for why one draw)."""
    widths = tuple(check.integer_at_least("width", w, 1) for w in widths)
    if not widths:
        check.fail("widths", 0, "at least one hidden layer width")
    sizes = list(zip((n_in,) + widths[:-1], widths)) + [(widths[-1], n_out)]
    if z is None:
        z = jax.random.normal(key, (n_weights(n_in, widths, n_out),))
    mats, at = [], 0
    for a, b in sizes:
        mats.append(z[at:at + a * b].reshape(a, b))
        at += a * b
    hidden, state = [], []
    for (a, _), w in zip(sizes[:-1], mats[:-1]):
        norm, stats = layers.init_norm(w.shape[1])
        hidden.append({"w": w * jnp.sqrt(2.0 / a), "norm": norm})
        state.append(stats)
    head = {"w": mats[-1] * HEAD_STD, "b": jnp.zeros(n_out)}
    return {"hidden": hidden, "head": head}, state


def n_weights(n_in: int, widths, n_out: int) -> int:
    """The number of weight entries of :func:`init_bn_mlp` (its normal draw's size)."""
    dims = (n_in,) + tuple(widths) + (n_out,)
    return sum(a * b for a, b in zip(dims[:-1], dims[1:]))


def bn_mlp(net, stats, x, *, key=None, p=1.0, train: bool = True, weights=None, uniforms=None):
    """Logits and new moving statistics: each hidden layer h ← relu(StochNorm_p(h W_l)).
    Layer l's mask is drawn from ``fold_in(key, l)``, or, given ``uniforms`` (Σ widths
    numbers in [0, 1)), is [u < p] on layer l's slice of them (one draw for the network);
    ``net = {"hidden": [...], "head": ...}``."""
    h, new, at = x, [], 0
    for l, (layer, st) in enumerate(zip(net["hidden"], stats)):
        pre = h @ layer["w"]
        width = pre.shape[1]
        kw = dict(key=None if key is None else jax.random.fold_in(key, l))
        if uniforms is not None and train:
            kw = dict(mask=layers.mask_from_uniform(uniforms[at:at + width], p, pre.dtype))
        h, st = layers.stoch_norm(layer["norm"], st, pre, p=p, train=train, weights=weights, **kw)
        h = jax.nn.relu(h)
        new.append(st)
        at += width
    return h @ net["head"]["w"] + net["head"]["b"], new


def weighted_cross_entropy(logits, labels, weights):
    """Σ_i w_i (−log softmax(f_i)_{y_i}) / Σ_i w_i."""
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1)[:, 0]
    return jnp.sum(weights * nll) / jnp.sum(weights)


# ------------------------------------------------------------------- the data
def all_digits():
    """All 1797 images (m, 64) in [0, 1] and their labels, in the fixed order of
    :func:`digits.load_digits_splits` at seed 0 (train, validation, test)."""
    s = digits.load_digits_splits(seed=0)
    x = np.concatenate([s.train.features, s.validation.features, s.test.features])
    y = np.concatenate([s.train.labels, s.validation.labels, s.test.labels])
    return x, y.astype(np.int32)


def transfer_tasks(rng: np.random.Generator, *, gamma: float = 2.0):
    """Source and target tasks on disjoint images of all ten digits: per class the images
    are split at random into two halves of ⌊size/2⌋ (an odd class drops one), the source
    task keeps its half as it is, the target task's half has its pixel intensities raised
    to the power γ (x ↦ x^γ; γ = 2 thins and fades the strokes). Returns
    ((x_s, y_s), (x_t, y_t)), both tasks with the same number of images per class."""
    gamma = check.positive("gamma", gamma)
    x, y = all_digits()
    src, tgt = [], []
    for c in range(digits.N_CLASSES):
        idx = rng.permutation(np.flatnonzero(y == c))
        half = len(idx) // 2
        src.append(idx[:half])
        tgt.append(idx[half:2 * half])
    src, tgt = np.concatenate(src), np.concatenate(tgt)
    return (x[src], y[src]), (x[tgt] ** gamma, y[tgt])


# ------------------------------------------------------------------ the testbed
@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FineTune:
    """One task and the starting networks.

    Attributes:
      x, y: (N, 64) images and (N,) labels 0 … K−1.
      start: ``{"body": hidden layers, "state": moving statistics}`` stacked over the P
        starting (pretrained) networks: leading axis P.
      he_init: 0 to start from ``start``; 1 to add He-initialized weights (training from
        scratch: then ``start``'s weights are zero).
      widths, n_classes: the network (static).
      n_max: ranks [0, n_max) may train (so n <= n_max); ``n_val``: ranks [n_max,
        n_max + n_val) validate; the rest test (static).
      batch_size: B (static).
    """

    x: jax.Array
    y: jax.Array
    start: dict
    he_init: jax.Array
    widths: tuple = dataclasses.field(metadata=dict(static=True), default=(64,))
    n_classes: int = dataclasses.field(metadata=dict(static=True), default=digits.N_CLASSES)
    n_max: int = dataclasses.field(metadata=dict(static=True), default=50)
    n_val: int = dataclasses.field(metadata=dict(static=True), default=15)
    batch_size: int = dataclasses.field(metadata=dict(static=True), default=20)

    gradient_uses_hyperparams = True  # p (the StochNorm probability) and n (shots) are swept

    def init(self, *, key):
        """``{"body", "head", "state": {"stats", "rank"}}`` of one trajectory (see the module
        docstring), from ONE standard normal draw: fresh weights, a priority per image
        (its rank within its class) and the choice of the start network."""
        n, d = self.y.shape[0], self.x.shape[1]
        size = n_weights(d, self.widths, self.n_classes)
        z = jax.random.normal(key, (size + n + 1,))
        fresh, _ = init_bn_mlp(n_in=d, widths=self.widths, n_out=self.n_classes, z=z[:size])
        n_start = jax.tree_util.tree_leaves(self.start)[0].shape[0]
        pick = jnp.minimum(jnp.floor(jax.scipy.special.ndtr(z[-1]) * n_start), n_start - 1).astype(jnp.int32)
        start = jax.tree_util.tree_map(lambda a: a[pick], self.start)
        body = [{"w": s["w"] + self.he_init * f["w"], "norm": s["norm"]}
                for s, f in zip(start["body"], fresh["hidden"])]
        u = z[size:size + n]
        same = self.y[:, None] == self.y[None, :]
        rank = jnp.sum(same & (u[None, :] < u[:, None]), axis=1).astype(u.dtype)
        return {"body": body, "head": fresh["head"], "state": {"stats": start["state"], "rank": rank}}

    @staticmethod
    def network(params):
        return {"hidden": params["body"], "head": params["head"]}

    def gradient(self, params, *, key, hparams, step):
        """∇ of the mean cross-entropy over a minibatch of the rank < n examples, in
        training mode with StochNorm(p); the state's entry is old − new statistics. One
        uniform draw per step: a score per image (the batch: the B highest scores among the
        rank < n images) and a number per channel (the masks)."""
        del step
        rank, stats = params["state"]["rank"], params["state"]["stats"]
        u = jax.random.uniform(key, (rank.shape[0] + sum(self.widths),))
        selected = rank < hparams["shots"]
        score = jnp.where(selected, u[:rank.shape[0]], -1.0)
        top, idx = jax.lax.top_k(score, self.batch_size)
        w = (top >= 0).astype(score.dtype)
        xb, yb = jnp.asarray(self.x)[idx], jnp.asarray(self.y)[idx]

        def loss(trained):
            logits, new = bn_mlp(self.network(trained), stats, xb, p=hparams["p"], train=True,
                                 weights=w, uniforms=u[rank.shape[0]:])
            return weighted_cross_entropy(logits, yb, w), new

        trained = {"body": params["body"], "head": params["head"]}
        grads, new = jax.grad(loss, has_aux=True)(trained)
        delta = jax.tree_util.tree_map(lambda a, b: a - b, stats, new)
        return {**grads, "state": {"stats": delta, "rank": jnp.zeros_like(rank)}}

    def eval_logits(self, params):
        logits, _ = bn_mlp(self.network(params), params["state"]["stats"], self.x, train=False)
        return logits

    def loss(self, params):
        """Evaluation-mode mean cross-entropy over the examples that may train (rank < n_max)."""
        logits = self.eval_logits(params)
        w = (params["state"]["rank"] < self.n_max).astype(logits.dtype)
        return weighted_cross_entropy(logits, self.y, w)


def _accuracy(tb: FineTune, params, low, high):
    rank, logits = params["state"]["rank"], tb.eval_logits(params)
    w = ((rank >= low) & (rank < high)).astype(logits.dtype)
    hit = (jnp.argmax(logits, axis=1) == tb.y).astype(logits.dtype)
    return jnp.sum(w * hit) / jnp.sum(w)


def val_accuracy(tb: FineTune, params):
    """Evaluation-mode accuracy on the trajectory's validation split."""
    return _accuracy(tb, params, tb.n_max, tb.n_max + tb.n_val)


def test_accuracy(tb: FineTune, params):
    """Evaluation-mode accuracy on the trajectory's test split."""
    return _accuracy(tb, params, tb.n_max + tb.n_val, np.inf)


test_accuracy.__test__ = False  # a metric, not a pytest test


# ------------------------------------------------------------------ constructors
def scratch_start(n_start: int, widths=(64,), n_in: int = 64):
    """The start of training from scratch, ``n_start`` identical copies: zero weights (the
    testbed adds He-initialized ones when ``he_init``), γ = 1, β = 0, moving statistics
    (0, 1)."""
    n_start = check.integer_at_least("n_start", n_start, 1)
    body, stats = [], []
    for a, b in zip((n_in,) + tuple(widths[:-1]), widths):
        norm, st = layers.init_norm(b)
        body.append({"w": jnp.zeros((a, b)), "norm": norm})
        stats.append(st)
    return jax.tree_util.tree_map(lambda v: jnp.broadcast_to(v, (n_start,) + v.shape),
                                  {"body": body, "state": stats})


def trained_start(final_params):
    """The start stack from the engine's final params (leading axes config × seed): every
    trajectory's hidden layers and moving statistics, one start each."""
    def flat(a):
        a = jnp.asarray(a)
        return a.reshape((-1,) + a.shape[2:])
    return {"body": jax.tree_util.tree_map(flat, final_params["body"]),
            "state": jax.tree_util.tree_map(flat, final_params["state"]["stats"])}


def make_finetune(x, y, start, *, he_init: bool, widths=(64,), n_max: int = 50,
                  n_val: int = 15, batch_size: int = 20) -> FineTune:
    """The testbed of the task (x, y) starting from ``start`` (see :class:`FineTune`).
    Needs n_max + n_val < the smallest class size (every class keeps test images)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.int32)
    if x.ndim != 2 or y.shape != (len(x),):
        check.fail("x", x, f"(m, d) images with one label each (y has shape {y.shape})")
    n_classes = int(y.max()) + 1
    counts = np.bincount(y, minlength=n_classes)
    n_max = check.integer_at_least("n_max", n_max, 1)
    n_val = check.integer_at_least("n_val", n_val, 1)
    if n_max + n_val >= counts.min():
        check.fail("n_max + n_val", n_max + n_val, f"< {counts.min()} (the smallest class), "
                   "so that every class keeps test images")
    batch_size = check.integer_at_least("batch_size", batch_size, 1)
    if batch_size > len(y):
        check.fail("batch_size", batch_size, f"<= {len(y)} (the task's images)")
    return FineTune(x=x, y=y, start=start, he_init=jnp.asarray(1.0 if he_init else 0.0),
                    widths=tuple(int(w) for w in widths), n_classes=n_classes, n_max=n_max,
                    n_val=n_val, batch_size=batch_size)


def with_reset_statistics(start):
    """The control's start: the same weights, moving statistics re-initialized to (0, 1)."""
    stats = [{"mean": jnp.zeros_like(s["mean"]), "var": jnp.ones_like(s["var"])}
             for s in start["state"]]
    return {"body": start["body"], "state": stats}
