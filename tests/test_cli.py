"""The command line as a user runs it: list, run, reproduce with resume, clear errors."""
import json
import os
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest

from simulations import cli


def _cli(*args, cwd=None, env=None):
    """The command in a new process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "simulations", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300, env=env)


def _main(capsys, *args):
    """The same command in this process (``cli.main``: what ``python -m simulations`` calls),
    where the process boundary is not what a test checks; returns (status, stdout, stderr)."""
    capsys.readouterr()
    status = cli.main(list(args))
    out = capsys.readouterr()
    return SimpleNamespace(returncode=status, stdout=out.out, stderr=out.err)


def test_list_shows_every_claim(capsys):
    r = _main(capsys, "list")
    assert r.returncode == 0
    for cid in ("covnoise.exact_moments", "covnoise.frobenius", "covnoise.negative_control",
                "covnoise.emulates_small_batch"):
        assert cid in r.stdout


@pytest.mark.parametrize("args, message", [
    (("reproduce", "--quick", "--jobs", "0"), "--jobs = 0 is not allowed: need an integer 1 <= N <= 256"),
    (("run", "no.such.claim", "--quick"), "unknown claim id 'no.such.claim'"),
    (("reproduce", "--quick", "--only", "covnoise.frobenius", "bogus"), "unknown claim id 'bogus'"),
    (("run", "covnoise.frobenius", "--quick", "--out", "/proc/forbidden"), "is not a writable folder"),
    (("reproduce", "--quick", "--keys", "0"), "--keys = 0 is not allowed: need an integer 1 <= K <= 100"),
    (("reproduce", "--quick", "--shard", "3/2"), "--shard = 3/2 is not allowed: need I/N with integers 0 <= I < N"),
    (("reproduce", "--quick", "--shard", "0/0"), "--shard = 0/0 is not allowed: need I/N with integers 0 <= I < N"),
    (("reproduce", "--quick", "--merge", "--force"), "--merge writes the report from stored evidence: it takes no --force"),
    (("reproduce", "--quick", "--coordinator", "127.0.0.1:9"), "--coordinator, --num-processes and --process-id go together"),
    (("run", "covnoise.frobenius", "--quick", "--coordinator", "127.0.0.1:9", "--num-processes", "2",
      "--process-id", "2"), "--process-id = 2 is not allowed: need an integer 0 <= I < N = 2"),
])
def test_errors_are_one_line_without_traceback(args, message, capsys):
    r = _main(capsys, *args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_an_error_in_a_real_process_exits_2_without_traceback():
    r = _cli("run", "no.such.claim", "--quick")
    assert r.returncode == 2 and "unknown claim id 'no.such.claim'" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_reproduce_writes_report_and_resumes(tmp_path, capsys):
    out = tmp_path / "out"
    args = ("reproduce", "--quick", "--only", "covnoise.negative_control", "selfdistill.collapse",
            "--out", str(out))
    r = _main(capsys, *args)
    assert r.returncode == 0, r.stderr
    for name in ("covnoise.negative_control.png", "selfdistill.collapse.png", "REPORT.md", "verdicts.json"):
        assert (out / name).stat().st_size > 0
    verdicts = json.loads((out / "verdicts.json").read_text())["verdicts"]
    assert [v["status"] for v in verdicts] == ["holds", "holds"]
    report = (out / "REPORT.md").read_text()
    assert "covnoise.negative_control" in report and "**Rule.**" in report
    again = _main(capsys, *args)
    assert again.returncode == 0 and again.stderr.count("stored evidence") == 2
    assert json.loads((out / "verdicts.json").read_text())["verdicts"] == verdicts
    # re-running one claim keeps the other claim's verdict in the report
    one = _main(capsys, "reproduce", "--quick", "--only", "selfdistill.collapse", "--out", str(out))
    assert one.returncode == 0, one.stderr
    assert json.loads((out / "verdicts.json").read_text())["verdicts"] == verdicts


def test_run_one_claim_prints_its_verdict(tmp_path, capsys):
    r = _main(capsys, "run", "selfdistill.closed_form", "--quick", "--seed", "3", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "holds"


def test_reproduce_at_several_keys_reports_each_verdict_and_their_agreement(tmp_path, capsys):
    out = tmp_path / "keys"
    r = _main(capsys, "reproduce", "--quick", "--only", "covnoise.negative_control", "--keys", "2",
             "--seed", "5", "--out", str(out))
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "verdicts.json").read_text())
    assert data["keys"] == ["5", "5.1"]
    (v,) = data["verdicts"]
    assert v["by_key"] == {"5": "holds", "5.1": "holds"} and v["agreement"] == "stable"
    report = (out / "REPORT.md").read_text()
    assert "keys 5, 5.1" in report and "holds / holds" in report and "| stable |" in report
    # two independent keys: different evidence (a key is more than a label)
    e0 = json.loads((out / ".evidence" / "5" / "covnoise.negative_control.json").read_text())
    e1 = json.loads((out / ".evidence" / "5.1" / "covnoise.negative_control.json").read_text())
    assert e0["evidence"]["mc_tail_mean"] != e1["evidence"]["mc_tail_mean"]


def test_distributed_without_a_cluster_is_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "OMPI_", "PMI_", "JAX_COORDINATOR", "TPU_"))}
    r = _cli("reproduce", "--quick", "--distributed", "--out", str(tmp_path), env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--distributed: JAX found no cluster environment" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_merge_needs_every_shard(tmp_path, capsys):
    r = _main(capsys, "reproduce", "--quick", "--merge", "--only", "covnoise.negative_control", "--out", str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--merge: 1 of 1 claim runs have no current evidence" in r.stderr
    assert "covnoise.negative_control at key 0" in r.stderr


_SHARDED = ("covnoise.negative_control", "selfdistill.closed_form", "selfdistill.collapse")


def test_shards_then_merge_write_the_report_of_one_run(tmp_path, capsys):
    shared, single = tmp_path / "shared", tmp_path / "single"
    base = [sys.executable, "-m", "simulations", "reproduce", "--quick", "--only", *_SHARDED,
            "--out", str(shared)]
    # two shards at the same time into one folder
    procs = [subprocess.Popen(base + ["--shard", f"{i}/2"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        logs = [p.communicate(timeout=300)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], logs
    assert not (shared / "REPORT.md").exists()  # shards write evidence, not the report
    ran = [{cid for cid in _SHARDED if f"{cid}: running" in log} for log in logs]
    assert ran[0] and ran[1] and not ran[0] & ran[1] and ran[0] | ran[1] == set(_SHARDED)
    merged = _main(capsys, "reproduce", "--quick", "--merge", "--only", *_SHARDED, "--out", str(shared))
    assert merged.returncode == 0, merged.stderr
    assert "running" not in merged.stderr
    one = _main(capsys, "reproduce", "--quick", "--only", *_SHARDED, "--jobs", "1", "--out", str(single))
    assert one.returncode == 0, one.stderr
    # two worker processes on this machine: two units (the selfdistill claims share a run)
    jobs = _main(capsys, "reproduce", "--quick", "--only", *_SHARDED, "--jobs", "2", "--out",
                 str(tmp_path / "jobs"))
    assert jobs.returncode == 0, jobs.stderr
    assert "2 units (claims that share a run, at one key) to run in 2 worker processes" in jobs.stderr
    for name in ("REPORT.md", "verdicts.json"):
        assert (shared / name).read_text() == (single / name).read_text()
        assert (tmp_path / "jobs" / name).read_text() == (single / name).read_text()
    # the same computation in another process: the same evidence, to the bit (the engine's
    # guarantee for the same call and shape on one machine)
    for cid in _SHARDED:
        own = json.loads((single / ".evidence" / "0" / f"{cid}.json").read_text())
        other = json.loads((tmp_path / "jobs" / ".evidence" / "0" / f"{cid}.json").read_text())
        for record in (own, other):
            record["evidence"].pop("wall_seconds", None)  # how long it took, not what it found
        assert own["evidence"] == other["evidence"] and own["hash"] == other["hash"]
    for cid in _SHARDED:
        assert (shared / f"{cid}.png").stat().st_size > 0
    assert not list(shared.rglob("*.lock")) and not list(shared.rglob("*.tmp"))
    # a plain reproduce over the complete folder runs nothing and writes the same report
    plain = _main(capsys, "reproduce", "--quick", "--only", *_SHARDED, "--out", str(shared))
    assert plain.returncode == 0 and plain.stderr.count("stored evidence") == 3
    assert (shared / "REPORT.md").read_text() == (single / "REPORT.md").read_text()


def test_a_claim_another_shard_is_writing_is_an_error(tmp_path, capsys):
    lock = tmp_path / ".evidence" / "0" / "covnoise.negative_control.lock"
    lock.parent.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lock.write_text(json.dumps({"owner": "shard 1/3", "host": socket.gethostname(),
                                    "pid": sleeper.pid}))
        r = _main(capsys, "reproduce", "--quick", "--only", "covnoise.negative_control", "--shard", "0/1",
                 "--out", str(tmp_path))
    finally:
        sleeper.kill()
        sleeper.wait()
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "covnoise.negative_control at key 0 is being written by shard 1/3" in r.stderr
    assert "two shards may not write the same claim" in r.stderr
    assert lock.exists()  # the other writer's lock is left alone
