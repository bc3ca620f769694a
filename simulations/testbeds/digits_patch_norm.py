"""The patch experiment of Li, Wei & Ma (2019), recipe of the authors' CIFAR-10 code scaled
down to scikit-learn's 8×8 digits, with a layer-normalized network.

Data (every random choice from the builder's key):

* pixels standardized with the mean and standard deviation of the training pixels;
* a fixed pattern z = 1.25·N(0, 1) on a centred k×k square (k = 2: 4 of 64 pixels,
  6% of the image; the official patch is 3×7×7 of 3×32×32, 5%) and one class offset
  ζ_c ~ U[−0.1, 0.1]^{k×k} per class (RMS ζ / RMS z ≈ 0.05);
* a fixed random 80% of the training images carry a patch. Each time such an image is
  loaded (every minibatch draw: sampling with replacement), s = ±1, the blank flag
  (probability 0.2) and U ~ U[0, 1] are redrawn: a blank load is the zero image with the
  patch z + s·1.75·U·ζ_y, any other load writes z + s·ζ_y over the image.
* evaluation: clean test images; the same images with z + s ζ_y written on them; and
  patch-only images (blank + z + s ζ_c) with random labels c, whose accuracy is above
  chance 0.1 only through the patch. Training accuracy and loss are measured on one fixed
  load of the training set.

Network: x → [W_l → LayerNorm (γ_l, β_l) → + ε_l → ReLU]_{l=1..L} → W_out + b, mean
cross-entropy (weight decay lives in the optimizer, :func:`simulations.optimizers.
annealed_nesterov`). Layer normalization is per example, a pure function with no
running statistics: it makes every hidden weight matrix scale-invariant, the property
through which batch normalization and weight decay set the effective learning rate, and
it evaluates a patch-only image independently of the others (batch statistics of a
batch of patch-only images would subtract the shared pattern z itself).

Noise arm: ε_l ~ N(0, s_t² I), one vector per layer and step shared by all examples of
the batch (the official noise is one spatial map shared across the batch and the
channels; units are the only axis of an MLP's features), s_t = ``noise_std`` before the
anneal step and ``noise_std``·10⁻⁵ after (the official factor). The traced
hyperparameters ``noise_std`` and ``anneal_step`` come with the configuration.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from simulations.keys import numpy_rng, subkey
from simulations.testbeds import digits
from theory import validation as check

PATCHED_FRACTION = 0.8
BLANK_PROBABILITY = 0.2
BLANK_SCALE = 1.75
Z_SCALE = 1.25
ZETA_HALF_WIDTH = 0.1
NOISE_AFTER_ANNEAL = 1e-5
LN_EPS = 1e-5


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DigitsPatchNorm:
    """Standardized digits with the class patch, drawn anew at every load.

    Attributes:
      images: (n, 64) standardized clean training images; labels: (n,).
      patched: (n,) 1.0 for the images that carry a patch.
      mask: (64,) 1.0 on the patch's pixels; z: (64,) the pattern there (0 elsewhere);
      zeta: (10, 64) the class offsets there.
      x_fit, y_fit: one fixed load of the training set (training accuracy and loss).
      x_clean, x_patched, y_test: test images without and with a patch;
      x_patch_only, y_patch_only: blank images with a patch of a random class.
      width, depth, batch_size: static sizes.
    """

    images: jax.Array
    labels: jax.Array
    patched: jax.Array
    mask: jax.Array
    z: jax.Array
    zeta: jax.Array
    x_fit: jax.Array
    y_fit: jax.Array
    x_clean: jax.Array
    x_patched: jax.Array
    y_test: jax.Array
    x_patch_only: jax.Array
    y_patch_only: jax.Array
    width: int = dataclasses.field(metadata=dict(static=True), default=64)
    depth: int = dataclasses.field(metadata=dict(static=True), default=2)
    batch_size: int = dataclasses.field(metadata=dict(static=True), default=32)

    gradient_uses_hyperparams = True

    def init(self, *, key):
        """He-initialized hidden weights (no bias: the normalization removes it), γ = 1,
        β = 0, output W ~ N(0, 1/width), b = 0."""
        keys = jax.random.split(key, self.depth + 1)
        n_in = self.images.shape[1]
        hidden = []
        for l in range(self.depth):
            fan_in = n_in if l == 0 else self.width
            hidden.append({"w": jax.random.normal(keys[l], (fan_in, self.width)) * jnp.sqrt(2.0 / fan_in),
                           "scale": jnp.ones(self.width), "offset": jnp.zeros(self.width)})
        out = {"w": jax.random.normal(keys[-1], (self.width, digits.N_CLASSES)) * jnp.sqrt(1.0 / self.width),
               "b": jnp.zeros(digits.N_CLASSES)}
        return {"hidden": hidden, "out": out}

    def load(self, idx, key):
        """The images ``idx`` as loaded once: fresh s, blank flag and U per example."""
        k_s, k_blank, k_u = jax.random.split(key, 3)
        m = idx.shape[0]
        s = jnp.where(jax.random.bernoulli(k_s, 0.5, (m,)), 1.0, -1.0)
        blank = jax.random.bernoulli(k_blank, BLANK_PROBABILITY, (m,)) & (self.patched[idx] > 0)
        u = jax.random.uniform(k_u, (m,))
        y = self.labels[idx]
        return write_patch(self, self.images[idx], y, s, blank, u, self.patched[idx] > 0), y

    def gradient(self, params, *, key, hparams, step):
        """Mean cross-entropy gradient at a minibatch of B loads drawn with replacement,
        with the annealed shared noise after each normalization."""
        k_idx, k_load, k_noise = jax.random.split(key, 3)
        idx = jax.random.randint(k_idx, (self.batch_size,), 0, self.images.shape[0])
        x, y = self.load(idx, k_load)
        std = hparams["noise_std"] * jnp.where(step < hparams["anneal_step"], 1.0, NOISE_AFTER_ANNEAL)
        noise = std * jax.random.normal(k_noise, (self.depth, self.width))
        return jax.grad(lambda p: cross_entropy(p, x, y, noise))(params)

    def loss(self, params):
        return cross_entropy(params, self.x_fit, self.y_fit)


def write_patch(tb, images, y, s, blank, u, has_patch):
    """images with the patch written: blank loads are zero + z + s·1.75·U·ζ_y, other
    patched loads image + (z + s ζ_y) on the patch pixels, the rest unchanged."""
    coef = s * jnp.where(blank, BLANK_SCALE * u, 1.0)
    patch = tb.z[None] + coef[:, None] * tb.zeta[y]
    base = jnp.where(blank[:, None], 0.0, images)
    written = base * (1.0 - tb.mask[None]) + tb.mask[None] * patch
    return jnp.where(has_patch[:, None], written, images)


def layer_norm(h, scale, offset):
    mean = jnp.mean(h, axis=-1, keepdims=True)
    var = jnp.mean((h - mean) ** 2, axis=-1, keepdims=True)
    return scale * (h - mean) / jnp.sqrt(var + LN_EPS) + offset


def logits(params, x, noise=None):
    """The network's logits for x (m, 64); ``noise`` (depth, width) added after each
    normalization (None: no noise)."""
    h = x
    for l, layer in enumerate(params["hidden"]):
        h = layer_norm(h @ layer["w"], layer["scale"], layer["offset"])
        if noise is not None:
            h = h + noise[l][None]
        h = jax.nn.relu(h)
    return h @ params["out"]["w"] + params["out"]["b"]


def cross_entropy(params, x, y, noise=None):
    logp = jax.nn.log_softmax(logits(params, x, noise))
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def _accuracy(params, x, y):
    return jnp.mean(jnp.argmax(logits(params, x), axis=1) == y)


def clean_accuracy(tb, params):
    return _accuracy(params, tb.x_clean, tb.y_test)


def patched_accuracy(tb, params):
    return _accuracy(params, tb.x_patched, tb.y_test)


def patch_only_accuracy(tb, params):
    return _accuracy(params, tb.x_patch_only, tb.y_patch_only)


def train_accuracy(tb, params):
    return _accuracy(params, tb.x_fit, tb.y_fit)


def train_loss(tb, params):
    return cross_entropy(params, tb.x_fit, tb.y_fit)


METRICS = {"clean": clean_accuracy, "patched": patched_accuracy, "patch_only": patch_only_accuracy,
           "train_acc": train_accuracy, "train_loss": train_loss}
ALL_NAMES = tuple(METRICS)


def all_metrics(tb, params):
    """The five metrics of :data:`METRICS` in one vector (order :data:`ALL_NAMES`), from one
    forward pass over the three test sets and one over the training set."""
    m = tb.x_clean.shape[0]
    test = logits(params, jnp.concatenate([tb.x_clean, tb.x_patched, tb.x_patch_only]))
    labels = jnp.concatenate([tb.y_test, tb.y_test, tb.y_patch_only])
    hit = (jnp.argmax(test, axis=1) == labels).astype(test.dtype).reshape(3, m).mean(axis=1)
    fit = logits(params, tb.x_fit)
    logp = jax.nn.log_softmax(fit)
    loss = -jnp.mean(jnp.take_along_axis(logp, tb.y_fit[:, None], axis=1))
    acc = jnp.mean(jnp.argmax(fit, axis=1) == tb.y_fit)
    return jnp.concatenate([hit, jnp.stack([acc, loss])])


#: one recorded vector with every metric (order :data:`ALL_NAMES`)
ALL_METRICS = {"all": all_metrics}


# ------------------------------------------------------------------------- builder
def centre_mask(patch_size: int) -> np.ndarray:
    """(8, 8) 0/1 mask of the centred patch_size × patch_size square."""
    h, w = digits.IMAGE_SHAPE
    r, c = (h - patch_size) // 2, (w - patch_size) // 2
    m = np.zeros((h, w))
    m[r:r + patch_size, c:c + patch_size] = 1.0
    return m


def make_digits_patch_norm(*, key, patch_size: int = 2, width: int = 64, depth: int = 2,
                           batch_size: int = 32) -> DigitsPatchNorm:
    """Build the testbed; every random choice comes from ``key``.

    Args:
      key: typed key: the split (train + validation of :func:`digits.load_digits_splits`
        train, its test split evaluates) from a seed drawn from ``subkey(key, "split")``,
        everything else from ``numpy_rng(key)``.
      patch_size: k, the centred patch is k×k (1 ≤ k ≤ 8).
      width, depth: hidden units per layer and number of normalized hidden layers.
      batch_size: B.
    """
    h, w = digits.IMAGE_SHAPE
    patch_size = check.integer_at_least("patch_size", patch_size, 1)
    if patch_size > min(h, w):
        check.fail("patch_size", patch_size, f"1 <= patch_size <= {min(h, w)} (the image is {h}x{w})")
    width = check.integer_at_least("width", width, 1)
    depth = check.integer_at_least("depth", depth, 1)
    batch_size = check.integer_at_least("batch_size", batch_size, 1)
    seed = int(numpy_rng(subkey(key, "split")).integers(2 ** 63 - 1))
    sp = digits.load_digits_splits(seed=seed)
    images = np.concatenate([sp.train.features, sp.validation.features])
    labels = np.concatenate([sp.train.labels, sp.validation.labels])
    n = len(images)
    if batch_size > n:
        check.fail("batch_size", batch_size, f"1 <= batch_size <= n = {n}")
    mean, std = images.mean(), images.std()
    standardize = lambda a: (a - mean) / std  # noqa: E731
    images, test = standardize(images), standardize(sp.test.features)
    rng = numpy_rng(key)
    mask = centre_mask(patch_size).ravel()
    on = mask > 0
    z = np.zeros(h * w)
    z[on] = Z_SCALE * rng.standard_normal(on.sum())
    zeta = np.zeros((digits.N_CLASSES, h * w))
    zeta[:, on] = rng.uniform(-ZETA_HALF_WIDTH, ZETA_HALF_WIDTH, (digits.N_CLASSES, on.sum()))
    patched = np.zeros(n)
    patched[rng.permutation(n)[:int(round(PATCHED_FRACTION * n))]] = 1.0
    parts = dict(mask=mask, z=z, zeta=zeta)

    def sign(m):
        return rng.choice([-1.0, 1.0], size=m)

    def write(imgs, y, s, blank, u, has):  # NumPy twin of write_patch (float64 data)
        coef = s * np.where(blank, BLANK_SCALE * u, 1.0)
        patch = z[None] + coef[:, None] * zeta[y]
        base = np.where(blank[:, None], 0.0, imgs)
        return np.where(has[:, None], base * (1 - mask[None]) + mask[None] * patch, imgs)

    has = patched > 0
    x_fit = write(images, labels, sign(n), (rng.uniform(size=n) < BLANK_PROBABILITY) & has,
                  rng.uniform(size=n), has)
    m = len(test)
    all_on = np.ones(m, bool)
    x_patched = write(test, sp.test.labels, sign(m), ~all_on, np.ones(m), all_on)
    y_only = rng.integers(0, digits.N_CLASSES, m)
    x_only = write(np.zeros_like(test), y_only, sign(m), ~all_on, np.ones(m), all_on)
    return DigitsPatchNorm(images=images, labels=labels, patched=patched, **parts, x_fit=x_fit,
                           y_fit=labels, x_clean=test, x_patched=x_patched, y_test=sp.test.labels,
                           x_patch_only=x_only, y_patch_only=y_only, width=width, depth=depth,
                           batch_size=batch_size)
