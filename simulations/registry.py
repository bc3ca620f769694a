"""Claims, verdicts and the registry that the CLI, the report and the tests all read.

A :class:`Claim` is one checkable statement of a paper (CLAIMS.md gives the ids). It is
three pure functions around a configuration:

    run(config, *, key) -> Evidence          # measure (Monte Carlo, closed form, ...)
    verdict(evidence, config) -> Verdict     # compare measured with predicted, by a stated rule
    figure(evidence, verdict, path) -> None  # theory as lines, simulation with CIs

``configs`` maps a fidelity (``"quick"`` for tests and CI, ``"full"`` for the published
figures) to a dict of sizes and parameters. The code path is the same; only sizes differ.

Evidence is a flat dict of NumPy arrays, floats, ints, strings and lists: it is stored as
JSON so a long reproduction can resume, and a reader can inspect it.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping

import numpy as np

THEOREM = "theorem"
HYPOTHESIS = "hypothesis"
FIDELITIES = ("quick", "full")
STATUSES = {THEOREM: ("holds", "violated"), HYPOTHESIS: ("confirmed", "refuted", "inconclusive")}

#: claim modules imported by :func:`all_claims`; a new paper adds its module here.
CLAIM_MODULES = ("simulations.claims.covnoise", "simulations.claims.sngm",
                 "simulations.claims.self_distillation", "simulations.claims.large_lr",
                 "simulations.claims.label_noise")

Evidence = dict


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of comparing a measurement with a prediction.

    Attributes:
      claim_id: the claim's id.
      status: ``holds``/``violated`` for a theorem; ``confirmed``/``refuted``/
        ``inconclusive`` for a hypothesis.
      summary: one sentence with the key numbers, as printed in the report table.
      measured: named measured numbers (floats or short lists).
      predicted: named predicted numbers.
      rule: the comparison rule in words (tolerance, confidence level, exclusion rules).
      sizes: seeds, steps, dimensions, key: what a reader needs to judge the verdict.
    """

    claim_id: str
    status: str
    summary: str
    measured: Mapping[str, Any]
    predicted: Mapping[str, Any]
    rule: str
    sizes: Mapping[str, Any]

    def to_json(self) -> dict:
        return {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim of a paper; see the module docstring for the contract."""

    id: str
    paper: str
    kind: str
    statement: str
    configs: Mapping[str, Mapping[str, Any]]
    run: Callable[..., Evidence]
    verdict: Callable[[Evidence, Mapping[str, Any]], Verdict]
    figure: Callable[[Evidence, Verdict, Any], None]

    def __post_init__(self):
        if self.kind not in STATUSES:
            raise ValueError(f"claim {self.id}: kind = {self.kind!r}, need one of {tuple(STATUSES)}")
        missing = [f for f in FIDELITIES if f not in self.configs]
        if missing:
            raise ValueError(f"claim {self.id}: configs lack fidelities {missing}")

    def config(self, fidelity: str) -> dict:
        if fidelity not in FIDELITIES:
            raise ValueError(f"fidelity = {fidelity!r} is not allowed: need one of {FIDELITIES}")
        return dict(self.configs[fidelity])

    def make_verdict(self, evidence: Evidence, config: Mapping[str, Any]) -> Verdict:
        v = self.verdict(evidence, config)
        if v.status not in STATUSES[self.kind]:
            raise ValueError(f"claim {self.id} ({self.kind}) returned status {v.status!r}; "
                             f"allowed: {STATUSES[self.kind]}")
        return v


_REGISTRY: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    """Add a claim to the registry (ids are unique)."""
    if claim.id in _REGISTRY and _REGISTRY[claim.id] is not claim:
        raise ValueError(f"claim id {claim.id!r} registered twice")
    _REGISTRY[claim.id] = claim
    return claim


def all_claims() -> dict[str, Claim]:
    """Every registered claim, in registration order (importing the claim modules)."""
    for module in CLAIM_MODULES:
        importlib.import_module(module)
    return dict(_REGISTRY)


def get_claims(ids=None) -> list[Claim]:
    """The claims with these ids (all if None); an unknown id raises with the known ones."""
    claims = all_claims()
    if not ids:
        return list(claims.values())
    unknown = [i for i in ids if i not in claims]
    if unknown:
        raise KeyError(f"unknown claim id {unknown[0]!r}; known ids: {', '.join(claims)}")
    return [claims[i] for i in ids]


def jsonable(x):
    """Convert NumPy scalars/arrays (and nested containers) to JSON-friendly Python."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None if np.isnan(x) else ("inf" if x > 0 else "-inf")
    return x
