"""Worker processes on one machine (``reproduce --jobs N``): which units go first, and the
default number of workers. That the report equals a one-process run's is tested with the
shards in tests/test_cli.py."""
from types import SimpleNamespace

import pytest

from simulations import workers
from theory.validation import InvalidParameter


def _unit(label, *ids):
    return (label, [SimpleNamespace(id=i) for i in ids])


def test_units_with_recorded_times_run_longest_first_and_unknown_ones_before_them():
    units = [_unit("0", "a"), _unit("0", "b", "c"), _unit("0", "d"), _unit("1", "a"), _unit("0", "e")]
    seconds = {"0": {"a": 10.0, "b": 1.0, "c": 2.0, "d": 30.0}, "1": {"a": 20.0}}
    order = [(label, [c.id for c in claims]) for label, claims in workers.order_units(units, seconds)]
    # e has no record (first); then d 30 s, a 15 s (mean over labels, at both labels), b + c 3 s
    assert order == [("0", ["e"]), ("0", ["d"]), ("0", ["a"]), ("1", ["a"]), ("0", ["b", "c"])]


def test_without_records_the_order_is_kept():
    units = [_unit("0", "x"), _unit("0", "y"), _unit("1", "x")]
    assert workers.order_units(units, {}) == units


def test_default_jobs_is_one_per_core_on_cpu_and_one_on_an_accelerator(monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    assert workers.default_jobs() == workers.cpu_cores() >= 1
    monkeypatch.setenv("JAX_PLATFORMS", "cuda")
    assert workers.default_jobs() == 1


@pytest.mark.parametrize("jobs", [0, -1, 257, 1.5, True, "2"])
def test_bad_job_counts_are_rejected(jobs):
    with pytest.raises(InvalidParameter, match=r"--jobs = .* is not allowed"):
        workers.check_jobs(jobs)
