"""The digits two-layer network on any classification splits, up to the full batch, on
the digits data or on a synthetic Gaussian mixture of the same sizes.

:class:`ClassifierMLP` is :class:`simulations.testbeds.digits_mlp.DigitsMLP` (same data
fields, network, He initialization, full training loss, accuracy metrics and, for
B < n, the same oracle: B indices drawn uniformly with replacement, covariance Σ(w)/B)
whose oracle at B = n is the full-batch gradient ∇F (gradient descent, no noise).
Drawing B distinct indices per step would need a permutation of n per step, which costs
ten times the gradient at small B on CPU.

:func:`mixture_splits` draws a K-class Gaussian mixture with the digits task's sizes
(d = 64 features, K = 10 classes, 1079 / 359 / 359 training / validation / test examples):
class k has ``clusters`` centres μ_kj ~ N(0, (s²/d)·I_d) (s = ``separation``), an example
of class k is x = μ_kj + (σ/√d)·ξ with j uniform and ξ ~ N(0, I_d), and a fraction
``label_noise`` of the *training* labels is replaced by a uniformly random class. Few
examples per cluster and noisy training labels leave room to over-fit, the regime in
which the large-batch generalization gap is discussed. Same sizes as digits also means
one compiled program serves both testbeds.
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np

from simulations.keys import numpy_rng
from simulations.testbeds import digits, digits_mlp
from theory import validation as check

SIZES = dict(n_train=1079, n_val=359, n_test=359)  #: the digits split sizes
N_FEATURES, N_CLASSES = 64, digits.N_CLASSES


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ClassifierMLP(digits_mlp.DigitsMLP):
    """The digits network on any splits (fields as ``DigitsMLP``); B = n is the full batch."""

    def gradient(self, params, *, key):
        """B < n: ``DigitsMLP``'s minibatch gradient (B indices with replacement);
        B = n: the full-batch gradient ∇F."""
        if self.batch_size == self.y_train.shape[0]:  # static: sizes are shapes
            return jax.grad(self.loss)(params)
        return super().gradient(params, key=key)


def _check_batch(batch_size, n):
    if isinstance(batch_size, bool) or not (np.isfinite(batch_size) and float(batch_size) == int(batch_size)
                                            and 1 <= int(batch_size) <= n):
        check.fail("B", batch_size, f"an integer batch size 1 <= B <= n = {n} (training examples)")
    return int(batch_size)


def make_classifier(splits, batch_size: int, *, width: int = 64) -> ClassifierMLP:
    """The testbed on ``splits`` (train / validation / test, each with ``features`` (m, 64)
    and integer ``labels`` in [0, 10)); 1 <= B <= n."""
    n = len(splits.train.labels)
    return ClassifierMLP(x_train=splits.train.features, y_train=splits.train.labels,
                         x_val=splits.validation.features, y_val=splits.validation.labels,
                         x_test=splits.test.features, y_test=splits.test.labels,
                         batch_size=_check_batch(batch_size, n),
                         width=check.integer_at_least("width", width, 1))


def mixture_splits(*, key, clusters: int = 4, separation: float = 3.0, noise: float = 1.0,
                   label_noise: float = 0.1, n_train: int = SIZES["n_train"],
                   n_val: int = SIZES["n_val"], n_test: int = SIZES["n_test"]) -> digits.DigitsSplits:
    """A draw of the Gaussian-mixture task (see the module docstring), from ``key``, as
    :class:`simulations.testbeds.digits.DigitsSplits` (features of shape (m, 64)).

    Args:
      key: typed key; geometry, examples and label noise all derive from it.
      clusters: centres per class (>= 1).
      separation: s > 0, the centres' scale (‖μ‖ ≈ s).
      noise: σ > 0, the within-cluster scale (‖x − μ‖ ≈ σ).
      label_noise: share of training labels replaced by a uniform class, in [0, 1).
      n_train, n_val, n_test: split sizes (>= 1 each).
    """
    clusters = check.integer_at_least("clusters", clusters, 1)
    separation = check.positive("separation", separation)
    noise = check.positive("noise", noise)
    label_noise = check.in_range("label_noise", label_noise, 0.0, 1.0)
    sizes = {name: check.integer_at_least(name, v, 1)
             for name, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test))}
    rng = numpy_rng(key)
    d, K = N_FEATURES, N_CLASSES
    centres = rng.standard_normal((K, clusters, d)) * separation / np.sqrt(d)
    out = {}
    for name, split in (("n_train", "train"), ("n_val", "validation"), ("n_test", "test")):
        m = sizes[name]
        y = rng.integers(0, K, m)
        j = rng.integers(0, clusters, m)
        x = centres[y, j] + rng.standard_normal((m, d)) * noise / np.sqrt(d)
        if split == "train" and label_noise > 0:
            flip = rng.random(m) < label_noise
            y = np.where(flip, rng.integers(0, K, m), y)
        out[split] = digits.Split(x, y.astype(np.int64))  # "images" of shape (m, d)
    return digits.DigitsSplits(**out)


def make_digits_classifier(batch_size: int, *, split_seed: int = 0, width: int = 64) -> ClassifierMLP:
    """:class:`ClassifierMLP` on :func:`simulations.testbeds.digits.load_digits_splits`."""
    return make_classifier(digits.load_digits_splits(seed=split_seed), batch_size, width=width)


def make_mixture_classifier(batch_size: int, *, key, width: int = 64, **mixture) -> ClassifierMLP:
    """:class:`ClassifierMLP` on a :func:`mixture_splits` draw from ``key``."""
    return make_classifier(mixture_splits(key=key, **mixture), batch_size, width=width)
