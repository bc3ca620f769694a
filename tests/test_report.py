"""simulations.report: key labels and how verdicts at several keys are summarized."""
import jax
import numpy as np
import pytest

from simulations import report


def test_key_labels_and_keys():
    assert report.key_labels(7, 3) == ["7", "7.1", "7.2"]
    k0, k2 = report.key_from_label("7"), report.key_from_label("7.2")
    assert np.array_equal(jax.random.key_data(k0), jax.random.key_data(jax.random.key(7)))
    expected = jax.random.fold_in(jax.random.key(7), 2)
    assert np.array_equal(jax.random.key_data(k2), jax.random.key_data(expected))


@pytest.mark.parametrize("kind, statuses, expected", [
    ("theorem", ["holds"], "one key"),
    ("theorem", ["holds", "holds", "holds"], "stable"),
    ("theorem", ["holds", "violated"], "VIOLATED"),
    ("hypothesis", ["refuted", "refuted"], "stable"),
    ("hypothesis", ["confirmed", "inconclusive", "confirmed"], "consistent"),
    ("hypothesis", ["inconclusive", "inconclusive"], "stable"),
    ("hypothesis", ["confirmed", "refuted", "inconclusive"], "CONFLICT"),
])
def test_agreement(kind, statuses, expected):
    assert report.agreement(kind, statuses) == expected
