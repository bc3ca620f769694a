"""simulations.report: key labels and how verdicts at several keys are summarized."""
import json

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


def test_atomic_writes_leave_no_temporary_files_and_keep_the_run_time(tmp_path):
    from simulations import registry

    claim = registry.get_claims(["covnoise.negative_control"])[0]
    config = claim.config("quick")
    report.store_evidence(tmp_path, claim, "3", "h", config, {"x": [1.0, 2.0]}, seconds=2.5)
    report.store_evidence(tmp_path, claim, "3.1", "h", config, {"x": [1.0]})  # no time recorded
    report.write_json_atomic(tmp_path / ".evidence" / "runs" / "r-1.json", {"y": 1})
    assert report.stored_seconds(tmp_path) == {"3": {"covnoise.negative_control": 2.5}}
    assert not list(tmp_path.rglob("*.tmp"))
    stored = json.loads(report.evidence_path(tmp_path, claim.id, "3").read_text())
    assert stored["evidence"] == {"x": [1.0, 2.0]} and stored["seconds"] == 2.5
    assert report.lock_path(tmp_path, claim.id, "3").name == "covnoise.negative_control.lock"
