"""simulations.registry: shared runs (memoized on config and key, stored once), claims
that declare them, decide()/holds(), and the registry's error messages."""
import json

import jax
import numpy as np
import pytest

from simulations import registry, report
from simulations.registry import (HYPOTHESIS, THEOREM, Claim, Evidence, Finding, SharedRun,
                                  Verdict, decide, holds)

CALLS = []


def _count_run(config, *, key):
    CALLS.append(config["n"])
    return {"x": np.arange(config["n"], dtype=float) + jax.random.uniform(key)}


RUN = SharedRun("test.counter", _count_run)


def _rule(ev, config):
    return Verdict(status="holds", summary=f"{ev.shared.x.sum():.3f}", measured={}, predicted={},
                   rule="-", sizes={})


def _figure(ev, verdict, config, path):
    path.write_text("figure")


def _claim(**kw):
    spec = dict(id="test.claim", paper="p", kind=THEOREM, statement="s", provenance="derived",
                testbed="t", configs={"quick": {"shared": {"n": 3}, "a": 1},
                                      "full": {"shared": {"n": 4}, "a": 1}},
                rule=_rule, figure=_figure, uses={"shared": RUN})
    spec.update(kw)
    return Claim(**spec)


def test_shared_run_is_memoized_on_config_and_key():
    registry.clear_runs()
    CALLS.clear()
    a = RUN({"n": 3}, key=jax.random.key(0))
    b = RUN({"n": 3}, key=jax.random.key(0))
    assert a is b and CALLS == [3]
    RUN({"n": 3, "extra": 1}, key=jax.random.key(0))  # any config field counts
    RUN({"n": 3}, key=jax.random.key(1))              # and the key
    assert CALLS == [3, 3, 3]
    assert isinstance(a, Evidence) and isinstance(a.x, np.ndarray)


def test_claims_declaring_a_shared_run_run_it_once_and_store_it_once(tmp_path):
    registry.clear_runs()
    CALLS.clear()
    one, two = _claim(), _claim(id="test.other", run=lambda c, *, key: {"own": c["a"]})
    with registry.run_store(tmp_path, "code"):
        _, ev1, v1 = one.evaluate("quick", key=jax.random.key(0))
        _, ev2, v2 = two.evaluate("quick", key=jax.random.key(0))
    assert CALLS == [3] and v1.claim_id == "test.claim" and v2.claim_id == "test.other"
    assert ev2.own == 1 and np.array_equal(ev1.shared.x, ev2.shared.x)
    assert len(list((tmp_path / "runs").glob("test.counter-*.json"))) == 1
    # the claim's own file holds only its own evidence; loading resolves the shared run
    label, cfg = "0", two.config("quick")
    h = report.config_hash(two, cfg, jax.random.key(0), "code")
    with registry.run_store(tmp_path, "code"):
        report.store_evidence(tmp_path, two, label, h, cfg, ev2)
        stored = json.loads(report.evidence_path(tmp_path, two.id, label).read_text())
        assert set(stored["evidence"]) == {"own"}
        back = report.load_evidence(tmp_path, two, label, h, cfg)
    assert np.array_equal(back.shared.x, ev2.shared.x)


def test_a_run_memoized_under_one_store_is_also_stored_in_the_next(tmp_path):
    """Two reproductions into two folders in one process (a notebook, the tests): the second
    folder must hold the shared run too, or its claims could not resume from it."""
    registry.clear_runs()
    CALLS.clear()
    for folder in (tmp_path / "a", tmp_path / "b"):
        with registry.run_store(folder, "code"):
            RUN({"n": 3}, key=jax.random.key(0))
        assert len(list((folder / "runs").glob("test.counter-*.json"))) == 1
    assert CALLS == [3]  # simulated once


def test_claim_spec_errors_name_the_field():
    with pytest.raises(ValueError, match="kind"):
        _claim(kind="lemma")
    with pytest.raises(ValueError, match="provenance"):
        _claim(provenance="folklore")
    with pytest.raises(ValueError, match="no entry for shared runs"):
        _claim(configs={"quick": {}, "full": {}})
    bad = _claim(rule=lambda ev, cfg: Verdict("confirmed", "", {}, {}, "", {}))
    with pytest.raises(ValueError, match="returned status 'confirmed'"):
        bad.evaluate("quick", key=jax.random.key(0))


def test_unknown_claim_id_lists_the_known_ones():
    with pytest.raises(KeyError, match="known ids: covnoise"):
        registry.get_claims(["nope.nothing"])


@pytest.mark.parametrize("parts, gate, expected", [
    ([True, True], None, "confirmed"),
    ([True, None], None, "inconclusive"),
    ([True, False], None, "refuted"),
    ([None, False], None, "refuted"),
    ([True, True], False, "inconclusive"),   # premise not met: never refuted
    ([False], False, "inconclusive"),
    ([True], None, "confirmed"),
    ([True], True, "confirmed"),
])
def test_decide(parts, gate, expected):
    findings = [Finding(f"f{i}", p, "detail") for i, p in enumerate(parts)]
    g = None if gate is None else Finding("premise", gate, "small LR not ahead")
    status, reason = decide(findings, gate=g)
    assert status == expected
    if gate is False:
        assert reason.startswith("premise not met")


def test_holds():
    assert holds({"a": True, "b": np.bool_(True)}) == ("holds", [])
    assert holds({"a": True, "b": False}) == ("violated", ["b"])


def test_hypothesis_statuses_are_enforced():
    c = _claim(kind=HYPOTHESIS)
    with pytest.raises(ValueError, match="allowed"):
        c.evaluate("quick", key=jax.random.key(0))
