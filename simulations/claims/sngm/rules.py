"""Verdict rules for the synthetic SNGM claims: pure functions of (evidence, config).

The theorem ``sngm.bound`` is violated only when a Monte-Carlo upper confidence limit
(one-sided Student-t, family-wise over the grid) exceeds its bound. The hypotheses compare
B_max in grid steps (log₂ of a ratio of batch sizes): a ratio is supported when the
bootstrap interval of its grid steps lies inside its band, contradicted when it lies
outside, and unresolved otherwise (:func:`simulations.registry.decide`). Censored B_max
(top of the grid, or no batch size reaching ε) leave an end of the interval open.
"""
from __future__ import annotations

import numpy as np

from simulations import stats
from simulations.claims.sngm.runs import OPEN
from simulations.registry import Finding, Verdict, decide, holds


def _sizes(cfg):
    return dict(cfg, dtype="float32 (simulation), float64 (theory)")


def _end(x) -> str:
    x = int(x)
    return "+∞" if x >= OPEN else ("−∞" if x <= -OPEN else f"{x:+d}")


def steps_text(st) -> str:
    """'+2 [+1, +3]' (grid steps with their interval); a censored estimate is a bound
    ('>= +2', '<= +2') or unknown ('?'), an open interval end is ±∞."""
    lower, upper = st["point_lower"], st["point_upper"]
    if lower <= -OPEN and upper >= OPEN:
        point = "?"
    elif upper >= OPEN:
        point = f">= {_end(lower)}"
    elif lower <= -OPEN:
        point = f"<= {_end(upper)}"
    else:
        point = _end(lower)
    return f"{point} [{_end(st['low'])}, {_end(st['high'])}]"


def _verdict(findings, gate=None, **fields) -> Verdict:
    status, reason = decide(findings, gate=gate)
    return Verdict(status=status, summary=fields.pop("summary") + f" → {status} ({reason})",
                   **fields)


_BOOT_RULE = ("B_max = the largest B of the grid (powers of 2) for which some η of the grid has "
              "median-over-seeds tail metric (mean ‖∇F‖ over the last 25% of the T = C/B "
              "iterates) <= ε; intervals are percentile bootstraps over seeds ({n_boot} resamples, "
              "generator from the claim's key) of the grid steps at confidence {conf:.4g} each "
              "(family {family:g}, Bonferroni over the {k} findings), seeds resampled jointly "
              "(paired across budgets); a B_max at the top of the grid or below its bottom is "
              "censored and leaves its end of the interval open (±∞). ")


def _boot_rule(cfg, k):
    return _BOOT_RULE.format(n_boot=cfg["n_boot"], conf=1 - (1 - cfg["confidence"]) / k,
                             family=cfg["confidence"], k=k)


# ====================================================================== sngm.bound
def bound(ev, cfg):
    sw = ev.sweep
    n = sw.tail.shape[-1]
    mean, se, _ = stats.mean_stderr(sw.average, axis=-1)          # (C, M, B, η)
    mean_sq, se_sq, _ = stats.mean_stderr(sw.average_sq, axis=-1)
    in_cap = ev.msgd_in_cap.astype(bool)
    sm, sse, sb = mean[:, 0], se[:, 0], ev.sngm_bound
    mm, mse, mb = mean_sq[:, 1][..., in_cap], se_sq[:, 1][..., in_cap], ev.msgd_bound[..., in_cap]
    n_cmp = sm.size + mm.size
    t = stats.critical_t(n_comparisons=n_cmp, dof=n - 1, two_sided=False)
    with np.errstate(invalid="ignore"):
        ucl_s, ucl_m = sm + t * sse, mm + t * mse
    ok_s = bool(np.all(np.isfinite(ucl_s) & (ucl_s <= sb)))
    ok_m = bool(np.all(np.isfinite(ucl_m) & (ucl_m <= mb)))
    status, failed = holds({"SNGM UCL <= bound (1)": ok_s, "MSGD UCL <= bound (4)": ok_m,
                            "some MSGD η within its cap": bool(in_cap.any())})
    ts, tm = sm / sb, mm / mb
    r_s = float(np.nanmax(np.where(np.isfinite(ucl_s), ucl_s / sb, np.inf)))
    r_m = float(np.nanmax(np.where(np.isfinite(ucl_m), ucl_m / mb, np.inf))) if mm.size else float("nan")
    i, j, e = np.unravel_index(np.nanargmax(ts), ts.shape)
    where = (f"C = {int(sw.budgets[i])}, B = {int(sw.batch_sizes[j])}, η = {sw.etas[0, e]:.3g}")
    cmp = lambda ok: "<=" if ok else ">"
    return Verdict(
        status=status,
        summary=(f"SNGM: max UCL/bound (1) = {r_s:.3f} {cmp(ok_s)} 1 over {sm.size} (C, B, η) points; "
                 f"tightness measured/bound max {np.nanmax(ts):.3f} (at {where}), median "
                 f"{np.nanmedian(ts):.3f}. MSGD (η <= cap {ev.msgd_cap:.3g}, {int(in_cap.sum())} η): "
                 f"max UCL/bound (4) = {r_m:.3f} {cmp(ok_m)} 1 over {mm.size} points; tightness max "
                 f"{np.nanmax(tm):.3f}, median {np.nanmedian(tm):.3f}"
                 + (f"; failed: {', '.join(failed)}" if failed else "")),
        measured=dict(sngm_tightness_max=float(np.nanmax(ts)), sngm_tightness_median=float(np.nanmedian(ts)),
                      msgd_tightness_max=float(np.nanmax(tm)), msgd_tightness_median=float(np.nanmedian(tm)),
                      sngm_tightest_point=where, sngm_max_ucl_over_bound=r_s, msgd_max_ucl_over_bound=r_m),
        predicted=dict(delta=ev.delta, L=ev.L, msgd_eta_cap=ev.msgd_cap),
        rule=(f"mean over {n} seeds + t·SE <= bound at every grid point, t = {t:.2f} (one-sided "
              f"Student-t, {n - 1} dof, Bonferroni over {n_cmp} points, family-wise 1e-4, floor 4); "
              "a trajectory that diverges within T counts as +inf (fails); MSGD only for "
              "η <= (1-β)²/(4L)"),
        sizes=_sizes(cfg))


# ============================================================ sngm.bmax_linear_in_C
def bmax_linear(ev, cfg):
    findings, rows, measured = [], [], {}
    for name in ev.testbed_names:
        t = ev[name]
        cs = t.budgets
        centre = float(np.log2(cs[-1] / cs[0]))
        band = (centre - 1, centre + 1)
        for m, method in enumerate(t.methods):
            st = t.steps[m]
            ok = stats.within(st["low"], st["high"], *band)
            text = f"{int(t.b_max[0, m])} → {int(t.b_max[-1, m])}: {steps_text(st)} steps"
            findings.append(Finding(f"{name}/{method}", ok, f"{text} vs band [{band[0]:g}, {band[1]:g}]"))
            rows.append(f"{name}/{method} {text}")
            measured[f"{name}/{method}"] = dict(b_max=[int(t.b_max[0, m]), int(t.b_max[-1, m])],
                                                steps=st.to_dict(), supported=ok)
    c0 = ev[ev.testbed_names[0]].budgets
    return _verdict(
        findings,
        summary=(f"B_max(ε, C) → B_max(ε, {int(c0[-1] // c0[0])}C), grid steps "
                 f"[{1 - (1 - cfg['confidence']) / int(ev.n_findings):.4g} bootstrap CI]: " + "; ".join(rows)),
        measured=measured,
        predicted=dict(ratio=float(c0[-1] / c0[0]), grid_steps=[float(np.log2(c0[-1] / c0[0])) - 1,
                                                                 float(np.log2(c0[-1] / c0[0])) + 1],
                       eps={n: sub["eps"] for n, sub in cfg["testbeds"].items()}),
        rule=(_boot_rule(cfg, int(ev.n_findings))
              + "For every (testbed, method), the grid steps from B_max at the first budget C to "
              "B_max at the last (4C) should be log₂4 = 2 ± 1 (B_max(4C)/B_max(C) ∈ {2, 4, 8}): "
              "supported iff the interval lies inside [1, 3], contradicted iff it lies outside; "
              "confirmed iff all supported, refuted iff any contradicted, else inconclusive"),
        sizes=_sizes(cfg))


# ============================================================== sngm.lsmooth_parity
def parity(ev, cfg):
    findings, rows = [], []
    cs = ev.sweep.budgets
    for i, st in enumerate(ev.steps):
        ok = stats.within(st["low"], st["high"], -1, 1)
        text = (f"C = {int(cs[i])}: {int(ev.summary.b_max[i, 0])}/{int(ev.summary.b_max[i, 1])}, "
                f"{steps_text(st)} steps")
        findings.append(Finding(f"C = {int(cs[i])}", ok, text + " vs band [−1, +1]"))
        rows.append(text)
    return _verdict(
        findings,
        summary=(f"L-smooth, ε = {cfg['sweep']['eps']}: B_max SNGM/MSGD, log₂ ratio "
                 f"[{1 - (1 - cfg['confidence']) / int(ev.n_findings):.4g} bootstrap CI]: " + "; ".join(rows)),
        measured=dict(b_max=ev.summary.b_max, steps=[st.to_dict() for st in ev.steps]),
        predicted=dict(ratio_range=[0.5, 2], grid_steps=[-1, 1]),
        rule=(_boot_rule(cfg, int(ev.n_findings))
              + "At every budget, log₂(B_max(SNGM)/B_max(MSGD)) ∈ [−1, 1] (ratio ∈ [1/2, 2]): "
              "supported iff the interval lies inside, contradicted iff outside; confirmed iff "
              "supported at every budget, refuted iff contradicted at any, else inconclusive"),
        sizes=_sizes(cfg))


# ============================================================ sngm.relaxed_advantage
def relaxed(ev, cfg):
    x0s, caps = ev.x0s, ev.heavy_ball_cap
    factor = cfg["eta_factor"]
    band = np.log2(factor)
    findings, rows = [], []
    st = ev.ratio_steps[-1]
    findings.append(Finding(f"ratio >= 4 at x0 = {x0s[-1]:g}", stats.exceeds(st["low"], st["high"], 1.5),
                            f"log₂ B_max(SNGM)/B_max(MSGD) = {steps_text(st)} vs >= 2"))
    for (a, b), ch in zip(ev.change_pairs, ev.changes):
        last = (a, b) == (x0s[0], x0s[-1])
        thr, what = (0.5, "grows") if last else (-0.5, "does not shrink")
        findings.append(Finding(f"ratio {what} from x0 = {a:g} to {b:g}",
                                stats.exceeds(ch["low"], ch["high"], thr),
                                f"change {steps_text(ch)} steps vs {'>= 1' if last else '>= 0'}"))
    for k, x0 in enumerate(x0s):
        etas = ev.sweeps[k].etas[1]  # MSGD's η grid
        e, lo, hi = (int(v) for v in ev.msgd_best_eta_index[k])
        ratio = np.log2(etas[[e, lo, hi]] / caps[k])
        low = -np.inf if lo == 0 else ratio[1]
        high = np.inf if hi == len(etas) - 1 else ratio[2]
        findings.append(Finding(f"MSGD best η near the cap at x0 = {x0:g}",
                                stats.within(low, high, -band, band),
                                f"log₂(η_best/cap) = {ratio[0]:+.1f} [{low:+.1f}, {high:+.1f}] vs ±{band:g}"))
        sk = ev.sweeps[k]
        rows.append(f"x0 = {x0:g}: {int(sk.b_max[-1, 0])} vs {int(sk.b_max[-1, 1])} "
                    f"({steps_text(ev.ratio_steps[k])} steps), MSGD best η {etas[e]:.2g} (cap {caps[k]:.2g})")
    # the paper speaks of a budget that lets SNGM reach ε from the farthest start
    idx, lo, hi = (int(v) for v in ev.sngm_b_max_index_far)
    gate = Finding(f"SNGM reaches ε from x0 = {x0s[-1]:g}", stats.exceeds(lo, hi, -0.5),
                   f"SNGM's B_max grid index {idx} [{lo}, {hi}] (−1: no batch size reaches ε)")
    return _verdict(
        findings, gate=gate,
        summary=(f"(L0,L1) testbed, ε = {cfg['sweep']['eps']}, C = {int(ev.sweeps[0].budgets[-1])}: "
                 "B_max SNGM vs MSGD: " + "; ".join(rows)),
        measured=dict(ratio_steps=[s.to_dict() for s in ev.ratio_steps],
                      changes=[c.to_dict() for c in ev.changes],
                      msgd_best_eta=[float(sk.etas[1, int(i[0])]) for sk, i in zip(ev.sweeps, ev.msgd_best_eta_index)],
                      findings={f.name: f.supported for f in findings}),
        predicted=dict(ratio_at_largest_x0=">= 4", grows_with_x0=True, heavy_ball_caps=caps,
                       eta_within_factor=factor),
        rule=(_boot_rule(cfg, int(ev.n_findings))
              + "At the last budget: log₂(B_max(SNGM)/B_max(MSGD)) >= 2 at the largest x0 "
              "(supported iff the interval's low end >= 2, contradicted iff its high end <= 1); its "
              "change between consecutive x0 is >= 0 and from the smallest to the largest x0 is >= 1 "
              "(interval of the change, same reading); MSGD's best η at its B_max (at the smallest "
              f"B if none reaches ε; bootstrap interval of the η index) within a factor {factor:g} of "
              "the heavy-ball cap 2(1+β)/λ_max(w0) at every x0 (a best η at an end of the grid leaves "
              "that end open). Regime gate: SNGM's B_max at the largest x0 is on the grid (interval "
              "of its index >= 0), else inconclusive (the budget is too small for the claim). "
              "Confirmed iff all supported, refuted iff any contradicted, else inconclusive"),
        sizes=_sizes(cfg))


# ============================================================ sngm.no_lower_batch_limit
def no_lower(ev, cfg):
    tail, etas, eps = ev.tail, ev.etas, cfg["eps"]
    n_eta, n = tail.shape
    conf = 1 - (1 - cfg["confidence"]) / n_eta  # Bonferroni over the η grid (best η is selected)
    k = (tail <= eps).sum(axis=-1)
    wil = np.array([stats.wilson_interval(int(ki), n, conf) for ki in k])  # (η, 3)
    parts = [stats.exceeds(lo, hi, 0.5) for _, lo, hi in wil]
    i = int(np.argmax(wil[:, 1]))
    med = np.median(tail, axis=-1)
    finding = Finding("a majority of seeds reach ε at some η", stats.any_of(parts),
                      f"best η = {etas[i]:.2g}: {int(k[i])}/{n} seeds <= ε, Wilson [{wil[i, 1]:.2f}, "
                      f"{wil[i, 2]:.2f}] vs 1/2")
    status, reason = decide([finding])
    return Verdict(
        status=status,
        summary=(f"SNGM at B = 1 (the bound needs B >= 16σ²/ε² = {ev.bound_batch_low:.0f}), C = "
                 f"{int(cfg['budgets'][-1])}: at η = {etas[i]:.2g}, {int(k[i])}/{n} seeds have tail "
                 f"‖∇F‖ <= ε = {eps} ({conf:.4g} Wilson [{wil[i, 1]:.2f}, {wil[i, 2]:.2f}]; median "
                 f"{med[i]:.3f}); median steps to ε {ev.steps_to_eps[i]:g} of {int(cfg['budgets'][-1])} "
                 f"→ {status} ({reason})"),
        measured=dict(best_eta=float(etas[i]), seeds_below_eps=int(k[i]), n_seeds=n,
                      wilson=[float(wil[i, 1]), float(wil[i, 2])], median_tail=float(med[i])),
        predicted=dict(eps=eps, bound_batch_low=ev.bound_batch_low, fraction_below_eps="> 1/2"),
        rule=(f"for each η of the grid, the fraction of seeds with tail metric <= ε at B = 1 and its "
              f"Wilson interval at confidence {conf:.4g} ({cfg['confidence']:g}, Bonferroni over "
              f"{n_eta} η since the best is selected); confirmed iff some η's interval lies above 1/2 "
              "(median tail <= ε), refuted iff every η's interval lies at or below 1/2, else "
              "inconclusive"),
        sizes=_sizes(cfg))
