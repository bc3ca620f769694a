"""theory.stochnorm against independent computations: batch normalization by hand, and
the moments over the mask by brute-force enumeration in float64."""
import itertools

import numpy as np
import pytest

from theory import stochnorm as snt
from theory.validation import InvalidParameter


@pytest.fixture
def layer(rng):
    m, c = 7, 4
    x = rng.normal(size=(m, c)) * 2 + 1
    return dict(x=x, gamma=rng.uniform(0.5, 2, c), beta=rng.normal(size=c),
                mean=rng.normal(size=c), var=rng.uniform(0.2, 3, c), w=rng.normal(size=(c, 3)))


def test_batch_norm_train_by_hand(layer):
    x, g, b, mu, var = (layer[k] for k in ("x", "gamma", "beta", "mean", "var"))
    y, new_mean, new_var = snt.batch_norm_train(x, g, b, mu, var, momentum=0.1, eps=1e-5)
    expect = g * (x - x.mean(0)) / np.sqrt(np.var(x, axis=0) + 1e-5) + b
    np.testing.assert_allclose(y, expect, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(new_mean, 0.9 * mu + 0.1 * x.mean(0), rtol=1e-14)
    np.testing.assert_allclose(new_var, 0.9 * var + 0.1 * np.var(x, axis=0, ddof=1), rtol=1e-14)
    _, _, biased = snt.batch_norm_train(x, g, b, mu, var, unbiased=False)
    np.testing.assert_allclose(biased, 0.9 * var + 0.1 * np.var(x, axis=0), rtol=1e-14)
    np.testing.assert_allclose(snt.batch_norm_eval(x, g, b, mu, var),
                               g * (x - mu) / np.sqrt(var + 1e-5) + b, rtol=1e-14)


def test_masks_are_all_masks_with_their_probabilities():
    s, prob = snt.masks(3, 0.3)
    assert s.shape == (8, 3) and len({tuple(r) for r in s}) == 8
    np.testing.assert_allclose(prob.sum(), 1.0, rtol=1e-15)
    for row, q in zip(s, prob):
        assert q == pytest.approx(np.prod(np.where(row == 1, 0.3, 0.7)), rel=1e-15)


def _enumerate(layer, p):
    """Outputs y and readouts z for every mask, and the masks' probabilities, by hand."""
    x, g, b, mu, var, w = (layer[k] for k in ("x", "gamma", "beta", "mean", "var", "w"))
    xb = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    xm = (x - mu) / np.sqrt(var + 1e-5)
    ys, probs = [], []
    for s in itertools.product((0, 1), repeat=x.shape[1]):
        s = np.array(s, float)
        ys.append(g * ((1 - s) * xm + s * xb) + b)
        probs.append(np.prod(p ** s * (1 - p) ** (1 - s)))
    ys, probs = np.array(ys), np.array(probs)
    return xb, xm, ys, ys @ w, probs


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 1.0])
def test_output_moments_equal_enumeration(layer, p):
    xb, xm, ys, _, probs = _enumerate(layer, p)
    mean = np.einsum("s,sic->ic", probs, ys)
    var = np.einsum("s,sic->ic", probs, (ys - mean) ** 2)
    mean_cf, var_cf = snt.output_moments(xb, xm, layer["gamma"], layer["beta"], p)
    np.testing.assert_allclose(mean_cf, mean, atol=1e-12)
    np.testing.assert_allclose(var_cf, var, atol=1e-12)
    xb2, xm2 = snt.branches(layer["x"], layer["mean"], layer["var"])
    np.testing.assert_allclose(xb2, xb, rtol=1e-14)
    np.testing.assert_allclose(xm2, xm, rtol=1e-14)


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_readout_covariance_equals_enumeration(layer, p):
    xb, xm, _, z, probs = _enumerate(layer, p)
    zc = z - np.einsum("s,sij->ij", probs, z)
    cov = np.einsum("s,sij,skl->ikjl", probs, zc, zc)
    cf = snt.readout_covariance(xb, xm, layer["gamma"], layer["w"], p)
    np.testing.assert_allclose(cf, cov, atol=1e-12)
    np.testing.assert_allclose(snt.readout_variance(xb, xm, layer["gamma"], layer["w"], p),
                               np.einsum("iijj->ij", cov), atol=1e-12)
    # one draw per pass makes examples co-vary: off-diagonal (i != k) entries are not 0
    m = xb.shape[0]
    assert np.max(np.abs(cf[~np.eye(m, dtype=bool)])) > 0.1


def test_invalid_inputs_are_named():
    with pytest.raises(InvalidParameter, match="p = 1.5 is not allowed"):
        snt.masks(3, 1.5)
    with pytest.raises(InvalidParameter, match="n_channels = 17"):
        snt.masks(17, 0.5)
    with pytest.raises(InvalidParameter, match="x = .* m >= 2"):
        snt.batch_norm_train(np.ones((1, 3)), 1, 0, 0, 1)
    with pytest.raises(InvalidParameter, match="momentum = 2"):
        snt.batch_norm_train(np.ones((4, 3)), 1, 0, 0, 1, momentum=2.0)
    with pytest.raises(InvalidParameter, match="weight = .*C = 2 rows"):
        snt.readout_covariance(np.ones((3, 2)), np.zeros((3, 2)), np.ones(2), np.ones((3, 1)), 0.5)
    with pytest.raises(InvalidParameter, match="xhat_moving has shape"):
        snt.output_moments(np.ones((3, 2)), np.zeros((3, 3)), 1.0, 0.0, 0.5)
