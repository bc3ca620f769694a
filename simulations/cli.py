"""Command line: ``python -m simulations {list, run, reproduce, bench}``.

    python -m simulations list                      the claims, their kind and paper
    python -m simulations run ID [--quick]          one claim: figure, evidence, verdict
    python -m simulations reproduce [--quick] [--only ID ...] [--out DIR] [--seed N]
                                    [--keys K] [--force]
    python -m simulations bench                     engine throughput vs NumPy baselines

``--keys K`` runs every claim at K independent keys derived from ``--seed`` and the
report shows the verdict at each key and whether they agree (see
:mod:`simulations.report`). Errors (bad arguments, unknown claim ids, an unwritable
output folder, invalid parameters) print one line on stderr and exit with status 2,
without a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

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
        q.add_argument("--quick", action="store_true", help="quick fidelity (seconds per claim)")
        q.add_argument("--out", type=Path, default=None,
                       help="output folder (default figures/, or figures/quick with --quick)")
        q.add_argument("--seed", type=int, default=0, help="root PRNG seed (default 0)")
        q.add_argument("--force", action="store_true", help="ignore stored evidence")
    b = sub.add_parser("bench", help="engine benchmark against NumPy baselines")
    b.add_argument("--seeds", type=int, default=1024)
    b.add_argument("--steps", type=int, default=1000)
    b.add_argument("--dim", type=int, default=64)
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


def run_claims(ids, *, fidelity: str, out: Path, seed: int, n_keys: int = 1, force: bool = False,
               write_report: bool = True):
    """Run claims at K keys with resume; returns {id: {key label: Verdict}}.

    Shared by ``run`` and ``reproduce``. Figures are drawn at the first key.
    """
    from simulations import engine, registry, report

    n_keys = _check_keys(n_keys)
    claims = registry.get_claims(ids)
    out = _check_out(out)
    labels = report.key_labels(seed, n_keys)
    fingerprint = report.code_fingerprint()
    verdicts: dict = {}
    t_all = time.perf_counter()
    with registry.run_store(out / ".evidence", fingerprint):
        for label in labels:
            for i, claim in enumerate(claims, 1):
                config, key, evidence = _stored(out, claim, fidelity, label, fingerprint)
                tag = f"[{i}/{len(claims)}]" + (f" key {label}" if n_keys > 1 else "")
                t0 = time.perf_counter()
                if force or evidence is None:
                    _log(f"{tag} {claim.id}: running ({fidelity})")
                    with engine.reporting(lambda line: _log(f"      {line}")):
                        evidence = claim.collect(config, key=key)
                    report.store_evidence(out, claim, label,
                                          report.config_hash(claim, config, key, fingerprint),
                                          config, evidence)
                    how = f"{time.perf_counter() - t0:.1f} s"
                else:
                    how = "stored evidence, unchanged configuration"
                verdict = claim.judge(evidence, config)
                if label == labels[0]:
                    claim.draw(evidence, verdict, config, out / f"{claim.id}.png")
                verdicts.setdefault(claim.id, {})[label] = verdict
                _log(f"{tag} {claim.id}: {verdict.status.upper()} ({how})\n      {verdict.summary}")
            registry.clear_runs()
        if write_report:
            # the report covers every claim with current evidence in `out`, not only those
            # run now, so `reproduce --only ID` updates one claim without dropping the others
            every = registry.get_claims(None)
            for claim in every:
                for label in labels:
                    if label in verdicts.get(claim.id, {}):
                        continue
                    config, _, stored = _stored(out, claim, fidelity, label, fingerprint)
                    if stored is not None:
                        verdicts.setdefault(claim.id, {})[label] = claim.judge(stored, config)
            path = report.write_report(out, every, verdicts, fidelity, labels)
            _log(f"report: {path} ({time.perf_counter() - t_all:.1f} s)")
    return verdicts


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
            bench.main(n_seeds=args.seeds, n_steps=args.steps, d=args.dim)
            return 0
        fidelity = "quick" if args.quick else "full"
        out = args.out or (Path("figures/quick") if args.quick else Path("figures"))
        ids = [args.id] if args.command == "run" else args.only
        verdicts = run_claims(ids, fidelity=fidelity, out=out, seed=args.seed,
                              n_keys=getattr(args, "keys", 1), force=args.force,
                              write_report=args.command == "reproduce")
        if args.command == "run":
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
