"""simulations.distributed: shards of the claims, claim locks, and a real two-process run
of the engine and of a claim under JAX's distributed runtime (two CPU processes on the
loopback address, one device each, outputs gathered over gloo)."""
import json
import os
import socket
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np
import pytest

from conftest import run_on_cpu_devices
from simulations import distributed, registry
from simulations.distributed import ClaimLock, LockConflict, claim_groups, parse_shard, shard_units
from theory.validation import InvalidParameter


# ----------------------------------------------------------------------------- shards
@pytest.mark.parametrize("text, expected", [("0/1", (0, 1)), ("2/3", (2, 3)), (" 7 / 8 ", (7, 8))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["3/2", "2/2", "0/0", "1", "-1/2", "a/b", "1/2/3", ""])
def test_parse_shard_rejects(text):
    with pytest.raises(InvalidParameter, match=r"--shard = .* need I/N with integers 0 <= I < N"):
        parse_shard(text)


def test_shards_partition_the_units_and_keep_shared_runs_together():
    claims = registry.get_claims(None)
    labels = ["4", "4.1", "4.2"]
    groups = claim_groups(claims)
    # a group shares no shared run with another, and every claim is in exactly one group
    runs = [{r.name for c in g for r in c.uses.values()} for g in groups]
    assert all(not (runs[a] & runs[b]) for a in range(len(runs)) for b in range(a))
    assert sorted(c.id for g in groups for c in g) == sorted(c.id for c in claims)
    assert any(len(g) > 1 for g in groups)  # some claims do share runs
    every = [(lab, c.id) for lab, g in shard_units(claims, labels, None) for c in g]
    assert sorted(every) == sorted((lab, c.id) for lab in labels for c in claims)
    for n in (1, 2, 3, 7):
        parts = [[(lab, c.id) for lab, g in shard_units(claims, labels, (i, n)) for c in g]
                 for i in range(n)]
        assert sorted(u for part in parts for u in part) == sorted(every)  # disjoint and complete
        sizes = [len(shard_units(claims, labels, (i, n))) for i in range(n)]
        assert max(sizes) - min(sizes) <= 1  # units dealt round-robin
    # deterministic: the same arguments give the same split
    assert shard_units(claims, labels, (1, 3)) == shard_units(claims, labels, (1, 3))


# ------------------------------------------------------------------------------ locks
def _write_holder(path, **holder):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(holder))


def test_lock_is_exclusive_and_released(tmp_path):
    path = tmp_path / "0" / "a.lock"
    lock = ClaimLock(path, "shard 0/2", "a at key 0").acquire()
    assert json.loads(path.read_text())["owner"] == "shard 0/2"
    lock.release()
    assert not path.exists()


def test_lock_conflicts_with_a_live_writer_and_takes_over_a_dead_one(tmp_path):
    path = tmp_path / "0" / "a.lock"
    here = socket.gethostname()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_holder(path, owner="shard 1/3", host=here, pid=sleeper.pid)
        with pytest.raises(LockConflict, match=r"a at key 0 is being written by shard 1/3 .*"
                                               r"two shards may not write the same claim"):
            ClaimLock(path, "shard 0/2", "a at key 0").acquire()
        # the same shard started twice on one host is a conflict too
        _write_holder(path, owner="shard 0/2", host=here, pid=sleeper.pid)
        with pytest.raises(LockConflict):
            ClaimLock(path, "shard 0/2", "a at key 0").acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    # its process is gone: the lock is stale and taken over
    lock = ClaimLock(path, "shard 0/2", "a at key 0").acquire()
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()
    # on another host liveness cannot be checked: the same shard (a restart) takes over,
    # another shard is a conflict
    _write_holder(path, owner="shard 1/2", host=here + "-elsewhere", pid=1)
    with pytest.raises(LockConflict, match="shard 1/2"):
        ClaimLock(path, "shard 0/2", "a at key 0").acquire()
    ClaimLock(path, "shard 1/2", "a at key 0").acquire().release()
    assert not path.exists()


# ------------------------------------------------------------------- two processes
_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from simulations import cli
    out, npz, coordinator, n, i = sys.argv[1:6]
    args = ["reproduce", "--quick", "--only", "covnoise.negative_control", "selfdistill.collapse",
            "--out", out]
    if coordinator != "-":
        args += ["--coordinator", coordinator, "--num-processes", n, "--process-id", i]
    assert cli.main(args) == 0  # starts the distributed runtime first
    import jax
    from simulations import engine, optimizers
    from simulations.testbeds import make_noisy_quadratic
    from theory import quadratic as qt
    tb = make_noisy_quadratic(d=8, x0_norm=2.0, key=jax.random.key(3))
    D = optimizers.covariance_factor(qt.structured_covariance(np.asarray(tb.hessian), "full", 0.05))
    hp = {"learning_rate": np.array([0.5, 1.0]), "noise_factor": np.stack([D, D])}
    def loss(t, p):
        return t.loss(p)
    r = engine.simulate(tb, optimizers.make_noisy_sgd, hp, key=jax.random.key(0), n_seeds=21,
                        n_steps=20, record_every=5, metrics={"loss": loss}, window_metrics={"w": loss},
                        return_final=True, seed_chunk=8)
    assert (r.metadata["devices"], r.metadata["processes"]) == (2, int(n)), r.metadata
    np.savez(f"{npz}.{jax.process_index()}.npz", final=r.final_params, loss=r.records["loss"],
             w=r.windows["w"], diverged=r.diverged_at)
""")

_TIMEOUT = 240  # seconds per process; a healthy run takes well under a minute


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(n_devices, *args):
    try:
        return run_on_cpu_devices(n_devices, ["-c", _SCRIPT, *map(str, args)], timeout=_TIMEOUT,
                                  capture_output=True, text=True)
    except subprocess.CalledProcessError as e:
        raise AssertionError(f"process {args[-1]} failed:\n{e.stderr[-3000:]}") from None


def _npz(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def test_two_processes_equal_one_process_with_as_many_devices(tmp_path, capsys):
    coordinator = f"127.0.0.1:{_free_port()}"
    # two processes, one CPU device each; subprocess.run kills a process past its timeout
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(_run, 1, tmp_path / "two", tmp_path / "two", coordinator, 2, i)
                for i in range(2)]
        logs = [r.result() for r in runs]
    # one process, two devices: the same compiled per-device program
    _run(2, tmp_path / "one", tmp_path / "one", "-", 1, 0)

    one, two = _npz(tmp_path / "one.0.npz"), [_npz(tmp_path / f"two.{i}.npz") for i in range(2)]
    for name in one:  # every process holds the whole result, bitwise equal to one process
        assert np.array_equal(two[0][name], one[name]) and np.array_equal(two[1][name], one[name])
    # against this process's device count: the engine's round-off guarantee (d = 8, 20 steps)
    from test_engine import _hp, _loss, _setup
    from simulations import engine, optimizers

    tb, A, C, D = _setup()
    here = engine.simulate(tb, optimizers.make_noisy_sgd, _hp(D, [0.5, 1.0]), key=jax.random.key(0),
                           n_seeds=21, n_steps=20, record_every=5, metrics={"loss": _loss},
                           return_final=True)
    bound = 20 * (8 + 1) * np.finfo(np.float32).eps * np.max(np.abs(one["final"]))
    assert np.max(np.abs(here.final_params - one["final"])) <= bound

    # the claims: process 0 wrote the same report as the single process; process 1 wrote nothing
    for name in ("REPORT.md", "verdicts.json"):
        assert (tmp_path / "two" / name).read_text() == (tmp_path / "one" / name).read_text()
    assert "HOLDS" in logs[0].stderr and "HOLDS" not in logs[1].stderr
    assert not list((tmp_path / "two").rglob("*.lock")) and not list((tmp_path / "two").rglob("*.tmp"))
    # what process 0 stored (claims and the shared run) resumes in a plain run
    from simulations import cli

    capsys.readouterr()
    assert cli.main(["reproduce", "--quick", "--only", "covnoise.negative_control", "selfdistill.collapse",
                     "--out", str(tmp_path / "two")]) == 0
    assert capsys.readouterr().err.count("stored evidence") == 2


def test_process_flags_are_checked_before_starting():
    with pytest.raises(InvalidParameter, match="go together"):
        distributed.initialize("127.0.0.1:1234", 2, None)
    with pytest.raises(InvalidParameter, match=r"--process-id = 2 .* 0 <= I < N = 2"):
        distributed.initialize("127.0.0.1:1234", 2, 2)
    with pytest.raises(InvalidParameter, match=r"--coordinator = 'nohost' .* HOST:PORT"):
        distributed.initialize("nohost", 2, 0)
    with pytest.raises(InvalidParameter, match=r"--num-processes = 0"):
        distributed.initialize("127.0.0.1:1234", 0, 0)
    assert distributed.initialize() is False  # no flags: one process, nothing started
