"""Command line: ``python -m simulations {list, run, reproduce, bench}``.

    python -m simulations list                      the claims, their kind and paper
    python -m simulations run ID [--quick]          one claim: figure, evidence, verdict
    python -m simulations reproduce [--quick] [--only ID ...] [--out DIR] [--seed N]
                                    [--keys K] [--jobs N] [--force] [--shard I/N | --merge]
    python -m simulations bench                     engine throughput vs NumPy baselines

``--keys K`` runs every claim at K independent keys derived from ``--seed`` and the
report shows the verdict at each key and whether they agree (see
:mod:`simulations.report`). ``--shard I/N`` runs the I-th of N deterministic parts of the
(key, claim) units into the output folder and writes no report; ``--merge`` writes the
report from the stored evidence of every shard, running nothing. ``--coordinator
HOST:PORT --num-processes N --process-id I`` (or ``--distributed``) runs ``run`` or
``reproduce`` as one of N cooperating processes under JAX's distributed runtime: the
engine shards seeds over the devices of all of them and only process 0 writes (see
:mod:`simulations.distributed`). Errors (bad arguments, unknown claim ids, an unwritable
output folder, invalid parameters, a claim another shard is writing) print one line on
stderr and exit with status 2, without a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from theory.validation import InvalidParameter


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulations",
                                description="Theory-verification simulations for large-batch SGD.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the claims")
    for name, help_ in (("run", "run one claim"), ("reproduce", "run every claim and write the report")):
        q = sub.add_parser(name, help=help_)
        if name == "run":
            q.add_argument("id", help="claim id (see `list`)")
        else:
            q.add_argument("--only", nargs="+", metavar="ID", help="only these claim ids")
            q.add_argument("--keys", type=int, default=1, metavar="K",
                           help="run every claim at K independent keys derived from --seed (default 1)")
            q.add_argument("--shard", metavar="I/N", default=None,
                           help="run only part I of N (0 <= I < N) of the (key, claim) units, "
                                "into a folder the shards share; no report (see --merge)")
            q.add_argument("--merge", action="store_true",
                           help="write the report from the evidence the shards stored; run nothing")
            q.add_argument("--jobs", type=int, default=None, metavar="N",
                           help="worker processes on this machine (default: one per CPU core on a "
                                "CPU-only JAX, else 1)")
        q.add_argument("--quick", action="store_true", help="quick fidelity (seconds per claim)")
        q.add_argument("--out", type=Path, default=None,
                       help="output folder (default figures/, or figures/quick with --quick)")
        q.add_argument("--seed", type=int, default=0, help="root PRNG seed (default 0)")
        q.add_argument("--force", action="store_true", help="ignore stored evidence")
        d = q.add_argument_group("several processes (JAX distributed runtime; process 0 writes)")
        d.add_argument("--coordinator", metavar="HOST:PORT", default=None,
                       help="address of process 0 and a free port")
        d.add_argument("--num-processes", type=int, metavar="N", default=None)
        d.add_argument("--process-id", type=int, metavar="I", default=None)
        d.add_argument("--distributed", action="store_true",
                       help="read coordinator, process count and id from the cluster (Slurm, Open MPI, TPU)")
    b = sub.add_parser("bench", help="engine benchmark against NumPy baselines")
    b.add_argument("--seeds", type=int, default=1024)
    b.add_argument("--steps", type=int, default=1000)
    b.add_argument("--dim", type=int, default=64)
    b.add_argument("--devices", default="1,2,4,8", metavar="LIST",
                   help="device counts of the scaling table (CPU: forced host devices; '' skips it)")
    b.add_argument("--evidence", type=Path, default=None, metavar="DIR",
                   help="also tabulate the reproduction wall time per paper stored in DIR")
    b.add_argument("--parts", default="engine,sweep,labelnoise,scaling",
                   help="comma-separated parts to run (default: all)")
    return p


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _check_out(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise OSError(f"--out = {str(out)!r} is not a writable folder ({e.strerror or e})") from None
    return out


def _check_keys(n_keys) -> int:
    if not (isinstance(n_keys, int) and 1 <= n_keys <= 100):
        raise InvalidParameter(f"--keys = {n_keys!r} is not allowed: need an integer 1 <= K <= 100")
    return n_keys


def _stored(out, claim, fidelity, label, fingerprint):
    from simulations import report

    config = claim.config(fidelity)
    key = report.key_from_label(label)
    return config, key, report.load_evidence(
        out, claim, label, report.config_hash(claim, config, key, fingerprint), config)


def _check_merge(out, claims, labels, fidelity, fingerprint) -> None:
    missing = [(c.id, label) for label in labels for c in claims
               if _stored(out, c, fidelity, label, fingerprint)[2] is None]
    if missing:
        cid, label = missing[0]
        raise ValueError(
            f"--merge: {len(missing)} of {len(claims) * len(labels)} claim runs have no current "
            f"evidence in {str(out)!r} (first: {cid} at key {label}); wait until every shard has "
            "finished (each with the same --quick, --keys, --seed, --only and code), then merge")


def _plan(out, units, *, fidelity, fingerprint, force, owner):
    """Process 0: which (label, claim) units must run; takes their locks. Returns the
    flags (1 = run) in unit order and the locks held."""
    from simulations import distributed, report

    flags, locks = [], {}
    try:
        for label, claims in units:
            for claim in claims:
                stored = None if force else _stored(out, claim, fidelity, label, fingerprint)[2]
                if stored is None:
                    lock = distributed.ClaimLock(report.lock_path(out, claim.id, label), owner,
                                                 f"{claim.id} at key {label}").acquire()
                    locks[(label, claim.id)] = lock
                    if not force and _stored(out, claim, fidelity, label, fingerprint)[2] is not None:
                        lock.release()  # another run stored it meanwhile
                        locks.pop((label, claim.id))
                        stored = True
                flags.append(int(stored is None))
    except BaseException:
        for lock in locks.values():
            lock.release()
        raise
    return flags, locks


def run_claims(ids, *, fidelity: str, out: Path, seed: int, n_keys: int = 1, force: bool = False,
               write_report: bool = True, shard: tuple[int, int] | None = None,
               merge: bool = False, jobs: int = 1):
    """Run claims at K keys with resume; returns {id: {key label: Verdict}} (in process 0;
    the other processes of a distributed run return {}).

    Shared by ``run`` and ``reproduce``. Figures are drawn at the first key. ``shard``
    (I, N): only this shard's units (:func:`simulations.distributed.shard_units`), no
    report. ``merge``: run nothing, judge the stored evidence (all of it must be there)
    and write the report. ``jobs`` > 1: the units that must run are spread over that many
    worker processes on this machine (:mod:`simulations.workers`; one process only).
    """
    from simulations import distributed, engine, registry, report, workers

    n_keys = _check_keys(n_keys)
    jobs = workers.check_jobs(jobs)
    claims = registry.get_claims(ids)
    labels = report.key_labels(seed, n_keys)
    primary, several = distributed.is_primary(), distributed.process_count() > 1
    log = _log if primary else (lambda msg: None)
    fingerprint = report.code_fingerprint()
    # this run's claims at each key, in registry order (a shard's share of the units)
    chosen = set() if merge else {(lab, c.id) for lab, g in distributed.shard_units(claims, labels, shard)
                                  for c in g}
    units = [(lab, [c for c in claims if (lab, c.id) in chosen]) for lab in labels]
    owner = f"shard {shard[0]}/{shard[1]}" if shard else "reproduce"
    n_units = len(chosen)
    flags, locks = None, {}
    if primary:
        try:
            out = _check_out(out)
            with registry.run_store(out / ".evidence", fingerprint):
                if merge:
                    _check_merge(out, claims, labels, fidelity, fingerprint)
                flags, locks = _plan(out, units, fidelity=fidelity, fingerprint=fingerprint,
                                     force=force, owner=owner)
        finally:
            # the other processes wait for the plan: tell them when process 0 failed
            flags = distributed.broadcast_flags(flags, n_units)
    else:
        flags = distributed.broadcast_flags(None, n_units)
        if n_units and flags[0] < 0:
            raise OSError("process 0 stopped before running (see its error)")
    if shard:
        log(f"shard {shard[0]}/{shard[1]}: {n_units} of {len(claims) * len(labels)} claim runs "
            f"(claims at keys), {int(np.sum(flags))} to run, the rest stored")
    verdicts: dict = {}
    t_all = time.perf_counter()
    if jobs > 1 and not several and not merge:
        flag_of = dict(zip([(lab, c.id) for lab, g in units for c in g], (int(f) for f in flags)))
        try:
            verdicts = _run_jobs(claims, labels, shard, flag_of, jobs=jobs, out=out,
                                 fidelity=fidelity, fingerprint=fingerprint, locks=locks, log=log)
        finally:
            for lock in locks.values():
                lock.release()
        flags = []  # nothing left for the loop below
        units = []
    # one process: shared runs are stored in (and resumed from) the evidence folder; several:
    # every process must make the same engine calls, so shared runs are recomputed with the
    # claim that needs them and process 0 stores them
    flag = iter(flags)
    try:
        with registry.run_store(out / ".evidence", fingerprint):
            for label, mine in units:
                for i, claim in enumerate(mine, 1):
                    config = claim.config(fidelity)
                    key = report.key_from_label(label)
                    tag = f"[{i}/{len(mine)}]" + (f" key {label}" if n_keys > 1 else "")
                    t0 = time.perf_counter()
                    if next(flag):
                        log(f"{tag} {claim.id}: running ({fidelity})")
                        with engine.reporting(lambda line: log(f"      {line}")), \
                                registry.run_store(None if several else out / ".evidence", fingerprint):
                            evidence = claim.collect(config, key=key)
                        seconds = time.perf_counter() - t0
                        if primary:
                            _store(out, claim, label, config, key, fingerprint, evidence, seconds,
                                   shared=several)
                            locks.pop((label, claim.id)).release()
                        how = f"{seconds:.1f} s"
                    elif primary:
                        evidence = _stored(out, claim, fidelity, label, fingerprint)[2]
                        how = "stored evidence, unchanged configuration"
                    if not primary:
                        continue
                    verdict = claim.judge(evidence, config)
                    if label == labels[0]:
                        claim.draw(evidence, verdict, config, out / f"{claim.id}.png")
                    verdicts.setdefault(claim.id, {})[label] = verdict
                    log(f"{tag} {claim.id}: {verdict.status.upper()} ({how})\n      {verdict.summary}")
                registry.clear_runs()
    finally:
        for lock in locks.values():
            lock.release()
    if primary and (merge or (write_report and shard is None)):
        with registry.run_store(out / ".evidence", fingerprint):
            _report(out, labels, verdicts, fidelity, fingerprint, merge=merge)
        log(f"report: {out / 'REPORT.md'} ({time.perf_counter() - t_all:.1f} s)")
    elif shard and primary:
        log(f"shard {shard[0]}/{shard[1]} done ({time.perf_counter() - t_all:.1f} s); when every "
            "shard has finished: python -m simulations reproduce --merge with the same --out, "
            "--quick, --keys, --seed and --only")
    return verdicts


def _run_jobs(claims, labels, shard, flag_of, *, jobs, out, fidelity, fingerprint, locks, log):
    """``run_claims`` with workers: units with nothing to run (and a lone unit to run) are
    handled here, the others go to ``jobs`` worker processes, longest first where earlier
    runs recorded times."""
    from simulations import distributed, report, workers

    units = distributed.shard_units(claims, labels, shard)
    # one group at all keys after another (a fresh folder: the last units are short claims)
    group_of = {c.id: i for i, g in enumerate(distributed.claim_groups(claims)) for c in g}
    units.sort(key=lambda u: (group_of[u[1][0].id], labels.index(u[0])))
    units = workers.order_units(units, report.stored_seconds(out))
    stored = [u for u in units if not any(flag_of[(u[0], c.id)] for c in u[1])]
    to_run = [u for u in units if u not in stored]
    # judged here: the stored units, and a single unit to run (no worker to start for it)
    here = stored + (to_run if len(to_run) == 1 else [])
    to_run = [u for u in to_run if u not in here]
    verdicts: dict = {}
    for label, group in here:
        for cid, lab, verdict, _ in workers.run_unit(
                str(out), label, [(c.id, bool(flag_of[(label, c.id)])) for c in group], fidelity,
                fingerprint, label == labels[0]):
            verdicts.setdefault(cid, {})[lab] = verdict
    if to_run:
        n = min(jobs, len(to_run))
        log(f"{len(to_run)} units (claims that share a run, at one key) to run in {n} worker "
            f"processes; {len(stored)} stored")
        found = workers.run_parallel(to_run, flag_of, jobs=n, out=out, fidelity=fidelity,
                                     fingerprint=fingerprint, first_label=labels[0], locks=locks,
                                     log=log)
        for cid, by_label in found.items():
            verdicts.setdefault(cid, {}).update(by_label)
    return verdicts


def _report(out, labels, verdicts, fidelity, fingerprint, *, merge: bool) -> None:
    """Judge every claim with current evidence in ``out`` not judged yet (drawing its figure
    when merging) and write the report."""
    from simulations import registry, report

    # the report covers every claim with current evidence in `out`, not only those run
    # now, so `reproduce --only ID` updates one claim without dropping the others
    every = registry.get_claims(None)
    for claim in every:
        for label in labels:
            if label in verdicts.get(claim.id, {}):
                continue
            config, _, stored = _stored(out, claim, fidelity, label, fingerprint)
            if stored is not None:
                verdict = claim.judge(stored, config)
                verdicts.setdefault(claim.id, {})[label] = verdict
                if merge and label == labels[0]:
                    claim.draw(stored, verdict, config, out / f"{claim.id}.png")
    report.write_report(out, every, verdicts, fidelity, labels)


def _store(out, claim, label, config, key, fingerprint, evidence, seconds, *, shared: bool):
    """Process 0 stores a claim's evidence (and, in a distributed run, its shared runs,
    which no run store wrote)."""
    from simulations import registry, report

    if shared and claim.uses:
        with registry.run_store(out / ".evidence", fingerprint):
            for name, run in claim.uses.items():
                report.write_json_atomic(run.stored_path(config[name], key), evidence[name])
    report.store_evidence(out, claim, label, report.config_hash(claim, config, key, fingerprint),
                          config, evidence, seconds=seconds)


def _device_counts(text: str) -> list[int]:
    try:
        counts = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        counts = [0]
    if any(n < 1 for n in counts):
        raise InvalidParameter(f"--devices = {text!r} is not allowed: need a comma-separated list "
                               "of device counts >= 1 (e.g. 1,2,4,8), or '' to skip the scaling table")
    return counts


def _parts(text: str) -> list[str]:
    from simulations import bench

    parts = [x.strip() for x in str(text).split(",") if x.strip()]
    unknown = [x for x in parts if x not in bench.PARTS]
    if unknown or not parts:
        raise InvalidParameter(f"--parts = {text!r} is not allowed: need a comma-separated subset "
                               f"of {','.join(bench.PARTS)}")
    return parts


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            from simulations.registry import all_claims
            for c in all_claims().values():
                print(f"{c.id:36s} {c.kind:10s} {c.paper}")
            return 0
        if args.command == "bench":
            from simulations import bench
            bench.main(n_seeds=args.seeds, n_steps=args.steps, d=args.dim,
                       devices=_device_counts(args.devices), evidence=args.evidence,
                       parts=_parts(args.parts))
            return 0
        from simulations import distributed

        shard = getattr(args, "shard", None)
        merge = getattr(args, "merge", False)
        if shard is not None:
            shard = distributed.parse_shard(shard)
        if merge and (shard is not None or args.force):
            raise InvalidParameter("--merge writes the report from stored evidence: it takes no "
                                   f"{'--shard' if shard is not None else '--force'}")
        # before anything touches a device
        distributed.initialize(args.coordinator, args.num_processes, args.process_id,
                               auto=args.distributed)
        fidelity = "quick" if args.quick else "full"
        out = args.out or (Path("figures/quick") if args.quick else Path("figures"))
        ids = [args.id] if args.command == "run" else args.only
        jobs = getattr(args, "jobs", None)
        if jobs is not None and jobs > 1 and distributed.process_count() > 1:
            raise InvalidParameter(f"--jobs = {jobs} is not allowed with several processes of JAX's "
                                   "distributed runtime: they run every claim together (use --jobs 1)")
        if jobs is None:
            from simulations import workers
            jobs = workers.default_jobs() if distributed.process_count() == 1 else 1
        verdicts = run_claims(ids, fidelity=fidelity, out=out, seed=args.seed,
                              n_keys=getattr(args, "keys", 1), force=args.force,
                              write_report=args.command == "reproduce", shard=shard, merge=merge,
                              jobs=jobs)
        if args.command == "run" and distributed.is_primary():
            print(json.dumps(verdicts[args.id][str(args.seed)].to_json(), indent=1))
        return 0
    except KeyError as e:
        _log(f"error: {e.args[0]}")
    except (InvalidParameter, OSError, ValueError) as e:
        _log(f"error: {e}")
    except KeyboardInterrupt:
        _log("interrupted: finished claims are stored and will be skipped by the next run")
        return 130
    return 2
