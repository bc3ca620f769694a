"""More than one machine: JAX's multi-controller runtime, and claims spread over shards.

(On one machine, ``reproduce --jobs N`` spreads the claims over N worker processes; see
:mod:`simulations.workers`.) Two ways to use more machines, which combine:

1. **One reproduction over several processes** (hosts, or one process per GPU). Every
   process runs ``python -m simulations reproduce ... --coordinator HOST:PORT
   --num-processes N --process-id I`` (or ``--distributed``, where the cluster tells JAX
   who is who: Slurm, Open MPI, Cloud TPU). :func:`initialize` starts
   ``jax.distributed``; then ``jax.devices()`` lists the devices of every process and
   :func:`simulations.engine.simulate` shards the seeds of each call over all of them.
   Every process runs the same claims in the same order (a multi-controller program);
   process 0 decides what is already stored (:func:`broadcast_flags`) and is the only
   one that writes evidence, figures and the report.
2. **Claims spread over machines** (``reproduce --shard I/N``): independent runs, one per
   shard, each taking a fixed subset of the (key, claim) units (:func:`shard_units`) and
   writing its evidence into one shared output folder; ``reproduce --merge`` then writes
   the report from the stored evidence without running anything. Claims that read the
   same shared run form one unit, so no shared run is simulated twice. While a claim
   runs its evidence file is locked (:class:`ClaimLock`): a second writer of the same
   claim (shards given different N, a shard started twice on two hosts) stops with an
   error that names the holder, and every file is written atomically (temporary file,
   then rename), so concurrent shards never corrupt each other's evidence.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from theory.validation import InvalidParameter


# ------------------------------------------------------------------ the runtime
def parse_coordinator(text: str) -> str:
    """``HOST:PORT`` with a port in 1…65535 (the address of process 0)."""
    m = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})", str(text))
    if not m or not 1 <= int(m.group(2)) <= 65535:
        raise InvalidParameter(f"--coordinator = {text!r} is not allowed: need HOST:PORT "
                               "(the address of process 0 and a free port, e.g. 10.0.0.1:8476)")
    return text


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, auto: bool = False) -> bool:
    """Start JAX's distributed runtime before anything touches a device.

    ``coordinator``, ``num_processes`` and ``process_id`` go together (all three, with
    0 <= process_id < num_processes); ``auto`` lets JAX read them from the cluster
    environment instead. Returns whether the runtime was started (False: one process).
    """
    import jax

    given = [x is not None for x in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise InvalidParameter("--coordinator, --num-processes and --process-id go together: "
                               "give all three (or --distributed to read them from the cluster)")
    if all(given) and auto:
        raise InvalidParameter("--distributed reads the coordinator from the cluster: do not also "
                               "give --coordinator, --num-processes and --process-id")
    if not any(given) and not auto:
        return False
    if all(given):
        parse_coordinator(coordinator)
        if not (isinstance(num_processes, int) and num_processes >= 1):
            raise InvalidParameter(f"--num-processes = {num_processes!r} is not allowed: need an "
                                   "integer N >= 1")
        if not (isinstance(process_id, int) and 0 <= process_id < num_processes):
            raise InvalidParameter(f"--process-id = {process_id!r} is not allowed: need an integer "
                                   f"0 <= I < N = {num_processes}")
    _cpu_collectives()
    try:
        if all(given):
            jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                       process_id=process_id)
        else:
            jax.distributed.initialize()
    except ValueError as e:
        if all(given):
            raise
        raise InvalidParameter(
            f"--distributed: JAX found no cluster environment to read the processes from ({e}); "
            "give --coordinator HOST:PORT --num-processes N --process-id I instead") from None
    except RuntimeError as e:  # no coordinator reached in time, or JAX already running
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise OSError(f"the distributed runtime did not start ({first})") from None
    return True


def _cpu_collectives() -> None:
    """CPU devices of several processes talk through gloo (the default in recent JAX;
    older releases had none)."""
    import jax

    try:
        if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except AttributeError:  # a JAX without the option
        pass


def process_index() -> int:
    import jax

    return jax.process_index()


def process_count() -> int:
    import jax

    return jax.process_count()


def is_primary() -> bool:
    """True in process 0 (and in a single-process run): the one that writes."""
    return process_index() == 0


def broadcast_flags(flags: Sequence[int] | None, n: int) -> np.ndarray:
    """Process 0's ``n`` integers, in every process (a no-op with one process). Process 0
    passes ``None`` when it failed, and the others then receive −1s."""
    values = np.full(n + 1, -1, np.int32) if flags is None else np.asarray([0, *flags], np.int32)
    if process_count() == 1:
        return values[1:] if flags is not None else np.full(n, -1, np.int32)
    from jax.experimental import multihost_utils

    got = np.asarray(multihost_utils.broadcast_one_to_all(values))
    return got[1:] if got[0] == 0 else np.full(n, -1, np.int32)


# ---------------------------------------------------------------------- shards
def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with integers 0 <= I < N (shards are numbered from 0)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m or not int(m.group(1)) < int(m.group(2)):
        raise InvalidParameter(f"--shard = {text} is not allowed: need I/N with integers 0 <= I < N "
                               "(shards are numbered from 0: 0/4, 1/4, 2/4, 3/4)")
    return int(m.group(1)), int(m.group(2))


def claim_groups(claims) -> list[list]:
    """The claims split into groups that share no shared run (connected components of
    "reads the same shared run"), each group in the given order, groups ordered by their
    first claim."""
    parent = list(range(len(claims)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, c in enumerate(claims):
        for run in c.uses.values():
            j = owner.setdefault(run.name, i)
            parent[root(i)] = root(j)
    groups: dict[int, list] = {}
    for i, c in enumerate(claims):
        groups.setdefault(root(i), []).append(c)
    return list(groups.values())


def shard_units(claims, labels: Sequence[str], shard: tuple[int, int] | None):
    """This shard's units: a list of (key label, claims of one group). The units are
    (label, group) pairs, labels outer, numbered 0, 1, …; shard (I, N) takes those with
    number ≡ I (mod N). Deterministic in the claims and labels alone, so shards given the
    same arguments split the work without talking to each other. ``None``: every unit."""
    groups = claim_groups(claims)
    units = [(label, g) for label in labels for g in groups]
    if shard is None:
        return units
    i, n = shard
    return [u for j, u in enumerate(units) if j % n == i]


# ----------------------------------------------------------------------- locks
class LockConflict(OSError):
    """Another run is writing this claim's evidence."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ClaimLock:
    """An exclusive lock file beside a claim's evidence while it runs.

    Created with ``O_CREAT | O_EXCL`` (atomic, also on network file systems) and holding
    who writes: ``owner`` (e.g. ``"shard 1/4"``), host, pid. A lock is taken over when
    its holder is certainly gone (same host, process no longer alive) or is the same
    shard restarted on another host; any other holder is a conflict (:class:`LockConflict`).
    """

    def __init__(self, path: Path, owner: str, what: str):
        self.path, self.owner, self.what = Path(path), owner, what
        self.me = {"owner": owner, "host": socket.gethostname(), "pid": os.getpid()}
        self.held = False

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def _stale(self, holder: dict) -> bool:
        if holder.get("host") == self.me["host"]:
            pid = int(holder.get("pid", -1))
            return pid == self.me["pid"] or pid <= 0 or not _alive(pid)
        return holder.get("owner") == self.owner

    def acquire(self) -> "ClaimLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None:  # being written or just released: look again
                    time.sleep(0.05)
                    holder = self._holder()
                    if holder is None:
                        with contextlib.suppress(FileNotFoundError):
                            self.path.unlink()
                        continue
                if not self._stale(holder):
                    raise LockConflict(
                        f"{self.what} is being written by {holder.get('owner')} (host "
                        f"{holder.get('host')}, pid {holder.get('pid')}; lock {self.path}): two "
                        "shards may not write the same claim, give every shard the same N and its "
                        "own I (if that run is gone, delete the lock file)") from None
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(dict(self.me, started=time.strftime("%Y-%m-%d %H:%M:%S")), f)
            self.held = True
            return self
        raise LockConflict(f"{self.what}: could not take the lock {self.path}")

    def release(self) -> None:
        if self.held:
            holder = self._holder()
            if holder is None or (holder.get("host"), holder.get("pid")) == (self.me["host"], self.me["pid"]):
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
            self.held = False

