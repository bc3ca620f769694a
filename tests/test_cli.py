"""The command line as a user runs it: list, run, reproduce with resume, clear errors."""
import json
import subprocess
import sys

import pytest


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "simulations", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_list_shows_every_claim():
    r = _cli("list")
    assert r.returncode == 0
    for cid in ("covnoise.exact_moments", "covnoise.frobenius", "covnoise.negative_control",
                "covnoise.emulates_small_batch"):
        assert cid in r.stdout


@pytest.mark.parametrize("args, message", [
    (("run", "no.such.claim", "--quick"), "unknown claim id 'no.such.claim'"),
    (("reproduce", "--quick", "--only", "covnoise.frobenius", "bogus"), "unknown claim id 'bogus'"),
    (("run", "covnoise.frobenius", "--quick", "--out", "/proc/forbidden"), "is not a writable folder"),
    (("reproduce", "--quick", "--keys", "0"), "--keys = 0 is not allowed: need an integer 1 <= K <= 100"),
])
def test_errors_are_one_line_without_traceback(args, message):
    r = _cli(*args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_reproduce_writes_report_and_resumes(tmp_path):
    out = tmp_path / "out"
    args = ("reproduce", "--quick", "--only", "covnoise.negative_control", "selfdistill.collapse",
            "--out", str(out))
    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    for name in ("covnoise.negative_control.png", "selfdistill.collapse.png", "REPORT.md", "verdicts.json"):
        assert (out / name).stat().st_size > 0
    verdicts = json.loads((out / "verdicts.json").read_text())["verdicts"]
    assert [v["status"] for v in verdicts] == ["holds", "holds"]
    report = (out / "REPORT.md").read_text()
    assert "covnoise.negative_control" in report and "**Rule.**" in report
    again = _cli(*args)
    assert again.returncode == 0 and again.stderr.count("stored evidence") == 2
    assert json.loads((out / "verdicts.json").read_text())["verdicts"] == verdicts
    # re-running one claim keeps the other claim's verdict in the report
    one = _cli("reproduce", "--quick", "--only", "selfdistill.collapse", "--out", str(out))
    assert one.returncode == 0, one.stderr
    assert json.loads((out / "verdicts.json").read_text())["verdicts"] == verdicts


def test_run_one_claim_prints_its_verdict(tmp_path):
    r = _cli("run", "selfdistill.closed_form", "--quick", "--seed", "3", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "holds"


def test_reproduce_at_several_keys_reports_each_verdict_and_their_agreement(tmp_path):
    out = tmp_path / "keys"
    r = _cli("reproduce", "--quick", "--only", "covnoise.negative_control", "--keys", "2",
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
