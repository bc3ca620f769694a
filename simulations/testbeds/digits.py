"""scikit-learn's bundled 8×8 digits (1797 images, 10 classes) as a finite-sum testbed.

No download happens: the images ship with scikit-learn. This module gives

* :func:`load_digits_splits` — a fixed, stratified train / validation / test split of
  the images (pixel values scaled to [0, 1]), reproducible from an integer seed
  (:func:`split_indices`: the same split as indices into the images);
* a two-layer network (:func:`init_mlp`, :func:`mlp_logits`) and its mean
  cross-entropy / accuracy, pure functions of a params pytree, so optimizers, the
  engine and the claims all share the same model.

The data are NumPy float64 arrays; simulations cast them to their dtype.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from theory import validation as check

IMAGE_SHAPE = (8, 8)
N_CLASSES = 10


class Split(NamedTuple):
    """One split: images (m, 8, 8) in [0, 1] and integer labels (m,)."""

    images: np.ndarray
    labels: np.ndarray

    @property
    def features(self) -> np.ndarray:
        """(m, 64) flattened images."""
        return self.images.reshape(len(self.images), -1)


class DigitsSplits(NamedTuple):
    train: Split
    validation: Split
    test: Split


@functools.lru_cache(maxsize=1)
def _raw_digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError("the digits testbed needs scikit-learn "
                          "(pip install scikit-learn)") from err
    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64) / 16.0  # raw values are 0..16
    return images, np.asarray(bunch.target, dtype=np.int64)


def split_indices(*, seed: int = 0, validation_fraction: float = 0.2,
                  test_fraction: float = 0.2) -> dict:
    """The image indices of :func:`load_digits_splits` (same seed, same split): a dict
    ``{"train", "validation", "test"}`` of index arrays into the 1797 images. Every seed
    gives the same split sizes (the per-class counts are fixed)."""
    check.in_range("validation_fraction", validation_fraction, 0.0, 1.0,
                   closed_low=False, closed_high=False)
    check.in_range("test_fraction", test_fraction, 0.0, 1.0, closed_low=False, closed_high=False)
    if validation_fraction + test_fraction >= 1.0:
        check.fail("validation_fraction + test_fraction", validation_fraction + test_fraction,
                   "< 1 (the training split must not be empty)")
    _, labels = _raw_digits()
    rng = np.random.default_rng(seed)
    parts = {"train": [], "validation": [], "test": []}
    for c in range(N_CLASSES):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(validation_fraction * len(idx)))
        n_test = int(round(test_fraction * len(idx)))
        parts["validation"].append(idx[:n_val])
        parts["test"].append(idx[n_val:n_val + n_test])
        parts["train"].append(idx[n_val + n_test:])
    return {name: rng.permutation(np.concatenate(chunks)) for name, chunks in parts.items()}


def load_digits_splits(*, seed: int = 0, validation_fraction: float = 0.2,
                       test_fraction: float = 0.2) -> DigitsSplits:
    """A stratified random split of the 1797 digits into train / validation / test.

    Args:
      seed: integer seed of the split (the same seed gives the same split).
      validation_fraction, test_fraction: shares of each class (each in (0, 1), sum < 1).
    """
    idx = split_indices(seed=seed, validation_fraction=validation_fraction,
                        test_fraction=test_fraction)
    images, labels = _raw_digits()
    return DigitsSplits(**{name: Split(images[i], labels[i]) for name, i in idx.items()})


# ----------------------------------------------------------------- two-layer network
def init_mlp(*, key, n_in: int = 64, width: int = 64, n_out: int = N_CLASSES):
    """He-initialized two-layer ReLU network params {"w1", "b1", "w2", "b2"}.

    W₁ ~ N(0, 2/n_in), W₂ ~ N(0, 1/width), biases 0.
    """
    n_in = check.integer_at_least("n_in", n_in, 1)
    width = check.integer_at_least("width", width, 1)
    n_out = check.integer_at_least("n_out", n_out, 1)
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (n_in, width)) * jnp.sqrt(2.0 / n_in),
        "b1": jnp.zeros(width),
        "w2": jax.random.normal(k2, (width, n_out)) * jnp.sqrt(1.0 / width),
        "b2": jnp.zeros(n_out),
    }


def mlp_logits(params, x):
    """f(x) = W₂ᵀ relu(W₁ᵀ x + b₁) + b₂ for a batch x of shape (m, n_in)."""
    h = jax.nn.relu(x @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]


def cross_entropy(params, x, labels):
    """Mean softmax cross-entropy (1/m) Σ_i −log softmax(f(x_i))_{y_i}."""
    logits = mlp_logits(params, x)
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))


def accuracy(params, x, labels):
    """Fraction of examples whose arg-max logit equals the label."""
    return jnp.mean(jnp.argmax(mlp_logits(params, x), axis=1) == labels)
