"""The registry-wide contract, for every registered claim at quick fidelity: the run's
evidence survives the JSON round trip, the rule returns an allowed status with the claim
id filled in, the figure is drawn, and the spec is complete. Theorems must hold."""
import json

import numpy as np
import pytest

from conftest import quick
from simulations.registry import (FIDELITIES, PROVENANCES, STATUSES, Evidence, all_claims,
                                  canonical_json, jsonable)

IDS = list(all_claims())


@pytest.mark.parametrize("claim_id", IDS)
def test_quick_run_verdict_and_figure(claim_id, tmp_path):
    claim, config, ev, verdict = quick(claim_id)
    assert isinstance(ev, Evidence)
    # the evidence as stored reads back to the same evidence (arrays converted once)
    again = Evidence(json.loads(canonical_json(ev)))
    assert canonical_json(again) == canonical_json(ev)
    assert verdict.claim_id == claim_id and verdict.status in STATUSES[claim.kind]
    if claim.kind == "theorem":
        assert verdict.status == "holds", verdict.summary
    json.dumps(verdict.to_json(), allow_nan=False)  # the report's JSON is valid
    path = tmp_path / f"{claim_id}.png"
    claim.draw(ev, verdict, config, path)
    assert path.stat().st_size > 10_000  # a drawn figure, not an empty canvas


@pytest.mark.parametrize("claim_id", IDS)
def test_spec_is_complete(claim_id):
    claim = all_claims()[claim_id]
    assert claim.provenance in PROVENANCES and claim.testbed and claim.statement
    assert claim.package and claim_id.split(".")[0]
    for fidelity in FIDELITIES:
        config = claim.config(fidelity)
        assert json.loads(canonical_json(config)) == config  # JSON-safe: hashable, storable


def test_evidence_typing():
    ev = Evidence(json.loads(json.dumps(jsonable(
        {"a": np.arange(3.0), "b": [1.0, float("nan"), float("inf")], "names": ["x", "y"],
         "nested": {"m": [[1, 2], [3, 4]]}, "ragged": [[1.0], [2.0, 3.0]], "s": "inf"}))))
    assert isinstance(ev.a, np.ndarray) and ev.a.dtype == float
    assert np.isnan(ev.b[1]) and np.isinf(ev.b[2])
    assert ev.names == ["x", "y"] and ev.nested.m.shape == (2, 2)
    assert [list(r) for r in ev.ragged] == [[1.0], [2.0, 3.0]]
    assert ev.s == np.inf
    with pytest.raises(KeyError, match="has: a, b"):
        ev["missing"]
    with pytest.raises(AttributeError, match="read-only"):
        ev.a = 1
