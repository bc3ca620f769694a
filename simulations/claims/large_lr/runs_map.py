"""The P/Q parameter map (a shared run) and the confirmation runs at fresh data draws in
the map cell that a fixed rule selects.

Cells: the base point, then one axis changed at a time (a star design), then the
``grid`` cells (several axes changed together). Axes:

* ``z_norm`` — Q's scale ‖z‖, with r/‖z‖ kept at the base's value (Q scaled as a whole);
* ``r_over_z`` — r/‖z‖ at the base's ‖z‖;
* ``p_noise`` — σ_P; ``p0`` — the P-only fraction; ``noise_scale`` — the explicit noise;
* ``d_over_n`` — d/n through n, every n inside one padded training set (``n_pad`` rows), so
  every cell has one compiled shape: scales and sizes are data or traced values.

Every cell is a :data:`simulations.claims.large_lr.runs.PQ` run with the map's stream
("map"), so its draws are paired across cells and independent of the claims' other runs.

Selection (fixed before any run): among the cells and the candidate regimes, those whose
premise gate passes (:func:`simulations.claims.large_lr.rules.regime_gate`) and whose
small-LR arm has Q first in at least ``MIN_Q_FIRST`` of its trajectories; the highest
Q-first fraction wins, ties to the earlier cell, then the earlier regime. The selected cell
is run again with ``confirm_draws`` fresh draws (stream ``confirm-<name>``): the selection
does not bias the verdict, which is judged on the fresh draws only.
"""
from __future__ import annotations

from simulations.claims.large_lr import rules
from simulations.claims.large_lr.runs import PQ, REGIMES, spec_of, validate
from simulations.registry import shared_run
from theory import validation as check

AXES = ("z_norm", "p_noise", "r_over_z", "d_over_n", "p0", "noise_scale")
MIN_Q_FIRST = 0.75
#: what a map cell keeps of its P/Q run (the run itself is stored once, as a shared run)
CELL_FIELDS = ("arms", "n_draws", "q_acc_window", "kappa_window", "q_acc_final", "kappa_final",
               "test_final", "t_first", "valid", "loss_window", "fit_at_anneal", "fit_final",
               "both_share_window", "p_align_final")


def axis_value(base, axis):
    """The base point's value on a map axis."""
    if axis not in AXES:
        check.fail("axis", 0, f"one of {AXES} (got {axis!r})")
    if axis == "d_over_n":
        return base["d"] / base["n"]
    if axis == "z_norm":
        return base.get("z_norm", 1.0)
    if axis == "r_over_z":
        return spec_of(base).radius / base.get("z_norm", 1.0)
    return base[axis]


def cell_config(base, changes):
    """The P/Q configuration of a cell: the base with ``changes`` (axis -> value)."""
    c = dict(base)
    if "z_norm" in changes or "r_over_z" in changes:
        z = changes.get("z_norm", axis_value(base, "z_norm"))
        c["z_norm"] = float(z)
        c["r"] = float(changes.get("r_over_z", axis_value(base, "r_over_z")) * z)
    if "d_over_n" in changes:
        c["n"] = int(round(base["d"] / changes["d_over_n"]))
    for k in ("p_noise", "p0", "noise_scale"):
        if k in changes:
            c[k] = changes[k]
    return c


def map_cells(cfg):
    """(label, changes) of the cells: the base, the star cells (values that differ from the
    base), the grid cells."""
    base = cfg["base"]
    cells = [("base", {})]
    for axis, values in cfg["axes"].items():
        cells += [(f"{axis}={v:g}", {axis: v}) for v in values if v != axis_value(base, axis)]
    for changes in cfg.get("grid", []):
        cells.append((", ".join(f"{a}={v:g}" for a, v in changes.items()), dict(changes)))
    return cells


@shared_run("largelr.map")
def MAP(cfg, *, key):
    """Every cell's P/Q run (all validated first, then run; each stored as a shared run)."""
    cells = [(label, changes, cell_config(cfg["base"], changes)) for label, changes in map_cells(cfg)]
    for _, changes, c in cells:
        for axis in changes:
            axis_value(cfg["base"], axis)
        validate(c)
    rows = []
    for label, changes, c in cells:
        ev = PQ(c, key=key)
        axis, value = next(iter(changes.items())) if len(changes) == 1 else ("base" if not changes else "grid", None)
        rows.append(dict(label=label, changes=changes, axis=axis, value=value,
                         **{k: ev[k] for k in CELL_FIELDS}))
    base = cfg["base"]
    return dict(cells=rows, axes={k: list(v) for k, v in cfg["axes"].items()},
                base_values={a: axis_value(base, a) for a in AXES})


# ---------------------------------------------------------------- selection, confirmation
def select_cell(cells, regimes):
    """The (cell index, regime) the fixed rule selects, with its numbers; None if no cell
    qualifies. Also returns every candidate's numbers (for the report)."""
    table = []
    for i, cell in enumerate(cells):
        arms = list(cell.arms)
        for regime in regimes:
            gate, _, _ = rules.regime_gate(cell, regime)
            qf = rules.q_first_count(cell, arms.index(REGIMES[regime][1]))["fraction"]
            table.append(dict(index=i, label=cell.label, regime=regime, gate=rules.YES_NO[gate.supported],
                              q_first=qf, eligible=gate.supported is True and qf >= MIN_Q_FIRST))
    eligible = [r for r in table if r["eligible"]]
    best = max(eligible, key=lambda r: (r["q_first"], -r["index"], -regimes.index(r["regime"])),
               default=None)
    return best, table


def confirm(cfg, key, regimes, name):
    """Selection on the map, then the selected cell at ``confirm_draws`` fresh draws."""
    check.integer_at_least("confirm_draws", cfg["confirm_draws"], 2)
    ev = MAP(cfg["map"], key=key)
    best, table = select_cell(ev.cells, list(regimes))
    out = dict(regimes=list(regimes), candidates=table, selected=best is not None)
    if best is None:
        return out
    cell = ev.cells[best["index"]]
    c = dict(cell_config(cfg["map"]["base"], cell.changes), n_draws=cfg["confirm_draws"],
             stream=f"confirm-{name}")
    return dict(out, selection=best, cell_label=cell.label, confirm_config=c, confirm=PQ(c, key=key))


def confirm_sgd(cfg, *, key):
    """Real minibatch SGD in the selected cell."""
    return confirm(cfg, key, ["sgd"], "sgd")


def confirm_noise(cfg, *, key):
    """The explicit-noise regimes (variance ∝ η, ∝ η²) in the selected cell."""
    return confirm(cfg, key, ["noise_eta", "noise_eta2"], "noise")
