"""Evidence storage (atomic, resumable) and the report: REPORT.md + verdicts.json.

Layout under the output folder (default ``figures/``):

    <claim-id>.png                     one figure per claim (at the first key)
    REPORT.md                          verdict table with the verdict at every key, then
                                       one section per claim
    verdicts.json                      every verdict at every key, machine-readable
    .evidence/<label>/<claim-id>.json  a claim's own evidence at key <label> (resume)
    .evidence/runs/<run>-<hash>.json   shared runs, stored once for all claims using them
    .evidence/<label>/<claim-id>.lock  while a run writes that claim (who: shard, host, pid)

Key labels: ``reproduce --seed S --keys K`` runs every claim at keys ``S`` (the root key
``jax.random.key(S)``) and ``S.1 … S.(K-1)`` (``fold_in(key(S), k)``): independent
streams, and K = 1 is the plain run at ``--seed S``. A claim's evidence is written
(temporary file, then rename) as soon as it finishes; a later run skips a claim whose
stored evidence has the same hash (configuration, key, and the toolkit's source code).
Every file is written under a temporary name unique to the host and process, then renamed,
so runs on several machines can share one output folder (see :mod:`simulations.distributed`).
"""
from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path

import jax

from simulations import __version__
from simulations.registry import Claim, Evidence, Verdict, digest, jsonable, key_bits

_PACKAGES = ("theory", "simulations")


# --------------------------------------------------------------------------- keys
def key_labels(seed: int, n_keys: int) -> list[str]:
    """Labels of the K keys derived from ``seed``: "S", "S.1", …, "S.(K−1)"."""
    return [str(seed)] + [f"{seed}.{k}" for k in range(1, n_keys)]


def key_from_label(label: str):
    """The typed key a label names (see the module docstring)."""
    seed, _, k = label.partition(".")
    root = jax.random.key(int(seed))
    return jax.random.fold_in(root, int(k)) if k else root


# ------------------------------------------------------------------------ storage
def code_fingerprint() -> str:
    """sha256 over the source files of the toolkit (any code change invalidates evidence)."""
    import hashlib

    h = hashlib.sha256(__version__.encode())
    root = Path(__file__).resolve().parent.parent
    for pkg in _PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def config_hash(claim: Claim, config: dict, key, fingerprint: str) -> str:
    return digest(claim.id, config, key_bits(key), fingerprint)


def _temporary(path: Path) -> Path:
    """A temporary name beside ``path`` that no other writer uses (host, process and a
    random part: shards on several hosts may share the folder)."""
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, then rename (atomic: a reader, or
    another writer of the same file, sees the old or the new content, never a mix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON to a temporary file in the same folder, then rename (atomic)."""
    write_text_atomic(path, json.dumps(jsonable(obj), indent=1, allow_nan=False))


def evidence_path(out: Path, claim_id: str, label: str) -> Path:
    return Path(out) / ".evidence" / label / f"{claim_id}.json"


def load_evidence(out: Path, claim: Claim, label: str, expected_hash: str,
                  config: dict) -> Evidence | None:
    """The stored evidence if its hash matches and its shared runs are stored, else None."""
    path = evidence_path(out, claim.id, label)
    if not path.exists():
        return None
    try:
        stored = json.loads(path.read_text())
        if stored.get("hash") != expected_hash:
            return None
        evidence = dict(stored["evidence"])
        key = key_from_label(label)
        for name, run in claim.uses.items():
            run_path = run.stored_path(config[name], key)
            if run_path is None or not run_path.exists():
                return None
            evidence[name] = json.loads(run_path.read_text())
    except (OSError, json.JSONDecodeError, KeyError):
        return None
    return Evidence(evidence)


def store_evidence(out: Path, claim: Claim, label: str, hash_: str, config: dict,
                   evidence, seconds: float | None = None) -> None:
    """The claim's own evidence; its shared runs are stored once, under ``runs/``.
    ``seconds``: the wall time of the run (kept for :func:`stored_seconds`)."""
    own = {k: v for k, v in evidence.items() if k not in claim.uses}
    record = {"hash": hash_, "config": config, "evidence": own, "shared_runs": sorted(claim.uses)}
    if seconds is not None:
        record["seconds"] = float(seconds)
    write_json_atomic(evidence_path(out, claim.id, label), record)


def lock_path(out: Path, claim_id: str, label: str) -> Path:
    """The lock file beside a claim's evidence while a run writes it."""
    return evidence_path(out, claim_id, label).with_suffix(".lock")


def stored_seconds(out: Path) -> dict[str, dict[str, float]]:
    """{key label: {claim id: wall seconds}} of the evidence stored under ``out`` (runs
    that recorded their time; a shared run's time counts for the claim that ran it)."""
    found: dict[str, dict[str, float]] = {}
    for path in sorted((Path(out) / ".evidence").glob("*/*.json")):
        if path.parent.name == "runs":
            continue
        try:
            seconds = json.loads(path.read_text()).get("seconds")
        except (OSError, json.JSONDecodeError):
            continue
        if seconds is not None:
            found.setdefault(path.parent.name, {})[path.stem] = float(seconds)
    return found


# ------------------------------------------------------------------------- report
def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    if isinstance(x, list) and len(x) > 12:
        return f"[{len(x)} values]"
    if isinstance(x, list):
        return "[" + ", ".join(_fmt(v) for v in x) + "]"
    return str(x)


_DECISIVE = {"confirmed": "refuted", "refuted": "confirmed"}


def agreement(kind: str, statuses: list[str]) -> str:
    """How the verdicts at the K keys relate, in one word (and why).

    Theorems: ``stable`` if every key holds, else ``VIOLATED`` (a defect to fix).
    Hypotheses: ``stable`` (all equal), ``consistent`` (the decisive ones agree, some keys
    inconclusive), ``CONFLICT`` (one key confirms, another refutes).
    """
    if len(statuses) == 1:
        return "one key"
    if kind == "theorem":
        return "stable" if all(s == "holds" for s in statuses) else "VIOLATED"
    if len(set(statuses)) == 1:
        return "stable"
    decisive = {s for s in statuses if s in _DECISIVE}
    return "CONFLICT" if len(decisive) > 1 else "consistent"


def render_report(claims: list[Claim], verdicts: dict[str, dict[str, Verdict]], fidelity: str,
                  labels: list[str]) -> str:
    """REPORT.md text: the verdict table (every key), then one section per claim."""
    multi = len(labels) > 1
    head = ["claim", "kind", "verdict"] + ([f"keys {', '.join(labels)}", "agreement"] if multi else []) \
        + ["key numbers (first key)" if multi else "key numbers"]
    cmd = "python -m simulations reproduce" + (" --quick" if fidelity == "quick" else "") \
        + (f" --keys {len(labels)}" if multi else "")
    lines = [
        "# Verdict report", "",
        f"Generated by `{cmd}` (fidelity: {fidelity}, toolkit {__version__}, keys: "
        f"{', '.join(labels)}). Theorems (derived identities and bounds) must hold: `holds` / "
        "`violated`. Hypotheses (papers' empirical claims) get `confirmed` / `refuted` / "
        "`inconclusive` from the data, decided from intervals against bands fixed before the "
        "runs. " + ("Every claim ran at each key (independent random streams: data, "
                    "initializations, noise, probes); a verdict that flips between decisive "
                    "outcomes would show as CONFLICT. " if multi else "")
        + "Every section states seeds, sizes and the comparison rule. Trajectories that turn "
        "non-finite are flagged and excluded from every mean; their count is part of the "
        "evidence.", "",
        "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in claims:
        per_key = verdicts.get(c.id, {})
        if labels[0] not in per_key:
            continue
        v = per_key[labels[0]]
        row = [f"[`{c.id}`](#{c.id.replace('.', '')})", c.kind, f"**{v.status}**"]
        if multi:
            statuses = [per_key[k].status if k in per_key else "—" for k in labels]
            row += [" / ".join(statuses),
                    agreement(c.kind, [s for s in statuses if s != "—"])]
        row.append(v.summary.replace("|", "\\|"))
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for c in claims:
        per_key = verdicts.get(c.id, {})
        if labels[0] not in per_key:
            continue
        v = per_key[labels[0]]
        lines += [f"## {c.id}", "", f"*{c.paper}* — {c.kind} ({c.provenance}); testbed: {c.testbed}", "",
                  f"**Statement.** {c.statement}", "",
                  f"**Verdict: {v.status}.** {v.summary}", "", f"**Rule.** {v.rule}", ""]
        if multi:
            lines += ["**At every key.** " + "; ".join(
                f"key {k}: {per_key[k].status}" for k in labels if k in per_key) + "", ""]
        lines += [f"![{c.id}]({c.id}.png)", "", "<details><summary>numbers and sizes</summary>", ""]
        for title, table in (("measured", v.measured), ("predicted", v.predicted), ("sizes", v.sizes)):
            lines.append(f"- {title}: " + "; ".join(f"{k} = {_fmt(jsonable(val))}" for k, val in table.items()))
        if multi:
            for k in labels[1:]:
                if k in per_key:
                    lines.append(f"- key {k}: {per_key[k].summary}")
        lines += ["", "</details>", ""]
    return "\n".join(lines)


def write_report(out: Path, claims: list[Claim], verdicts: dict[str, dict[str, Verdict]],
                 fidelity: str, labels: list[str]) -> Path:
    out = Path(out)
    rows = []
    for c in claims:
        per_key = verdicts.get(c.id, {})
        if labels[0] not in per_key:
            continue
        row = per_key[labels[0]].to_json()
        row["by_key"] = {k: per_key[k].status for k in labels if k in per_key}
        row["agreement"] = agreement(c.kind, list(row["by_key"].values()))
        rows.append(row)
    write_json_atomic(out / "verdicts.json", {"fidelity": fidelity, "version": __version__,
                                              "keys": labels, "verdicts": rows})
    path = out / "REPORT.md"
    write_text_atomic(path, render_report(claims, verdicts, fidelity, labels))
    return path
