"""Verdict rules of Li, Wei & Ma's parameter map and of the claims judged in the map cell a
fixed rule selects (real minibatch SGD; the theory's explicit noise).

Map: per cell and regime, the premise gate, the small LR's Q-first fraction, the Q delay,
the P-only gain and the mechanism (P's alignment with w*, the share of P's gradient from
the examples with both components). Its hypothesis — the SGD gain grows as p₀ falls and as
d/n rises — is judged only if the premise holds for SGD in every cell the trends compare.

Selected cell: the claim's gate is the premise gate at the fresh draws and the small LR's
Q-first fraction (Wilson interval above 0.5); then the large arm's Q delay (the rule of
``largelr.large_lr_delays_q``) and the P-only gain (large − small, paired by draw).
"""
from __future__ import annotations

import numpy as np

from simulations import stats
from simulations.claims.large_lr.rules import (GATE_RULE, GATE_WORDS, DELAY_RULE, OUTCOME, YES_NO,
                                               delay, fmt_ci, interval, paired, q_first_count,
                                               regime_gate, regime_text, relation)
from simulations.claims.large_lr.runs import REGIMES
from simulations.claims.large_lr.runs_map import MIN_Q_FIRST
from simulations.registry import Finding, Verdict, decide

MAP_REGIMES = ("sgd", "mitigation", "noise_eta", "noise_eta2")


# -------------------------------------------------------------------------- map cells
def pair_gain(cell, regime):
    """Per-draw final P-only test accuracy, large arm − small arm of a regime."""
    arms = list(cell.arms)
    large, small = (arms.index(a) for a in REGIMES[regime])
    return cell.test_final[large, :, 0] - cell.test_final[small, :, 0]


def cell_row(cell, regime):
    """A map cell in numbers for one regime: premise gate, small LR's Q-first fraction,
    the large arm's Q delay, the P-only gain, both-share and P alignment of the two arms."""
    arms = list(cell.arms)
    large, small = (arms.index(a) for a in REGIMES[regime])
    gate = regime_gate(cell, regime)[0].supported
    g = interval(pair_gain(cell, regime))
    return dict(label=cell.label, axis=cell.axis, value=cell.value, regime=regime,
                gate=YES_NO[gate], q_first_small=q_first_count(cell, small)["fraction"],
                q_delayed=delay(cell, large)[0]["outcome"], gain=g[0], gain_lo=g[1], gain_hi=g[2],
                both_share=[float(np.nanmean(cell.both_share_window[k])) for k in (large, small)],
                p_align=[float(np.nanmean(cell.p_align_final[k])) for k in (large, small)])


def _cell_text(r):
    return (f"{r['label']} [{r['regime']}]: premise {r['gate']}, small Q-first {r['q_first_small']:.2f}, "
            f"Q delayed {r['q_delayed']}, P gain {r['gain']:+.3f} [{r['gain_lo']:+.3f}, "
            f"{r['gain_hi']:+.3f}], both-share {r['both_share'][0]:.2f}/{r['both_share'][1]:.2f}, "
            f"P align {r['p_align'][0]:+.2f}/{r['p_align'][1]:+.2f} (large/small)")


def trend(cells, axis, base_value, sign):
    """sign·(SGD gain at the largest − at the smallest value of ``axis``), paired by data
    draw (the cells share the draws' keys), with its 95% t-interval and the two cells."""
    pts = [(c.value, c) for c in cells if c.axis == axis]
    if not pts:
        return None, []
    pts += [(base_value, c) for c in cells if c.axis == "base"]
    pts.sort(key=lambda p: p[0])
    (v0, c0), (v1, c1) = pts[0], pts[-1]
    m, lo, hi = paired(sign * pair_gain(c1, "sgd"), sign * pair_gain(c0, "sgd"))
    return dict(low_value=v0, high_value=v1, difference=m, lo=lo, hi=hi), [c0, c1]


def _trend_text(t, verb, ok):
    if t is None:
        return "not mapped at this fidelity"
    return (f"{t['low_value']:g}→{t['high_value']:g}: gain {verb} by {t['difference']:+.3f} "
            f"[{t['lo']:+.3f}, {t['hi']:+.3f}] {relation(ok, '> 0', '<= 0')}")


def parameter_map(ev, cfg):
    m = ev.map
    cells, base = m.cells, m.base_values
    rows = [cell_row(c, r) for c in cells for r in MAP_REGIMES]
    p0, p0_cells = trend(cells, "p0", base.p0, -1.0)            # gain(small p₀) − gain(large p₀)
    dn, dn_cells = trend(cells, "d_over_n", base.d_over_n, 1.0)
    ok = {k: None if t is None else stats.exceeds(t["lo"], t["hi"], 0.0) for k, t in (("p0", p0), ("dn", dn))}
    ends = p0_cells + dn_cells
    gates = [regime_gate(c, "sgd")[0].supported for c in ends]
    gate_ok = stats.all_of(gates) if ends else None
    status, reason = decide(
        [Finding("gain falls as p₀ rises", ok["p0"], _trend_text(p0, "falls", ok["p0"])),
         Finding("gain rises with d/n", ok["dn"], _trend_text(dn, "rises", ok["dn"]))],
        gate=Finding("premise (SGD) in the cells the trends compare", gate_ok,
                     "; ".join(f"{c.label}: {GATE_WORDS[g]}" for c, g in zip(ends, gates))
                     or "no trend cells mapped"))
    per = {r: [x for x in rows if x["regime"] == r] for r in MAP_REGIMES}
    counts = "; ".join(
        f"{r}: premise passed in {sum(x['gate'] == 'yes' for x in per[r])}/{len(per[r])} cells, "
        f"small Q-first >= {MIN_Q_FIRST} in {sum(x['q_first_small'] >= MIN_Q_FIRST for x in per[r])}, "
        f"both in {sum(x['gate'] == 'yes' and x['q_first_small'] >= MIN_Q_FIRST for x in per[r])}"
        for r in MAP_REGIMES)
    b = cfg["map"]["base"]
    return Verdict(
        status=status,
        summary=(f"[map around {regime_text(b, 'sgd')}, {b['n_draws']} draws per cell] {len(cells)} "
                 f"cells. {counts}. Trend p₀ {_trend_text(p0, 'falls', ok['p0'])}; d/n "
                 f"{_trend_text(dn, 'rises', ok['dn'])}. {reason if status != 'confirmed' else ''}"
                 "; table in measured.table").replace(". ;", ";"),
        measured=dict(table=[_cell_text(r) for r in rows], cells=rows, p0_trend=p0, d_over_n_trend=dn),
        predicted=dict(p0_trend="> 0", d_over_n_trend="> 0"),
        rule=("cells: the base, one axis changed at a time, and grid corners. Per cell and regime: "
              + GATE_RULE + "; Q-first fraction of the small arm (first crossing of 0.9 training "
              "accuracy); Q delay of the large arm per the delay rule; P-only gain large − small with "
              "a 95% t-interval over draws. Trend of an axis: SGD gain at its largest minus at its "
              "smallest value (p₀: smallest minus largest), paired by draw, 95% t-interval; supported "
              "iff above 0, contradicted iff at or below 0. Gate: the SGD premise passes in every cell "
              "the trends compare. Confirmed iff both trends supported; refuted iff either "
              "contradicted; else inconclusive (an unmapped axis is unresolved)"),
        sizes=dict(b, cells=len(cells)))


# ---------------------------------------------------------------- the selected cell
def in_premise(ev, cfg):
    regimes = list(ev.regimes)
    cand = [f"{c.label} [{c.regime}]: premise {c.gate}, small Q-first {c.q_first:.2f}"
            for c in ev.candidates]
    rule = (f"selection on the map (its own draws): the cells and regimes ({', '.join(regimes)}) whose "
            f"premise gate passes and whose small LR has Q first in >= {MIN_Q_FIRST} of its "
            "trajectories; highest Q-first fraction, ties to the earlier cell. The selected cell is "
            "run again at fresh draws, where: gate = the premise gate (" + GATE_RULE + ") and the "
            "small LR's Q-first fraction with its Wilson interval (n = draws) above 0.5; findings: "
            "the large arm's Q delay (" + DELAY_RULE + ") and the P-only test gain large − small "
            "(paired t-interval above 0). Confirmed iff the gate passes and both are supported; "
            "refuted iff the gate passes and either is contradicted; else inconclusive")
    if not ev.selected:
        c = ev.candidates
        passed = [x for x in c if x.gate == "yes"]
        early = [x for x in c if x.q_first >= MIN_Q_FIRST]
        gate = Finding("a mapped cell meets the premise with Q learned first by the small LR", False,
                       f"of {len(c)} (cell, regime) candidates the premise passed in {len(passed)} "
                       f"({', '.join(f'{x.label} [{x.regime}]' for x in passed) or 'none'}), the small LR "
                       f"had Q first in >= {MIN_Q_FIRST} of its trajectories in {len(early)} "
                       f"({', '.join(f'{x.label} [{x.regime}, premise {x.gate}]' for x in early) or 'none'}), "
                       "both in none")
        status, reason = decide([Finding("Q delayed and P-only gain", None)], gate=gate)
        where = regime_text(cfg["map"]["base"], regimes[0]).replace("regime: ", "")
        return Verdict(
            status=status,
            summary=(f"[{' / '.join(regimes)}: no mapped cell selected; map around {where}; premise gate "
                     f"passed in no eligible cell] {reason}"),
            measured=dict(candidates=cand), predicted=dict(delay="yes", gain="> 0"), rule=rule,
            sizes=dict(cfg["map"]["base"], confirm_draws=cfg["confirm_draws"]))
    pq, regime = ev.confirm, ev.selection.regime
    arms = list(pq.arms)
    large, small = (arms.index(a) for a in REGIMES[regime])
    premise, _, gate_numbers = regime_gate(pq, regime)
    qf = q_first_count(pq, small)
    q_ok = stats.exceeds(qf["lo"], qf["hi"], 0.5)
    gate = Finding("premise and Q first at the fresh draws", stats.all_of([premise.supported, q_ok]),
                   f"{premise.detail}; small Q-first {qf['fraction']:.2f} Wilson [{qf['lo']:.2f}, "
                   f"{qf['hi']:.2f}] vs 0.5")
    d, delay_findings = delay(pq, large)
    g = paired(pq.test_final[large, :, 0], pq.test_final[small, :, 0])
    g_ok = stats.exceeds(g[1], g[2], 0.0)
    status, reason = decide([Finding(f"delay: {f.name}", f.supported, f.detail) for f in delay_findings]
                            + [Finding("P-only test gain > 0", g_ok, f"{fmt_ci(g, '+.4f')} vs 0")], gate=gate)
    both = paired(pq.both_share_window[large], pq.both_share_window[small])
    align = paired(pq.p_align_final[large], pq.p_align_final[small])
    c = ev.confirm_config
    return Verdict(
        status=status,
        summary=(f"[{regime_text(c, regime)}; cell {ev.cell_label} selected on the map; "
                 f"{pq.n_draws} fresh draws; premise gate {GATE_WORDS[premise.supported]}, small "
                 f"Q-first {qf['fraction']:.2f}] Q delayed: {d['outcome']}; P-only gain "
                 f"{fmt_ci(g, '+.4f')} ({YES_NO[g_ok]}); mechanism: both-share large − small "
                 f"{fmt_ci(both, '+.3f')}, P alignment large − small {fmt_ci(align, '+.3f')}"
                 + ("" if status == "confirmed" else f". {reason}")),
        measured=dict(selection=dict(ev.selection), gate=gate_numbers, q_first=qf, delay=d,
                      gain=list(g), both_share_difference=list(both), p_align_difference=list(align),
                      outcome=OUTCOME[status], candidates=cand),
        predicted=dict(delay="yes", gain="> 0"), rule=rule,
        sizes=dict(c, trajectories_per_arm=c["n_draws"] * c["seeds_per_draw"]))
