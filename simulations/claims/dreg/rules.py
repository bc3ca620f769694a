"""Verdict rules for DReg's claims: pure functions of (evidence, config).

Theorems compare two float64 programs that run the same arithmetic in a different
association; the evidence holds error / tolerance ratios with the tolerance
ulps·(t + 1)·u·S of :func:`theory.dreg.roundoff_tolerance` (u = 2⁻⁵³, S the largest weight
magnitude of the compared trajectories), so "equal to float precision" is ratio <= 1.
The hypothesis is decided from Student-t intervals over data splits (the unit) against
margins fixed before the runs (below).
"""
from __future__ import annotations

import numpy as np

from simulations import stats
from simulations.claims.dreg.runs_sweep import read_off
from simulations.registry import Finding, Verdict, decide, holds

#: the smallest speed-up that counts: DReg needs <= 0.9× the other arm's steps
SPEEDUP = float(np.log(1 / 0.9))
#: the smallest test-accuracy gain that counts (and the smallest gap worth closing)
ACC_MARGIN = 0.005
#: family-wise error of the primary intervals (Bonferroni over them)
FAMILY = 0.05
#: a theorem's difference must exceed this many tolerances to count as resolved
RESOLVED = 1e3


def _sizes(cfg, **extra):
    return dict(cfg, **extra)


def _fmt_ratio(x) -> str:
    return f"{float(np.max(x)):.2g}"


# ============================================================== reparametrization
def reparametrization(ev, cfg):
    ev = ev.exact
    ratios = {name: float(np.max(ev[name])) for name in
              ("control_ratio", "baseline_ratio", "margin_ratio", "delta_const_ratio")}
    wrong = float(np.min(ev.wrong_factor_ratio))
    status, failed = holds({
        "λ = 0 DReg = plain network with layer LR × 2/κ²": ratios["control_ratio"] <= 1,
        "λ = 0 DReg with factor κ²/2 = plain network": ratios["baseline_ratio"] <= 1,
        "margin-R DReg (λ > 0) = LR control": ratios["margin_ratio"] <= 1,
        "W − W′ constant at λ = 0": ratios["delta_const_ratio"] <= 1,
        "the uncompensated plain network differs": wrong > RESOLVED,
        "no divergence": ev.n_diverged == 0})
    return Verdict(
        status=status,
        summary=(f"max |W_eff(DReg, λ = 0) − W(plain, layer LR × 2/κ²)| = "
                 f"{ratios['control_ratio']:.2g} of the float tolerance over {int(ev.n_steps)} steps "
                 f"(κ = {', '.join(f'{k:g}' for k in ev.kappas)}; ρ = {', '.join(f'{r:g}' for r in ev.offsets)}; "
                 f"β = {', '.join(f'{b:g}' for b in ev.momenta)}); factor κ²/2 = plain network "
                 f"({ratios['baseline_ratio']:.2g}); margin-R DReg = control ({ratios['margin_ratio']:.2g}); "
                 f"W − W′ constant at λ = 0 ({ratios['delta_const_ratio']:.2g}); the plain network at the "
                 f"unscaled layer LR is {wrong:.1e} tolerances away"
                 + (f"; failed: {', '.join(failed)}" if failed else "")),
        measured=dict(ratios, wrong_factor_min_ratio=wrong,
                      control_ratio_by_kappa=np.max(ev.control_ratio, axis=(1, 2))),
        predicted=dict(effective_lr_factor=[2 / k ** 2 for k in ev.kappas], max_ratio=1.0),
        rule=(f"float64, every step t <= T: max over parameters and seeds of |difference| <= "
              f"{ev.ulps:g}·(t + 1)·u·S (u = 2⁻⁵³, S = the largest |W_eff| or (|W| + |W′|)/κ on the "
              "compared runs): two programs doing the same arithmetic in another association "
              f"differ by a few ulps per step, never more; the plain network at layer LR × 1 must "
              f"differ from λ = 0 DReg by > {RESOLVED:g} tolerances at T (the check can fail)"),
        sizes=_sizes(cfg, dtype="float64"))


# =================================================================== inert at copy
def inert_at_copy(ev, cfg):
    ev = ev.exact
    offsets = np.asarray(ev.offsets)
    exact, moved = offsets == 0, offsets > 0
    delta = float(np.max(ev.inert_delta_ratio[:, exact]))
    weff = float(np.max(ev.inert_weff_ratio[:, exact]))
    first = float(np.max(ev.first_step_ratio))
    active = float(np.min(ev.first_step_size_ratio[:, moved])) if moved.any() else np.inf
    status, failed = holds({
        "exact copy: W = W′ at every step (λ > 0)": delta <= 1,
        "exact copy: W_eff(λ > 0) = W_eff(λ = 0)": weff <= 1,
        "first step of W − W′ = −ηλ(∇_W R − ∇_W′ R)": first <= 1,
        "perturbed / independent copy: the step is resolved": active > RESOLVED})
    return Verdict(
        status=status,
        summary=(f"from an exact copy (ρ = 0) with λ > 0 and R = cosine, unit-wise cosine, margin: "
                 f"max |W − W′| = {delta:.2g} and |W_eff − W_eff(λ = 0)| = {weff:.2g} of the float "
                 f"tolerance over {int(ev.n_steps)} steps: DReg is inert; with ρ = "
                 f"{', '.join(f'{r:g}' for r in offsets[moved])} the first step moves W − W′ by "
                 f"−ηλ(∇_W R − ∇_W′ R) (closed form; error {first:.2g} tolerances), >= {active:.1e} "
                 "tolerances: a perturbed or independent copy makes it active"
                 + (f"; failed: {', '.join(failed)}" if failed else "")),
        measured=dict(exact_copy_gap_ratio=delta, exact_copy_weff_ratio=weff,
                      first_step_error_ratio=first, first_step_size_min_ratio=active),
        predicted=dict(exact_copy_gap=0.0, regularizer_gradient_at_copy=0.0),
        rule=(f"float64, tolerance {ev.ulps:g}·(t + 1)·u·S as in dreg.reparametrization; ρ = 0: "
              "W − W′ and W_eff(λ > 0) − W_eff(λ = 0) within it at every step, for every R, κ, β; "
              f"every ρ: the engine's first change of W − W′ equals the closed form within it; "
              f"ρ > 0: the closed-form change exceeds {RESOLVED:g} tolerances"),
        sizes=_sizes(cfg, dtype="float64"))


# ===================================================================== large batch
def _arm(block, **want):
    """Index of the arm whose spec matches ``want`` (kind, layer, reg, lam, beta)."""
    for i, spec in enumerate(block.specs):
        if all(spec[k] == v for k, v in want.items()):
            return i
    raise KeyError(f"no arm {want} among {list(block.arms)}")


def interval(x, confidence):
    """(mean, low, high): Student-t over the splits."""
    return tuple(float(v) for v in stats.mean_ci(np.asarray(x, np.float64), confidence))


def compare(r, a, b, confidence):
    """DReg-style comparison of arm a against arm b on the per-split read-off ``r``:
    speed-up log(steps_b/steps_a) and accuracy gain test_a − test_b, with intervals, and
    the reasons an interval cannot decide (censored target, tuned η at a grid end)."""
    speed = np.log(r["steps"][b]) - np.log(r["steps"][a])
    gain = r["test"][a] - r["test"][b]
    edge = bool(r["edge"][a].any() or r["edge"][b].any())
    return dict(speed=interval(speed, confidence), gain=interval(gain, confidence),
                censored=[float(r["censored"][a].mean()), float(r["censored"][b].mean())], edge=edge,
                diverged=int(r["diverged"][a].sum() + r["diverged"][b].sum()))


def _speed_finding(name, c):
    """Speed-up interval against the margin. A split that misses the target within the
    budget counts its steps as the budget T, a lower bound of the true steps: if DReg
    (arm a) is censored anywhere the measured speed-up is an upper bound (it can show
    DReg is not faster, never that it is); if the other arm is, a lower bound."""
    m, lo, hi = c["speed"]
    detail = f"steps ratio {np.exp(-m):.3f} [{np.exp(-hi):.3f}, {np.exp(-lo):.3f}] (need <= 0.9)"
    if c["edge"]:
        return Finding(name, None, f"{detail}; tuned η at an end of the grid")
    ca, cb = c["censored"]
    outcome = stats.exceeds(lo, hi, SPEEDUP)
    if outcome is True and ca > 0:
        return Finding(name, None, f"{detail}; DReg misses the target on {ca:.0%} of splits (an upper bound)")
    if outcome is False and cb > 0:
        return Finding(name, None, f"{detail}; the other arm misses the target on {cb:.0%} of splits")
    if ca > 0:
        detail += f"; DReg misses the target on {ca:.0%} of splits (budget counted: a bound in its favour)"
    return Finding(name, outcome, detail)


def _gain_finding(name, c, gate):
    m, lo, hi = c["gain"]
    detail = f"test accuracy {100 * m:+.2f} pp [{100 * lo:+.2f}, {100 * hi:+.2f}] (need > {100 * ACC_MARGIN:g} pp)"
    if gate.supported is False:
        return Finding(name, None, f"{detail}; no gap to close ({gate.detail})")
    if gate.supported is None:
        return Finding(name, None, f"{detail}; gap not established ({gate.detail})")
    if c["edge"]:
        return Finding(name, None, f"{detail}; tuned η at an end of the grid")
    return Finding(name, stats.exceeds(lo, hi, ACC_MARGIN), detail)


def gate(ev, name, cfg, confidence):
    """The premise on a testbed: the baseline's test accuracy at the small batch exceeds
    that at the large batch by more than the accuracy margin (paired by split)."""
    if cfg.get("small_batch") is None or cfg["small_batch"] == cfg["large_batch"]:
        return Finding(f"{name}: large-batch gap", None, "no small batch at this fidelity"), None
    acc = []
    for B in (cfg["small_batch"], cfg["large_batch"]):
        block = ev[name][f"B{B}"]
        b = _arm(block, kind="baseline", beta=0.0)
        acc.append(read_off(block, baseline=b)["test"][b])
    m, lo, hi = interval(acc[0] - acc[1], confidence)
    detail = (f"baseline test accuracy B = {cfg['small_batch']} minus B = {cfg['large_batch']}: "
              f"{100 * m:+.2f} pp [{100 * lo:+.2f}, {100 * hi:+.2f}] ({100 * confidence:.1f}% CI)")
    return Finding(f"{name}: large-batch gap", stats.exceeds(lo, hi, ACC_MARGIN), detail), (m, lo, hi)


def primary(ev, name, cfg, confidence):
    """The primary cell's comparisons at the large batch on one testbed."""
    block = ev[name][f"B{cfg['large_batch']}"]
    p = cfg["primary"]
    r = read_off(block, baseline=_arm(block, kind="baseline", beta=0.0))
    d = _arm(block, kind="dreg", layer=p["layer"], reg=p["reg"], lam=p["lam"], beta=0.0)
    base = _arm(block, kind="baseline", beta=0.0)
    ctrl = _arm(block, kind="control", layer=p["layer"], beta=0.0)
    return compare(r, d, base, confidence), compare(r, d, ctrl, confidence)


def cell_map(ev, name, cfg):
    """Every DReg arm against the baseline and its layer's LR control (same β), at every
    batch size: per-cell 95% intervals (descriptive; the verdict rests on the primary)."""
    cells = []
    for B in ev.batch_sizes:
        block = ev[name][f"B{int(B)}"]
        for a, spec in enumerate(block.specs):
            if spec["kind"] != "dreg":
                continue
            r = read_off(block, baseline=_arm(block, kind="baseline", beta=spec["beta"]))
            vs = {"baseline": _arm(block, kind="baseline", beta=spec["beta"]),
                  "control": _arm(block, kind="control", layer=spec["layer"], beta=spec["beta"])}
            row = dict(batch_size=int(B), arm=block.arms[a])
            for other, b in vs.items():
                c = compare(r, a, b, stats.FIGURE_CONFIDENCE)
                row[other] = dict(c, faster=_speed_finding("", c).supported,
                                  better=stats.exceeds(c["gain"][1], c["gain"][2], ACC_MARGIN))
            cells.append(row)
    return cells


def large_batch(ev, cfg):
    cfg = {**cfg, "large_batch": cfg["sweep"]["large_batch"], "small_batch": cfg["sweep"].get("small_batch")}
    ev = ev.sweep
    names = list(ev.testbeds)
    n_intervals = 5 * len(names)  # 4 comparisons + the gate per testbed
    confidence = 1 - FAMILY / n_intervals
    findings, measured = [], {}
    for name in names:
        g, gap = gate(ev, name, cfg, confidence)
        vs_base, vs_ctrl = primary(ev, name, cfg, confidence)
        findings += [_speed_finding(f"{name}: faster than the baseline", vs_base),
                     _speed_finding(f"{name}: faster than the LR control", vs_ctrl),
                     _gain_finding(f"{name}: more accurate than the baseline", vs_base, g),
                     _gain_finding(f"{name}: more accurate than the LR control", vs_ctrl, g)]
        measured[name] = dict(gate=g.detail, gap=gap, vs_baseline=vs_base, vs_control=vs_ctrl)
        cells = cell_map(ev, name, cfg)
        where = lambda ok: [c["arm"] + f" (B = {c['batch_size']})" for c in cells if ok(c["control"])]
        measured[name].update(
            map=cells, beats_control_in_both=where(lambda c: c["faster"] is True and c["better"] is True),
            faster_than_control=where(lambda c: c["faster"] is True),
            more_accurate_than_control=where(lambda c: c["better"] is True))
    status, reason = decide(findings)
    p = cfg["primary"]
    parts = []
    for name in names:
        m = measured[name]
        parts.append(f"{name}: DReg/LR-control steps {np.exp(-m['vs_control']['speed'][0]):.2f}, "
                     f"DReg/baseline {np.exp(-m['vs_baseline']['speed'][0]):.2f}, test accuracy "
                     f"{100 * m['vs_control']['gain'][0]:+.2f} pp vs control, "
                     f"{100 * m['vs_baseline']['gain'][0]:+.2f} pp vs baseline; map ({len(m['map'])} "
                     f"DReg cells): faster than the control in {len(m['faster_than_control'])}, more "
                     f"accurate in {len(m['more_accurate_than_control'])}"
                     + "".join(f" ({c})" for c in m["more_accurate_than_control"][:2])
                     + f", both in {len(m['beats_control_in_both'])}")
    return Verdict(
        status=status,
        summary=(f"B = {cfg['large_batch']}, DReg on {p['layer']} ({p['reg']}, λ = {p['lam']:g}, κ = "
                 f"{cfg['sweep']['kappa']:g}, ρ = {cfg['sweep']['offset']:g}): " + "; ".join(parts)
                 + f" — {status}: {reason}"),
        measured=measured,
        predicted=dict(speedup_at_least=0.9, accuracy_gain_at_least=ACC_MARGIN),
        rule=(f"per testbed, at B = {cfg['large_batch']} and the fixed epoch budget, η of every arm "
              "tuned on the validation accuracy of the OTHER splits (leave one split out); the "
              "unit is a data split (mean of its seeds). Steps to target: first step (log-linear "
              "between records) at which the training loss reaches the baseline's mean loss at half "
              "its budget on the other splits. Confirmed if on every testbed DReg's steps ratio vs "
              "the baseline AND vs the LR control has its interval below 0.9 and its test-accuracy "
              f"gain interval above {100 * ACC_MARGIN:g} pp; refuted if any of these intervals lies "
              "entirely on the other side; otherwise inconclusive. Accuracy parts only where the "
              f"gate holds: the baseline's B = {cfg.get('small_batch')} accuracy exceeds its "
              f"B = {cfg['large_batch']} accuracy by > {100 * ACC_MARGIN:g} pp (else 'no gap to "
              f"close'). Intervals: Student-t over splits, confidence {confidence:.4f} each "
              f"(Bonferroni, family-wise {FAMILY:g} over {n_intervals}); a split that misses the "
              "target counts the budget T, a lower bound of its steps (so a censored DReg can be "
              "shown slower, never faster, and vice versa); unresolved when a tuned η sits at a "
              "grid end. A seed that diverges counts as accuracy 0 and loss +inf (such an η is "
              "never tuned in; the count at the tuned η is reported). The map "
              "(every DReg arm and batch size) uses per-cell 95% intervals and is descriptive."),
        sizes=_sizes(cfg))
