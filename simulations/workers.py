"""Claims in parallel worker processes on one machine: ``reproduce --jobs N``.

Most claims spend their time in one XLA program on one CPU device, or compiling it, and
neither fills more than one core. ``--jobs N`` runs N worker processes, each taking the
next (key, claim group) unit from a shared queue: the claims that read the same shared run
form one unit (:func:`simulations.distributed.claim_groups`), so no shared run is simulated
twice. The parent process holds every claim's lock (:class:`simulations.distributed.ClaimLock`)
for the whole run, as a one-process run does, and writes the report once the units are
done. The evidence, verdicts and figures are those of a one-process run with the same
arguments: each unit uses the key of its label and nothing else, the engine's results do
not depend on which process computes them, and every file is written atomically.

Workers are started with ``spawn`` (never ``fork``: a forked JAX runtime is not safe). On
an accelerator, one process should own the device, so the default there is one job.
"""
from __future__ import annotations

import importlib.util
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from theory.validation import InvalidParameter

# installed JAX plugins that mean an accelerator backend is available
_ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin",
                        "jax_rocm7_plugin", "libtpu")


def cpu_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_jobs() -> int:
    """Worker processes ``reproduce`` uses when ``--jobs`` is not given: one per CPU core
    on a CPU-only JAX; one where an accelerator backend may be picked (it is shared badly
    by several processes)."""
    platforms = os.environ.get("JAX_PLATFORMS", "").strip().lower()
    if platforms not in ("", "cpu"):
        return 1
    if not platforms and any(importlib.util.find_spec(m) is not None for m in _ACCELERATOR_PLUGINS):
        return 1
    return cpu_cores()


def check_jobs(jobs) -> int:
    if not (isinstance(jobs, int) and not isinstance(jobs, bool) and 1 <= jobs <= 256):
        raise InvalidParameter(f"--jobs = {jobs!r} is not allowed: need an integer 1 <= N <= 256 "
                               "(worker processes on this machine)")
    return jobs


def order_units(units, seconds: dict[str, dict[str, float]]):
    """Units, longest first where an earlier run in the same folder recorded how long
    each claim took (``seconds``: {label: {claim id: s}}, any label), so the last unit to
    start is a short one; units with no record come first, in the given order."""
    per_claim: dict[str, list[float]] = {}
    for by_claim in seconds.values():
        for cid, s in by_claim.items():
            per_claim.setdefault(cid, []).append(s)

    def cost(unit):
        known = [sum(per_claim[c.id]) / len(per_claim[c.id]) for c in unit[1] if c.id in per_claim]
        return float("inf") if len(known) < len(unit[1]) else sum(known)

    indexed = sorted(enumerate(units), key=lambda iu: (-cost(iu[1]), iu[0]))
    return [u for _, u in indexed]


def run_unit(out: str, label: str, todo: list[tuple[str, bool]], fidelity: str,
             fingerprint: str, draw: bool) -> list[tuple[str, str, object, str]]:
    """In a worker: one unit (claims of one group at one key). ``todo``: (claim id, run?)
    in registry order; a claim not to run is judged from its stored evidence. Returns
    (claim id, label, verdict, how) per claim; logs as a one-process run does."""
    from simulations import cli, engine, registry, report

    out = Path(out)
    results = []
    key = report.key_from_label(label)
    with registry.run_store(out / ".evidence", fingerprint):
        for cid, run in todo:
            claim = registry.get_claims([cid])[0]
            config = claim.config(fidelity)
            tag = f"[key {label}] {cid}"
            if run:
                cli._log(f"{tag}: running ({fidelity}, worker {os.getpid()})")
                t0 = time.perf_counter()
                with engine.reporting(lambda line, tag=tag: cli._log(f"      {tag}: {line}")):
                    evidence = claim.collect(config, key=key)
                seconds = time.perf_counter() - t0
                cli._store(out, claim, label, config, key, fingerprint, evidence, seconds,
                           shared=False)
                how = f"{seconds:.1f} s"
            else:
                evidence = cli._stored(out, claim, fidelity, label, fingerprint)[2]
                how = "stored evidence, unchanged configuration"
            verdict = claim.judge(evidence, config)
            if draw:
                claim.draw(evidence, verdict, config, out / f"{cid}.png")
            cli._log(f"{tag}: {verdict.status.upper()} ({how})\n      {verdict.summary}")
            results.append((cid, label, verdict, how))
        registry.clear_runs()
    return results


def run_parallel(units, flags: dict, *, jobs: int, out: Path, fidelity: str, fingerprint: str,
                 first_label: str, locks: dict, log) -> dict:
    """Run ``units`` ((label, claims) pairs) in ``jobs`` spawned workers; ``flags``:
    {(label, claim id): run?}; ``locks``: the parent's claim locks, each released when
    its unit is done. Returns {claim id: {label: Verdict}}. A failing unit stops the run
    (the units not started are cancelled) and its error is raised here."""
    verdicts: dict = {}
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        pending = {}
        for label, claims in units:
            todo = [(c.id, bool(flags[(label, c.id)])) for c in claims]
            fut = pool.submit(run_unit, str(out), label, todo, fidelity, fingerprint,
                              label == first_label)
            pending[fut] = (label, [c.id for c in claims])
        done_units = 0
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    label, ids = pending.pop(fut)
                    for cid, lab, verdict, _ in fut.result():
                        verdicts.setdefault(cid, {})[lab] = verdict
                    for cid in ids:
                        lock = locks.pop((label, cid), None)
                        if lock is not None:
                            lock.release()
                    done_units += 1
                    log(f"[{done_units}/{len(units)} units done]")
        except BaseException:
            # an error, or an interrupt of this process: stop the workers now (a unit cut
            # short leaves no evidence, every file being written atomically)
            for fut in pending:
                fut.cancel()
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()
            raise
    return verdicts
