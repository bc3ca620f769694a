"""An earlier, strengthened patch variant of Li, Wei & Ma (2019) on scikit-learn's 8×8
digits, kept for the patch claim's exploratory strength grid (the claim itself uses the
authors' recipe, :mod:`simulations.testbeds.digits_patch_norm`).

Recipe: unstandardized pixels in [0, 1], a fixed pattern z ~ U[0, 1]^{k×k} shared by all
classes plus a per-class pattern ζ_c (‖ζ_c‖ = ``offset_norm``·‖z‖, far stronger than the
authors' ≈ 0.05), patch = z + s ζ_y with s = ±1 drawn once per image, written over a fixed
``patch_size``² square at the image's top-left corner. A fixed random
``patched_fraction`` (80%) of the training images get a patch: with probability 0.8 on
the image itself, with probability 0.2 on a blank image, with the class offset scaled by
a U[0, 1] factor (patch = z + s u ζ_y); the draws are fixed, not redrawn per load.

Like Q in the synthetic data, the patch is not linearly separable by class (derived,
midpoint argument: a linear score difference s_c − s_k that is positive at z + ζ_c and
z − ζ_c is positive at their midpoint z, for every c at once: impossible), but it is
low-noise and predicts the label exactly.

Evaluation sets: clean test images, the same images patched (random s), and patch-only
images (blank + z + s ζ_y). Everything random comes from the builder's key: the
train / test split of the digits (:func:`simulations.testbeds.digits.load_digits_splits`
with a seed drawn from ``subkey(key, "split")``), the patterns, which images carry a
patch, the signs and scales; so independent data draws differ in all of them.

The network is :func:`simulations.testbeds.digits.init_mlp` / ``mlp_logits`` with mean
cross-entropy plus (λ/2)‖θ‖², minibatches drawn with replacement; the learning-rate
schedule is :func:`simulations.optimizers.make_annealed_sgd`.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from simulations.keys import numpy_rng, subkey
from simulations.testbeds import digits
from theory import validation as check


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DigitsPatch:
    """Patched training set and the three evaluation sets (features (m, 64) in [0, 1])."""

    x_train: jax.Array
    y_train: jax.Array
    x_clean: jax.Array
    x_patched: jax.Array
    x_patch_only: jax.Array
    y_test: jax.Array
    l2: jax.Array
    width: int = dataclasses.field(metadata=dict(static=True), default=64)
    batch_size: int = dataclasses.field(metadata=dict(static=True), default=32)

    def init(self, *, key):
        return digits.init_mlp(key=key, n_in=self.x_train.shape[1], width=self.width)

    def _loss(self, params, x, y):
        reg = 0.5 * self.l2 * sum(jnp.sum(p ** 2) for p in jax.tree_util.tree_leaves(params))
        return digits.cross_entropy(params, x, y) + reg

    def gradient(self, params, *, key):
        idx = jax.random.randint(key, (self.batch_size,), 0, self.x_train.shape[0])
        return jax.grad(self._loss)(params, self.x_train[idx], self.y_train[idx])

    def loss(self, params):
        return self._loss(params, self.x_train, self.y_train)


def clean_accuracy(tb: DigitsPatch, params):
    return digits.accuracy(params, tb.x_clean, tb.y_test)


def patched_accuracy(tb: DigitsPatch, params):
    return digits.accuracy(params, tb.x_patched, tb.y_test)


def patch_only_accuracy(tb: DigitsPatch, params):
    return digits.accuracy(params, tb.x_patch_only, tb.y_test)


METRICS = {"clean": clean_accuracy, "patched": patched_accuracy, "patch_only": patch_only_accuracy}


def make_patterns(rng: np.random.Generator, patch_size: int, offset_norm: float):
    """z ~ U[0, 1]^{k×k} and ζ_c = offset_norm·‖z‖·(unit Gaussian direction), c = 0..9."""
    z = rng.uniform(0.0, 1.0, (patch_size, patch_size))
    zeta = rng.standard_normal((digits.N_CLASSES, patch_size, patch_size))
    zeta *= offset_norm * np.linalg.norm(z) / np.linalg.norm(zeta, axis=(1, 2), keepdims=True)
    return z, zeta


def split_seed(key) -> int:
    """The integer seed of the digits split that ``key`` draws (``subkey(key, "split")``)."""
    return int(numpy_rng(subkey(key, "split")).integers(2 ** 63 - 1))


def _apply(images, labels, z, zeta, rng, *, blank=False, scale=None):
    k = z.shape[0]
    out = np.zeros_like(images) if blank else images.copy()
    s = rng.choice([-1.0, 1.0], size=len(images))
    u = np.ones(len(images)) if scale is None else scale
    out[:, :k, :k] = z[None] + (s * u)[:, None, None] * zeta[labels]
    return out


def make_digits_patch(*, key, patch_size: int = 3, offset_norm: float = 0.3,
                      patched_fraction: float = 0.8, blank_fraction: float = 0.2,
                      width: int = 64, batch_size: int = 32,
                      l2: float = 5e-4) -> DigitsPatch:
    """Build the patched digits testbed; every random choice comes from ``key``.

    Args:
      key: typed key: the split (train + validation of :func:`digits.load_digits_splits`
        are used for training, its test split for evaluation) from ``subkey(key,
        "split")``; patterns, patched images, signs and scales from ``numpy_rng(key)``.
      patch_size: k, the patch is k×k (1 ≤ k ≤ 8).
      offset_norm: ‖ζ_c‖/‖z‖ > 0; patched_fraction, blank_fraction: in [0, 1].
    """
    h, w = digits.IMAGE_SHAPE
    patch_size = check.integer_at_least("patch_size", patch_size, 1)
    if patch_size > min(h, w):
        check.fail("patch_size", patch_size, f"1 <= patch_size <= {min(h, w)} (the image is {h}x{w})")
    offset_norm = check.positive("offset_norm", offset_norm)
    check.in_range("patched_fraction", patched_fraction, 0.0, 1.0, closed_high=True)
    check.in_range("blank_fraction", blank_fraction, 0.0, 1.0, closed_high=True)
    width = check.integer_at_least("width", width, 1)
    batch_size = check.integer_at_least("batch_size", batch_size, 1)
    l2 = check.nonnegative("l2", l2)
    sp = digits.load_digits_splits(seed=split_seed(key))
    images = np.concatenate([sp.train.images, sp.validation.images])
    labels = np.concatenate([sp.train.labels, sp.validation.labels])
    if batch_size > len(images):
        check.fail("batch_size", batch_size, f"1 <= batch_size <= n = {len(images)}")
    rng = numpy_rng(key)
    z, zeta = make_patterns(rng, patch_size, offset_norm)
    n = len(images)
    patched = rng.permutation(n)[:int(round(patched_fraction * n))]
    on_blank = rng.uniform(size=len(patched)) < blank_fraction
    x = images.copy()
    pi, bi = patched[~on_blank], patched[on_blank]
    x[pi] = _apply(images[pi], labels[pi], z, zeta, rng)
    x[bi] = _apply(images[bi], labels[bi], z, zeta, rng, blank=True,
                   scale=rng.uniform(0.0, 1.0, len(bi)))
    t_img, t_lab = sp.test.images, sp.test.labels
    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731
    return DigitsPatch(
        x_train=flat(x), y_train=labels, x_clean=flat(t_img),
        x_patched=flat(_apply(t_img, t_lab, z, zeta, rng)),
        x_patch_only=flat(_apply(t_img, t_lab, z, zeta, rng, blank=True)), y_test=t_lab,
        l2=np.float64(l2), width=width, batch_size=batch_size)
