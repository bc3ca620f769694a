"""Claims of Li, Wei & Ma (NeurIPS 2019, arXiv 1907.04595): the initial large learning rate
and the order in which patterns are learned (CLAIMS.md §4).

Five hypotheses and a parameter map; this module runs the P/Q experiments, decides their
verdicts and registers all six claims. The P/Q data and its analytic facts are in
:mod:`theory.large_lr`; the network, the minibatch SGD oracle and the traced schedule in
:mod:`simulations.testbeds.pq`; the shared measurements and decision rules in
:mod:`simulations.claims.large_lr_rules`; the P/Q figures in
:mod:`simulations.claims.large_lr_figures`; the digits patch claim (run, verdict, figure)
in :mod:`simulations.claims.large_lr_patch`. The three arms (large η₁ annealed to η₂; η₂
throughout; η₂ plus annealed pre-activation noise) are three configurations of one
compiled engine program. Each data draw (geometry, training and test sets) is one engine
call with ``seeds_per_draw`` paired trajectories (common random numbers across arms);
statistics are over data draws (per-draw means over seeds), so the confidence intervals
include the data variance. The P/Q runs are shared by the first four claims (cached per
process by configuration and key). Every verdict's rule was fixed before the runs and is
stated in its ``rule``; intervals are 95% Student-t over data draws unless said otherwise.
"""
from __future__ import annotations

import jax
import numpy as np

from simulations import engine, stats
from simulations.claims import large_lr_figures as figs
from simulations.claims import large_lr_patch as patch
from simulations.claims.large_lr_rules import (  # noqa: F401  (re-exported for notebooks)
    ARMS, CHANCE_CAP, DELAY_RULE, KAPPA_FRACTION, THRESHOLD, arm_hparams, arr, check_schedule,
    ci, delay_test, first_crossing, map_cell, pq_evidence, q_first_test)
from simulations.keys import subkey
from simulations.registry import HYPOTHESIS, Claim, Verdict, register
from simulations.testbeds import pq
from theory import large_lr as th
from theory import validation as check

PAPER = ("Li, Wei & Ma, Towards Explaining the Regularization Effect of Initial Large Learning "
         "Rate in Training Neural Networks, NeurIPS 2019 (arXiv 1907.04595)")
_CACHE: dict = {}


# ------------------------------------------------------------------------- validation
def spec_of(cfg) -> th.PQSpec:
    """The :class:`theory.large_lr.PQSpec` of a claim configuration."""
    return th.PQSpec(d=cfg["d"], p0=cfg["p0"], q0=cfg["q0"], margin=cfg.get("margin"),
                     p_noise=cfg["p_noise"], r=cfg.get("r"), q_noise=cfg.get("q_noise", 0.0),
                     z_norm=cfg.get("z_norm", 1.0))


def _validate(cfg):
    """The P/Q spec, schedule and batch size of one configuration (raises before compiling)."""
    spec = spec_of(cfg)
    check_schedule(cfg)
    if cfg["batch_size"] > cfg["n"]:
        check.fail("batch_size", cfg["batch_size"], f"1 <= batch_size <= n = {cfg['n']}")
    return spec


_KEYS = ("d", "p0", "q0", "margin", "p_noise", "r", "q_noise", "z_norm", "n", "n_test", "width",
         "batch_size", "l2", "eta1", "eta2", "noise_std", "n_steps", "anneal_step",
         "record_every", "n_draws", "seeds_per_draw")


def pq_runs(cfg, *, key, arms=ARMS):
    """Arrays (arm, draw, seed, record[, type]) of the P/Q runs (cached per process)."""
    spec = _validate(cfg)
    kbits = tuple(np.asarray(jax.random.key_data(key)).ravel().tolist())
    ck = (tuple(cfg.get(k) for k in _KEYS), tuple(arms), kbits)
    if ck in _CACHE:
        return _CACHE[ck]
    hp = arm_hparams(cfg, arms)
    k_data, k_sgd = subkey(key, "pq-data"), subkey(key, "pq-sgd")
    out = {"train_acc": [], "test_acc": [], "kappa": [], "valid": []}
    compiles = engine.trace_count()
    for i in range(cfg["n_draws"]):
        tb = pq.make_pq_testbed(spec, key=jax.random.fold_in(k_data, i), n=cfg["n"],
                                n_test=cfg["n_test"], width=cfg["width"],
                                batch_size=cfg["batch_size"], l2=cfg["l2"])
        res = engine.simulate(tb, pq.make_annealed_sgd, hp, key=jax.random.fold_in(k_sgd, i),
                              n_seeds=cfg["seeds_per_draw"], n_steps=cfg["n_steps"],
                              record_every=cfg["record_every"], metrics=pq.METRICS,
                              common_random_numbers=True)
        for name in ("train_acc", "test_acc", "kappa"):
            out[name].append(res.records[name])
        out["valid"].append(res.valid)
        steps = res.record_steps
    runs = {k: np.stack(v, axis=1) for k, v in out.items()}
    runs.update(record_steps=steps, arms=list(arms),
                compilations=engine.trace_count() - compiles)
    _CACHE[ck] = runs
    return runs


def run_pq(cfg, *, key):
    """Evidence of the four P/Q claims (one shared run)."""
    runs = pq_runs(cfg, key=key)
    return dict(pq_evidence(runs, cfg["anneal_step"]), sizes=_sizes(cfg))


def _sizes(cfg):
    spec = spec_of(cfg)
    return dict(cfg, gamma0=spec.gamma0, r_value=spec.radius, arms=list(ARMS),
                trajectories_per_arm=cfg["n_draws"] * cfg["seeds_per_draw"],
                dtype="float32 (simulation), float64 (data)")


# ----------------------------------------------------------------------- parameter map
def map_cells(cfg):
    """The map's cells: the base point and one-axis-at-a-time changes (a star design)."""
    cells = [(None, None)]
    for axis, values in cfg["axes"].items():
        cells += [(axis, v) for v in values if v != _axis_value(cfg["base"], axis)]
    return cells


def _axis_value(base, axis):
    if axis == "d_over_n":
        return base["d"] / base["n"]
    return base[axis] if base.get(axis) is not None else th.PQSpec(d=base["d"]).radius


def _cell_cfg(base, axis, value):
    c = dict(base)
    if axis == "d_over_n":
        c["n"] = int(round(base["d"] / value))
    elif axis is not None:
        c[axis] = value
    return c


def run_map(cfg, *, key):
    base = cfg["base"]
    for axis, value in map_cells(cfg):
        _validate(_cell_cfg(base, axis, value))
    rows = []
    for axis, value in map_cells(cfg):
        c = _cell_cfg(base, axis, value)
        runs = pq_runs(c, key=key, arms=tuple(cfg["arms"]))
        rows.append(dict(axis=axis or "base", value=_axis_value(c, axis) if axis else None,
                         **map_cell(runs, c["anneal_step"])))
    return dict(cells=rows, axes={k: list(v) for k, v in cfg["axes"].items()},
                base_values={a: _axis_value(base, a) for a in cfg["axes"]},
                sizes=dict(base, cells=len(rows)))


# ----------------------------------------------------------------------- verdicts
def _pq_sizes(ev):
    return ev["sizes"]


def verdict_q_first(ev, cfg):
    res = {a: q_first_test(ev, i) for i, a in enumerate(ev["arms"])}
    s = res["small"]
    status = ("confirmed" if s["lo"] > 0.5 else "refuted" if s["hi"] < 0.5 else "inconclusive")
    def row(a):
        r = res[a]
        return (f"{a}: Q first in {r['q_first']}/{r['n']} (P first {r['p_first']}, ties "
                f"{r['ties']}, neither {r['neither']}; median step P {r['median_t_p']}, Q {r['median_t_q']})")
    return Verdict(
        claim_id="largelr.small_lr_learns_q_first", status=status,
        summary=(f"small LR (η = {cfg['eta2']}): P(Q-only crosses {THRESHOLD} first) = "
                 f"{s['fraction']:.2f}, 95% Wilson [{s['lo']:.2f}, {s['hi']:.2f}]; " + "; ".join(
                     row(a) for a in ev["arms"])),
        measured={a: res[a] for a in ev["arms"]}, predicted=dict(q_first_fraction="> 0.5"),
        rule=(f"per trajectory, t_type = first recorded step (every {cfg['record_every']}) with "
              f"training accuracy >= {THRESHOLD}; Q first iff t_Q < t_P or only Q crosses (ties "
              "count as not Q first). Wilson 95% interval of the Q-first fraction with n = the "
              "number of data draws (design effect of the paired seeds within a draw); confirmed "
              "iff its lower end > 0.5, refuted iff its upper end < 0.5, else inconclusive"),
        sizes=_pq_sizes(ev))


def verdict_delay(ev, cfg):
    res = {a: delay_test(ev, i) for i, a in enumerate(ev["arms"])}
    d = res["large_anneal"]
    status = {"yes": "confirmed", "no": "refuted", "unknown": "inconclusive"}[d["outcome"]]
    def row(a):
        r = res[a]
        return (f"{a}: pre-anneal Q-only train acc {r['q_acc'][0]:.2f} [{r['q_acc'][1]:.2f}, "
                f"{r['q_acc'][2]:.2f}], κ {r['kappa'][0]:.3g} [{r['kappa'][1]:.3g}, {r['kappa'][2]:.3g}]"
                f" vs final κ {r['kappa_final']:.3g}, final Q acc {r['q_acc_final']:.2f} -> {r['outcome']}")
    return Verdict(
        claim_id="largelr.large_lr_delays_q", status=status,
        summary=f"η₁ = {cfg['eta1']} → η₂ = {cfg['eta2']} at step {cfg['anneal_step']}. " + "; ".join(
            row(a) for a in ev["arms"]),
        measured=res, predicted=dict(q_acc_before_anneal=f"<= {CHANCE_CAP}",
                                     kappa_before_anneal=f"<= {KAPPA_FRACTION} x final κ"),
        rule="large → anneal arm: " + DELAY_RULE + "; confirmed/refuted/inconclusive for yes/no/unknown",
        sizes=_pq_sizes(ev))


def _gain(ev, arm, ref=1, kind=0):
    tf = arr(ev, "test_final")
    return stats.paired_difference_ci(tf[arm, :, kind], tf[ref, :, kind])


def verdict_generalization(ev, cfg):
    m, lo, hi = _gain(ev, 0)
    others = {t: [float(v) for v in _gain(ev, 0, kind=k)] for k, t in enumerate(th.TYPES)}
    tf = arr(ev, "test_final")
    status = "confirmed" if lo > 0 else "refuted" if hi < 0 else "inconclusive"
    return Verdict(
        claim_id="largelr.generalization", status=status,
        summary=(f"final P-only test accuracy large→anneal {np.nanmean(tf[0, :, 0]):.3f} vs small "
                 f"{np.nanmean(tf[1, :, 0]):.3f}: gain {m:+.4f}, 95% CI [{lo:+.4f}, {hi:+.4f}] over "
                 f"{tf.shape[1]} data draws (Q-only gain {others['Q'][0]:+.3f}, both {others['PQ'][0]:+.3f})"),
        measured=dict(gain=float(m), gain_ci=[float(lo), float(hi)], gain_by_type=others,
                      test_final_mean={a: np.nanmean(tf[i], axis=0).tolist()
                                       for i, a in enumerate(ev["arms"])}),
        predicted=dict(gain="> 0"),
        rule=("gain = per-draw mean (over seeds) final P-only test accuracy, large → anneal minus "
              "small, paired by data draw; 95% Student-t interval over draws; confirmed iff its "
              "lower end > 0, refuted iff its upper end < 0, else inconclusive"),
        sizes=_pq_sizes(ev))


def verdict_noise(ev, cfg):
    d = delay_test(ev, 2)
    m, lo, hi = _gain(ev, 2)
    gain = "yes" if lo > 0 else "no" if hi < 0 else "unknown"
    parts = (d["outcome"], gain)
    status = ("confirmed" if parts == ("yes", "yes") else "refuted" if "no" in parts
              else "inconclusive")
    return Verdict(
        claim_id="largelr.activation_noise", status=status,
        summary=(f"noise std {cfg['noise_std']} annealed at step {cfg['anneal_step']}: pre-anneal "
                 f"Q-only train acc {d['q_acc'][0]:.2f} [{d['q_acc'][1]:.2f}, {d['q_acc'][2]:.2f}], "
                 f"κ {d['kappa'][0]:.3g} vs final {d['kappa_final']:.3g}, final Q acc "
                 f"{d['q_acc_final']:.2f} (delay: {d['outcome']}); P-only test gain vs small "
                 f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}] ({gain})"),
        measured=dict(delay=d, gain=float(m), gain_ci=[float(lo), float(hi)]),
        predicted=dict(delay="yes", gain="> 0"),
        rule=("small + noise arm: " + DELAY_RULE + "; gain as in largelr.generalization (noise "
              "arm minus small). Confirmed iff delay yes and gain CI > 0; refuted iff delay no or "
              "gain CI < 0; else inconclusive"),
        sizes=_pq_sizes(ev))


def _trend(cells, axis, base_value, sign):
    """z-score of sign·(gain at the largest − gain at the smallest value of ``axis``)."""
    pts = [(c["value"], c) for c in cells if c["axis"] == axis]
    if not pts:
        return dict(low_value=None, high_value=None, difference=None, se=None, z=None)
    pts += [(base_value, c) for c in cells if c["axis"] == "base"]
    pts.sort(key=lambda p: p[0])
    (v0, c0), (v1, c1) = pts[0], pts[-1]
    diff = sign * (c1["gain"] - c0["gain"])
    se = float(np.hypot(c0["gain_se"], c1["gain_se"]))
    return dict(low_value=v0, high_value=v1, difference=float(diff), se=se,
                z=float(diff / se) if se > 0 else float(np.sign(diff) * np.inf))


def _trend_text(t, verb):
    if t["z"] is None:
        return "not mapped at this fidelity"
    return (f"{t['low_value']:g}→{t['high_value']:g}: gain {verb} by {t['difference']:+.3f} "
            f"(z {t['z']:.2f})")


def verdict_map(ev, cfg):
    cells, base = ev["cells"], ev["base_values"]
    p0 = _trend(cells, "p0", base.get("p0"), -1.0)          # gain(small p0) − gain(large p0)
    dn = _trend(cells, "d_over_n", base.get("d_over_n"), 1.0)  # gain(large d/n) − gain(small d/n)
    z = 1.96
    outs = ["unknown" if t["z"] is None else "yes" if t["z"] > z else "no" if t["z"] < -z
            else "unknown" for t in (p0, dn)]
    status = ("confirmed" if outs == ["yes", "yes"] else "refuted" if "no" in outs
              else "inconclusive")
    table = [f"{c['axis']}={c['value'] if c['value'] is not None else '-'}: gain "
             f"{c['gain']:+.3f} [{c['gain_lo']:+.3f}, {c['gain_hi']:+.3f}], Q delayed {c['q_delayed']}, "
             f"small Q-first {c['q_first_small']:.2f}" for c in cells]
    n_pos = sum(c["gain_lo"] > 0 for c in cells)
    n_neg = sum(c["gain_hi"] < 0 for c in cells)
    n_del = sum(c["q_delayed"] == "yes" for c in cells)
    return Verdict(
        claim_id="largelr.parameter_map", status=status,
        summary=(f"{len(cells)} cells: gain CI > 0 in {n_pos}, < 0 in {n_neg}; Q delayed in {n_del}. "
                 f"Trend p₀ {_trend_text(p0, 'falls')} ({outs[0]}); d/n {_trend_text(dn, 'rises')} "
                 f"({outs[1]}); table in measured.table"),
        measured=dict(table=table, cells=cells, p0_trend=p0, d_over_n_trend=dn),
        predicted=dict(p0_trend="> 0", d_over_n_trend="> 0"),
        rule=("star design around the base point (one axis changed at a time). Per cell: gain = "
              "paired P-only test gain with a 95% t-interval over data draws; Q delayed per the "
              "delay rule of largelr.large_lr_delays_q. Trend of an axis: difference of the gains "
              "at its extreme values, z = difference / sqrt(se₁² + se₂²); yes iff z > 1.96, no iff "
              "z < −1.96. Confirmed iff both the p₀ and the d/n trends are yes; refuted iff either "
              "is no; else inconclusive"),
        sizes=ev["sizes"])

# ----------------------------------------------------------------------- registration
_PQ = dict(d=128, p0=0.2, q0=0.2, margin=None, p_noise=0.7, r=None, q_noise=0.0, n=64,
           width=64, batch_size=8, l2=5e-4, eta1=2.0, eta2=0.2, noise_std=0.5)
QUICK = dict(_PQ, n_test=300, n_steps=1000, anneal_step=500, record_every=50, n_draws=3,
             seeds_per_draw=2)
FULL = dict(_PQ, n_test=900, n_steps=3000, anneal_step=1500, record_every=100, n_draws=8,
            seeds_per_draw=2)
MAP_AXES = {"p0": [0.1, 0.2, 0.4], "d_over_n": [0.5, 1.0, 2.0, 4.0], "r": [0.1, 0.6],
            "eta1": [0.5, 2.0, 8.0], "batch_size": [2, 8, 32], "l2": [1e-4, 5e-4, 3e-3]}
# quick: the three arms and shapes of QUICK (no extra compilation), two axes only
MAP_QUICK = dict(base=dict(QUICK, n_draws=2), axes={"p0": [0.1, 0.4], "r": [0.1]}, arms=ARMS)
MAP_FULL = dict(base=dict(FULL, n_test=300, n_draws=6, n_steps=1500, anneal_step=750, record_every=75),
                axes=MAP_AXES, arms=["large_anneal", "small"])
_CONFIGS = {"quick": QUICK, "full": FULL}
_ARMS_TEXT = ("arms: η₁ → η₂ at the anneal step; η₂ throughout; η₂ + pre-activation noise "
              "annealed at the same step")

register(Claim(
    id="largelr.small_lr_learns_q_first", paper=PAPER, kind=HYPOTHESIS,
    statement=("With a small learning rate, Q-only training examples cross 0.9 training "
               "accuracy before P-only examples (real minibatch SGD; " + _ARMS_TEXT + ")."),
    configs=_CONFIGS, run=run_pq, verdict=verdict_q_first, figure=figs.figure_train_acc))

register(Claim(
    id="largelr.large_lr_delays_q", paper=PAPER, kind=HYPOTHESIS,
    statement=("With a large learning rate (real minibatch SGD), Q-only training accuracy stays "
               "near chance and the Q-margin κ ≈ 0 until annealing; Q is learned after it."),
    configs=_CONFIGS, run=run_pq, verdict=verdict_delay, figure=figs.figure_kappa))

register(Claim(
    id="largelr.generalization", paper=PAPER, kind=HYPOTHESIS,
    statement=("Final P-only test accuracy: large → anneal > small learning rate (paired over "
               "data draws); the trend in p₀ and d/n is largelr.parameter_map."),
    configs=_CONFIGS, run=run_pq, verdict=verdict_generalization,
    figure=figs.figure_generalization))

register(Claim(
    id="largelr.activation_noise", paper=PAPER, kind=HYPOTHESIS,
    statement=("Small learning rate + pre-activation noise annealed at the same step reproduces "
               "the large-LR ordering (Q delayed until annealing) and its P-only test gain."),
    configs=_CONFIGS, run=run_pq, verdict=verdict_noise, figure=figs.figure_noise))

register(Claim(
    id="largelr.patch", paper=PAPER, kind=HYPOTHESIS,
    statement=("Digits with a class patch: small LR reaches ~100% patch-only accuracy within the "
               "first epoch; large LR stays near chance until annealing; final clean test "
               "accuracy large ≥ small. Judged at the weakest patch of an exploration grid "
               "(strength × size × η₂) that the small LR learns at all."),
    configs={"quick": patch.PATCH_QUICK, "full": patch.PATCH_FULL}, run=patch.run_patch,
    verdict=patch.verdict_patch, figure=patch.figure_patch))

register(Claim(
    id="largelr.parameter_map", paper=PAPER, kind=HYPOTHESIS,
    statement=("The P-only test gain (large → anneal minus small) grows as p₀ falls and as d/n "
               "rises; map of the gain and of the Q delay over (p₀, d/n, r, η₁, B, λ)."),
    configs={"quick": MAP_QUICK, "full": MAP_FULL}, run=run_map, verdict=verdict_map,
    figure=figs.figure_map))
