"""Claims, shared runs, typed evidence, verdicts, and the registry everything reads.

A paper's claims live in one package, ``simulations/claims/<paper>/``, with fixed roles:

    runs.py      simulations producing evidence:  run(config, *, key) -> dict
    rules.py     verdict rules, pure functions:    rule(evidence, config) -> Verdict
    figures.py   one figure per claim:             figure(evidence, verdict, config, path)
    __init__.py  claim specs and registration only (:func:`claim`)

A claim is registered once, by id, with a configuration per fidelity (``"quick"`` for the
tests and CI, ``"full"`` for the published figures: the same code path, other sizes).
Its evidence is the union of its own ``run`` (optional) and the :class:`SharedRun`\\ s it
declares in ``uses``: ``uses={"sweep": SWEEP}`` puts ``SWEEP(config["sweep"], key=key)``
under ``evidence["sweep"]``. A shared run is memoized on its name, its full JSON-safe
configuration and the key, so claims that measure the same trajectories run them once
(and the CLI stores them once on disk).

Evidence is stored as JSON (a long reproduction resumes; a reader can inspect it) and
read back as :class:`Evidence`: a read-only mapping whose numeric lists are NumPy arrays
(converted once, on load), so rules and figures never re-parse it. The CLI, the report
and the tests all go through :meth:`Claim.evaluate`, which does the JSON round trip.

Rules decide with :func:`decide` (hypotheses: findings that are supported, contradicted
or unresolved by their intervals, optionally behind a gate on the paper's premise) and
:func:`holds` (theorems: violated only by evidence against them).
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import importlib
import json
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import jax
import numpy as np

THEOREM = "theorem"
HYPOTHESIS = "hypothesis"
FIDELITIES = ("quick", "full")
STATUSES = {THEOREM: ("holds", "violated"), HYPOTHESIS: ("confirmed", "refuted", "inconclusive")}
PROVENANCES = ("paper", "paper, made precise", "derived", "pilot")

#: the order of the papers in the report; :func:`all_claims` imports every package under
#: ``simulations/claims/`` (a new paper needs no edit here; unlisted ones come last, by name).
PAPER_ORDER = ("covnoise", "sngm", "self_distillation", "large_lr", "label_noise", "dreg",
               "stochnorm", "scaling")


# ============================================================================ JSON
def jsonable(x):
    """NumPy scalars/arrays (and nested containers) as JSON-friendly Python; NaN -> None,
    ±inf -> "inf"/"-inf" (read back by :class:`Evidence`)."""
    if isinstance(x, Evidence):
        x = x.to_dict()
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray) or isinstance(x, jax.Array):
        return jsonable(np.asarray(x).tolist())
    if isinstance(x, np.generic):
        return jsonable(x.item())
    if isinstance(x, float) and not np.isfinite(x):
        return None if np.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def canonical_json(x) -> str:
    """One text per value: sorted keys, no whitespace (what hashes are taken of)."""
    return json.dumps(jsonable(x), sort_keys=True, separators=(",", ":"), allow_nan=False)


def digest(*parts) -> str:
    """Short sha256 of the canonical JSON of ``parts``."""
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:16]


def key_bits(key) -> list[int]:
    """The raw bits of a typed key (what identifies it in a hash)."""
    return np.asarray(jax.random.key_data(key)).ravel().tolist()


# ========================================================================= evidence
_SPECIAL = {"inf": np.inf, "-inf": -np.inf}


def _numeric_list(values):
    """A list of numbers (or None/"inf" from :func:`jsonable`, or nested such lists) as a
    NumPy array, else None."""
    def scalar(v):
        if v is None:
            return np.nan
        if isinstance(v, str):
            return _SPECIAL.get(v, v)
        return v

    def walk(v):
        return [walk(w) for w in v] if isinstance(v, list) else scalar(v)

    try:
        arr = np.asarray(walk(values))
    except ValueError:  # ragged
        return None
    if arr.dtype.kind in "biuf" and arr.size:
        return arr
    return None


def _typed(value):
    if isinstance(value, Evidence):
        return value
    if isinstance(value, Mapping):
        return Evidence(value)
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple)):
        arr = _numeric_list(list(value))
        if arr is not None:
            return arr
        return [_typed(v) for v in value]
    if isinstance(value, str) and value in _SPECIAL:
        return _SPECIAL[value]
    return value


class Evidence(Mapping):
    """Read-only evidence of a claim: ``ev["name"]`` or ``ev.name``.

    Built from a (JSON-loaded) dict once: numeric lists become NumPy arrays (None -> NaN,
    "inf" -> inf), nested dicts become :class:`Evidence`, strings and ragged lists stay
    lists. A missing name raises a KeyError that lists the names present.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping):
        object.__setattr__(self, "_data", {str(k): _typed(v) for k, v in data.items()})

    def __getitem__(self, name):
        try:
            return self._data[name]
        except KeyError:
            raise KeyError(f"evidence has no {name!r}; it has: {', '.join(self._data)}") from None

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"evidence has no {name!r}; it has: {', '.join(self._data)}") from None

    def __setattr__(self, name, value):
        raise AttributeError("evidence is read-only")

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def __repr__(self):
        return f"Evidence({', '.join(self._data)})"

    def to_dict(self) -> dict:
        return {k: (v.to_dict() if isinstance(v, Evidence) else v) for k, v in self._data.items()}


def round_trip(raw: Mapping) -> Evidence:
    """What a rule sees: the evidence as stored (JSON) and read back, typed."""
    return Evidence(json.loads(canonical_json(raw)))


# ======================================================================= shared runs
_RUNS: dict[str, Evidence] = {}
_STORE: contextvars.ContextVar = contextvars.ContextVar("shared_run_store", default=None)


@contextlib.contextmanager
def run_store(folder: Path | None, fingerprint: str):
    """Within this context shared runs are also stored in (and resumed from)
    ``folder/runs/`` (the CLI's evidence folder), keyed with the code fingerprint."""
    token = _STORE.set(None if folder is None else (Path(folder), fingerprint))
    try:
        yield
    finally:
        _STORE.reset(token)


def clear_runs() -> None:
    """Forget the in-memory shared runs (the CLI does it between keys to bound memory)."""
    _RUNS.clear()


@dataclasses.dataclass(frozen=True)
class SharedRun:
    """A simulation whose evidence several claims read: ``fn(config, *, key) -> dict``.

    Calling it returns typed :class:`Evidence`, memoized on (name, the full JSON-safe
    config, the key): a config field added later can never reuse a stale run.
    """

    name: str
    fn: Callable[..., Mapping]

    def fingerprint(self, config: Mapping, key) -> str:
        return digest(self.name, config, key_bits(key))

    def stored_path(self, config: Mapping, key) -> Path | None:
        """Where the active :func:`run_store` keeps this run (None outside one)."""
        store = _STORE.get()
        if store is None:
            return None
        folder, code = store
        return folder / "runs" / f"{self.name}-{digest(self.fingerprint(config, key), code)}.json"

    def __call__(self, config: Mapping, *, key) -> Evidence:
        from simulations.report import write_json_atomic

        h = self.fingerprint(config, key)
        path = self.stored_path(config, key)
        if h in _RUNS:
            # computed earlier in this process, maybe under another store: store it here too,
            # so that this store's claims resume
            if path is not None and not path.exists():
                write_json_atomic(path, _RUNS[h])
            return _RUNS[h]
        if path is not None and path.exists():
            try:
                _RUNS[h] = Evidence(json.loads(path.read_text()))
                return _RUNS[h]
            except (OSError, json.JSONDecodeError):
                pass
        ev = round_trip(self.fn(dict(config), key=key))
        if path is not None:
            write_json_atomic(path, ev)
        _RUNS[h] = ev
        return ev


def shared_run(name: str):
    """Decorator: ``@shared_run("labelnoise.toy")`` turns ``fn(config, *, key)`` into a
    :class:`SharedRun`."""
    def wrap(fn):
        return SharedRun(name, fn)
    return wrap


# =========================================================================== verdicts
@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of comparing a measurement with a prediction.

    Attributes:
      status: ``holds``/``violated`` for a theorem; ``confirmed``/``refuted``/
        ``inconclusive`` for a hypothesis.
      summary: one sentence with the key numbers, as printed in the report table.
      measured: named measured numbers (floats or short lists).
      predicted: named predicted numbers.
      rule: the comparison rule in words (tolerance, confidence level, exclusion rules).
      sizes: seeds, steps, dimensions, key: what a reader needs to judge the verdict.
      claim_id: filled in by :meth:`Claim.judge` (rules need not repeat it).
    """

    status: str
    summary: str
    measured: Mapping[str, Any]
    predicted: Mapping[str, Any]
    rule: str
    sizes: Mapping[str, Any]
    claim_id: str = ""

    def to_json(self) -> dict:
        return {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One part of a hypothesis, judged from an interval: ``supported`` True (the
    interval lies on the predicted side of its band), False (on the other side: evidence
    against), None (it straddles: unresolved). ``detail`` says it with the numbers."""

    name: str
    supported: bool | None
    detail: str = ""


def decide(findings: Iterable[Finding], *, gate: Finding | None = None) -> tuple[str, str]:
    """Hypothesis status from findings: ``(status, reason)``.

    * gate given and not supported: ``inconclusive`` ("premise not met: ...") — a claim
      is never refuted outside the regime its paper speaks about;
    * any finding contradicted: ``refuted``;
    * every finding supported: ``confirmed``;
    * otherwise ``inconclusive`` (some interval straddles its band).
    """
    findings = list(findings)
    if not findings:
        raise ValueError("decide() needs at least one finding")
    if gate is not None and gate.supported is not True:
        how = "not met" if gate.supported is False else "not established"
        return "inconclusive", f"premise {how}: {gate.detail or gate.name}"
    against = [f for f in findings if f.supported is False]
    open_ = [f for f in findings if f.supported is None]
    if against:
        return "refuted", "; ".join(f"{f.name}: {f.detail}" if f.detail else f.name for f in against)
    if open_:
        return "inconclusive", "unresolved: " + "; ".join(
            f"{f.name}: {f.detail}" if f.detail else f.name for f in open_)
    return "confirmed", "all parts supported"


def holds(checks: Mapping[str, bool]) -> tuple[str, list[str]]:
    """Theorem status from checks that only evidence can fail (an identity off beyond
    float precision, Monte Carlo beyond a family-wise z): ``(status, failed names)``."""
    failed = [name for name, ok in checks.items() if not bool(ok)]
    return ("violated" if failed else "holds"), failed


# ============================================================================ claims
def _no_run(config, *, key):
    del config, key
    return {}


@dataclasses.dataclass(frozen=True)
class Claim:
    """One checkable statement of a paper; see the module docstring for the contract.

    Attributes:
      id: ``<paper>.<name>``, typed once, at registration.
      paper: the citation.
      kind: THEOREM (derived identity or bound: must hold) or HYPOTHESIS (gets a verdict).
      statement: the claim in the project's own words.
      provenance: where it comes from: "paper", "paper, made precise", "derived", "pilot".
      testbed: where it is measured, in words.
      configs: fidelity -> configuration (JSON-safe dict).
      rule: ``rule(evidence, config) -> Verdict``.
      figure: ``figure(evidence, verdict, config, path)``.
      run: ``run(config, *, key) -> dict``, the claim's own evidence (optional).
      uses: evidence name -> :class:`SharedRun`, called with ``config[name]``.
    """

    id: str
    paper: str
    kind: str
    statement: str
    provenance: str
    testbed: str
    configs: Mapping[str, Mapping[str, Any]]
    rule: Callable[[Evidence, Mapping[str, Any]], Verdict]
    figure: Callable[[Evidence, Verdict, Mapping[str, Any], Any], None]
    run: Callable[..., Mapping] = _no_run
    uses: Mapping[str, SharedRun] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in STATUSES:
            raise ValueError(f"claim {self.id}: kind = {self.kind!r}, need one of {tuple(STATUSES)}")
        if self.provenance not in PROVENANCES:
            raise ValueError(f"claim {self.id}: provenance = {self.provenance!r}, need one of {PROVENANCES}")
        missing = [f for f in FIDELITIES if f not in self.configs]
        if missing:
            raise ValueError(f"claim {self.id}: configs lack fidelities {missing}")
        for fid in FIDELITIES:
            absent = [n for n in self.uses if n not in self.configs[fid]]
            if absent:
                raise ValueError(f"claim {self.id}: the {fid} config has no entry for shared runs {absent}")

    def config(self, fidelity: str) -> dict:
        if fidelity not in FIDELITIES:
            raise ValueError(f"fidelity = {fidelity!r} is not allowed: need one of {FIDELITIES}")
        return json.loads(canonical_json(self.configs[fidelity]))

    def collect(self, config: Mapping[str, Any], *, key) -> Evidence:
        """Run (or reuse) the shared runs, then the claim's own run; JSON round trip."""
        shared = {name: run(config[name], key=key) for name, run in self.uses.items()}
        own = dict(self.run(dict(config), key=key))
        clash = set(own) & set(shared)
        if clash:
            raise ValueError(f"claim {self.id}: its run returns {sorted(clash)}, names of its shared runs")
        own = json.loads(canonical_json(own))
        return Evidence({**own, **{k: v.to_dict() for k, v in shared.items()}})

    def judge(self, evidence: Evidence, config: Mapping[str, Any]) -> Verdict:
        """The rule's verdict, with the claim id filled in and the status checked."""
        if not isinstance(evidence, Evidence):
            evidence = round_trip(evidence)
        v = self.rule(evidence, config)
        if v.status not in STATUSES[self.kind]:
            raise ValueError(f"claim {self.id} ({self.kind}) returned status {v.status!r}; "
                             f"allowed: {STATUSES[self.kind]}")
        return dataclasses.replace(v, claim_id=self.id)

    def evaluate(self, fidelity: str = "quick", *, key, config: Mapping | None = None):
        """(config, evidence, verdict) at this fidelity and key, as production makes them."""
        config = self.config(fidelity) if config is None else dict(config)
        evidence = self.collect(config, key=key)
        return config, evidence, self.judge(evidence, config)

    @property
    def package(self) -> str:
        """The paper package that registered the claim (its rule's module's package)."""
        parts = getattr(self.rule, "__module__", "").split(".")
        return parts[2] if len(parts) > 2 and parts[:2] == ["simulations", "claims"] else ""

    def draw(self, evidence, verdict: Verdict, config, path) -> None:
        self.figure(evidence, verdict, config, path)


_REGISTRY: dict[str, Claim] = {}


def claim(id: str, **spec) -> Claim:
    """Register a claim (ids are unique); see :class:`Claim` for the fields. Call it from
    the paper package's ``__init__.py``."""
    c = Claim(id=id, **spec)
    if id in _REGISTRY and _REGISTRY[id] != c:
        raise ValueError(f"claim id {id!r} registered twice")
    _REGISTRY[id] = c
    return c


def claim_packages() -> list[str]:
    """The paper packages under ``simulations/claims/``, in report order."""
    import pkgutil

    import simulations.claims as root

    names = [m.name for m in pkgutil.iter_modules(root.__path__) if m.ispkg]
    rank = {n: i for i, n in enumerate(PAPER_ORDER)}
    return [f"simulations.claims.{n}" for n in sorted(names, key=lambda n: (rank.get(n, len(rank)), n))]


def all_claims() -> dict[str, Claim]:
    """Every registered claim, papers in report order (importing the claim packages)."""
    for module in claim_packages():
        importlib.import_module(module)
    order = {m.rsplit(".", 1)[1]: i for i, m in enumerate(claim_packages())}
    return dict(sorted(_REGISTRY.items(), key=lambda kv: order.get(kv[1].package, len(order))))


def get_claims(ids=None) -> list[Claim]:
    """The claims with these ids (all if None); an unknown id raises with the known ones."""
    claims = all_claims()
    if not ids:
        return list(claims.values())
    unknown = [i for i in ids if i not in claims]
    if unknown:
        raise KeyError(f"unknown claim id {unknown[0]!r}; known ids: {', '.join(claims)}")
    return [claims[i] for i in ids]
