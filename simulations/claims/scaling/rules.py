"""Verdict rules of the batch-size frame: pure functions of (evidence, config).

Theorems are violated only by evidence against them: a Monte-Carlo mean outside a
family-wise bound around the exact value. Hypotheses decide through findings from
intervals (:func:`simulations.registry.decide`): closed-form numbers are exact (supported
or contradicted, never unresolved); Monte-Carlo and digits quantities from percentile
bootstraps over seeds or data splits, whose confidence each rule states.
"""
from __future__ import annotations

import numpy as np

from simulations import stats
from simulations.claims.scaling.runs import REG_LABELS
from simulations.claims.scaling.runs_nqm import LABELS
from simulations.registry import Finding, Verdict, decide, holds
from theory import scaling as th

FLOAT64_RTOL = 1e-9   # float64 Monte Carlo (the estimators, the NQM): round-off far below this


def _sizes(cfg, **extra):
    return dict(cfg, dtype="float64 (theory and the NQM/estimator Monte Carlo), float32 (regression, digits)",
                **extra)


def _verdict(findings, gate=None, **fields) -> Verdict:
    status, reason = decide(findings, gate=gate)
    return Verdict(status=status, summary=fields.pop("summary") + f" → {status} ({reason})", **fields)


def _cmp(ok, a="<=", b=">"):
    return a if ok else b


def _iv(x, fmt="{:.2f}"):
    return f"{fmt.format(x[0])} [{fmt.format(x[1])}, {fmt.format(x[2])}]"


def exact_band(value, low, high) -> bool:
    """An exact number against a band [low, high]: True inside, False outside."""
    return bool(low <= value <= high)


# ========================================================== scaling.estimators_unbiased
def estimators(ev, cfg):
    crit = ev.critical
    checks, rows, measured = {}, [], {}
    for name in ev.testbeds:
        t = ev[name]
        dev = np.abs(t.mean - t.exact)
        ok = dev <= crit * t.se + FLOAT64_RTOL * np.abs(t.exact)
        comb = np.abs(t.combination_mean) <= crit * t.combination_se
        zs = dev / t.se
        checks[f"{name}: estimates' means within t·SE of |G|², tr Σ, GᵀHG, tr(HΣ)"] = bool(ok.all())
        checks[f"{name}: B_simple and B_noise of the means equal the exact ones"] = bool(comb.all())
        checks[f"{name}: planned pairs met"] = bool(ev.n_pairs >= t.pairs_needed)
        rows.append(f"{name}: max |z| = {zs.max():.2f} {_cmp(ok.all())} t = {crit:.2f}; B_simple "
                    f"{t.ratio_mean[0]:.3g} (exact {t.ratio_exact[0]:.3g}), B_noise {t.ratio_mean[1]:.3g} (exact "
                    f"{t.ratio_exact[1]:.3g}); the single-batch |g_big|² would be off by "
                    f"{(t.naive_grad_sq_mean - t.exact[0]) / t.se[0]:.1f} SE")
        measured[name] = dict(z=zs, combination_z=np.abs(t.combination_mean) / t.combination_se,
                              b_simple=t.ratio_mean[0], b_noise=t.ratio_mean[1])
    status, failed = holds(checks)
    return Verdict(
        status=status,
        summary=f"{ev.n_pairs} pairs (B = {ev.b_small}, {ev.b_big}) per testbed: " + "; ".join(rows)
        + (f"; failed: {', '.join(failed)}" if failed else ""),
        measured=measured,
        predicted={name: dict(exact=ev[name].exact, b_simple=ev[name].ratio_exact[0], b_noise=ev[name].ratio_exact[1])
                   for name in ev.testbeds},
        rule=(f"|mean of the estimates − exact| <= t·SE + {FLOAT64_RTOL:g}·|exact| for |G|², tr Σ, GᵀHG, tr(HΣ), "
              f"and |mean(tr Σ̂ − B_exact·|Ĝ|²)| <= t·SE for B_simple and B_noise, t = {crit:.2f} (two-sided "
              f"Student-t, {ev.n_pairs - 1} dof, Bonferroni over the {2 * (len(ev.quantities) + 2)} comparisons, "
              "family-wise 1e-4, floor 4); the pairs were sized beforehand (exact per-pair variance of "
              "|g_B|² from the per-example moments) to resolve the single-batch bias tr Σ/B_big with probability "
              ">= 1 − 1e-4"),
        sizes=_sizes(cfg))


# ============================================================= scaling.nqm_closed_form
def nqm_closed_form(ev, cfg):
    n = ev.nqm
    V, NB = n.cf_steps.shape
    ok_curve = n.max_excess <= 1.0 + 1e-9
    finite = np.isfinite(n.exact_steps)
    inside = ~finite | ((n.mc_steps_early <= n.exact_steps) & (n.exact_steps <= n.mc_steps_late))
    same = ~finite | (n.exact_steps == n.cf_steps)
    status, failed = holds({
        "MC mean loss within the family-wise bound of the exact E L at every step": bool(ok_curve.all()),
        "exact steps to target inside the MC interval": bool(inside.all()),
        "recursion's steps on the record grid = the closed-form S": bool(same.all()),
        "long-run recursion = closed-form stationary loss (1e-9)": bool(np.all(np.asarray(n.stationary_rel_err) <= 1e-9)),
        "no diverged trajectory at the closed-form optimum": bool(np.all(n.n_diverged[:V * NB] == 0))})
    bs = n.batch_sizes
    rows = "; ".join(f"{LABELS[v]}: S = " + "/".join(f"{int(s)}" if np.isfinite(s) else "∞" for s in n.cf_steps[i])
                     for i, v in enumerate(n.variants))
    width = np.where(np.isfinite(n.mc_steps_late), n.mc_steps_late - n.mc_steps_early, np.inf)
    return Verdict(
        status=status,
        summary=(f"B = {int(bs[0])}…{int(bs[-1])}, {n.n_seeds} seeds, {int(n.n_compared)} (config, step) "
                 f"comparisons: max |MC − exact|/bound = {n.max_excess.max():.2f} {_cmp(ok_curve.all())} 1 (max |z| "
                 f"with the exact SE {n.max_abs_z.max():.2f}); exact S inside the MC interval for "
                 f"{int(inside.sum())}/{inside.size}; closed-form {rows}"
                 + (f"; failed: {', '.join(failed)}" if failed else "")),
        measured=dict(max_excess=n.max_excess, mc_steps=n.mc_steps, mc_interval=np.stack([n.mc_steps_early,
                      n.mc_steps_late], -1), median_interval_width=float(np.median(width[np.isfinite(width)]))
                      if np.isfinite(width).any() else float("inf")),
        predicted=dict(steps=n.cf_steps, learning_rate=n.cf_lr, momentum=n.cf_momentum, ema=n.cf_ema,
                       planned_interval=n.planned_interval),
        rule=("Every variant at its closed-form optimal hyperparameters for each B (records every step): the "
              "MC mean of the evaluated loss must lie in [E L − √(2τ)·sd/√n, E L + √(2τ)·sd/√n + 2τ·a_max/n] "
              "at every step, τ = log(2m/1e-4) over all m comparisons (E L, the per-seed sd and the largest "
              "weight a_max of the loss as a Gaussian quadratic form are exact: a tail bound valid for the "
              "skewed loss, Birgé 2001); the exact first step with E L <= target must lie between the first "
              "steps at which the lower and upper ends of that band reach it; the recursion's long-run loss "
              "must equal the closed-form stationary loss to 1e-9; no divergence. The interval's expected width "
              "was computed before the runs (planned_interval)"),
        sizes=_sizes(cfg, n_steps=int(n.n_steps)))


# ============================================================== scaling.tradeoff_curve
def tradeoff(ev, cfg):
    n = ev.nqm
    band = np.log(cfg["fit_band"])
    lo_b, hi_b = -np.log2(cfg["noise_band"]), np.log2(cfg["noise_band"])
    bs = n.batch_sizes
    cf_fit = n.cf_fit.sgd
    # premise: the grid spans the critical batch size of the closed form by a factor 4 each side
    gate_ok = bool(bs[0] * 4 <= cf_fit["b_crit"] <= bs[-1] / 4)
    gate = Finding("premise: the B grid spans B_crit (closed form) by 4× on both sides", gate_ok,
                   f"B_crit = {cf_fit['b_crit']:.1f} in [{bs[0]:g}, {bs[-1]:g}]")
    # NQM, Monte Carlo at the closed-form optimum: fit quality and B_crit vs B_noise
    mc = n.mc_steps[0]
    fit = th.fit_tradeoff(bs, mc)
    res = n.max_log_residual[0]                             # max |log(S/S_fit)| (MC) with its interval
    lb = n.b_crit_log2[0]                                   # log2 B_crit (MC) with its interval
    rel = lb - np.log2(n.noise_scale_avg)
    nqm_fit = Finding("NQM: S(B) on the trade-off curve within 25%", stats.exceeds(-res[2], -res[1], -band),
                      f"max |log(S/S_fit)| = {_iv(res, '{:.3f}')} vs log {cfg['fit_band']:g} = {band:.3f} "
                      f"(closed form {np.nanmax(np.abs(th.fit_tradeoff(bs, n.cf_steps[0])['log_residual'])):.3f})")
    nqm_noise = Finding("NQM: B_crit within 3× of the trajectory-averaged B_noise",
                        stats.within(rel[1], rel[2], lo_b, hi_b),
                        f"log₂(B_crit/B_noise) = {_iv(rel)} (B_crit {2 ** lb[0]:.1f}, B_noise {n.noise_scale_avg:.1f} "
                        f"along the run at B = {n.noise_batch:g}; B_simple {n.simple_noise_scale_avg:.1f})")
    # digits: SGD's median-over-splits steps curve
    d = ev.digits_sgd
    if np.isnan(d["estimate"][1]):
        digits_fit = Finding("digits: S(B) on the trade-off curve within 25%", None,
                             "fewer than 3 batch sizes reach the target within the budget")
    else:
        digits_fit = Finding("digits: S(B) on the trade-off curve within 25%",
                             None if np.isnan(d["high"][1]) else stats.exceeds(-d["high"][1], -d["low"][1], -band),
                             f"max |log(S/S_fit)| = {_iv([d['estimate'][1], d['low'][1], d['high'][1]], '{:.3f}')} vs "
                             f"log 1.25 = {band:.3f}; B_crit ≈ {2 ** d['estimate'][0]:.0f}")
    findings = [nqm_fit, nqm_noise, digits_fit]
    digits_bs = ev.digits.batch_sizes
    med = d["median_steps"]
    return _verdict(
        findings, gate,
        summary=(f"NQM SGD (MC at the optimal η): S = {'/'.join(f'{int(s)}' for s in mc)} for B = "
                 f"{int(bs[0])}…{int(bs[-1])}, fit S_min = {fit['s_min']:.1f}, E_min = {fit['e_min']:.0f}, "
                 f"B_crit = {fit['b_crit']:.1f} (closed form {cf_fit['b_crit']:.1f}); trajectory-averaged B_noise "
                 f"{n.noise_scale_avg:.1f}, B_simple {n.simple_noise_scale_avg:.1f} (B_crit/B_simple "
                 f"{2 ** lb[0] / n.simple_noise_scale_avg:.2f}); digits SGD median steps to "
                 f"{100 * cfg['digits']['target_accuracy']:g}% = "
                 + "/".join(f"{int(s)}" if np.isfinite(s) else "∞" for s in med)
                 + f" for B = {'/'.join(str(int(b)) for b in digits_bs)}"),
        measured=dict(nqm_mc_steps=mc, nqm_fit={k: fit[k] for k in ("s_min", "e_min", "b_crit")},
                      nqm_max_log_residual=res, nqm_b_crit_log2=lb, nqm_b_noise=n.noise_scale_avg,
                      nqm_b_simple=n.simple_noise_scale_avg, digits_fit=dict(ev.digits_fit),
                      digits_median_steps=med, digits_intervals=dict(d)),
        predicted=dict(product=1.0, fit_band=cfg["fit_band"], noise_band=cfg["noise_band"],
                       nqm_closed_form_fit=dict(cf_fit)),
        rule=(f"Gate: the NQM grid spans the closed-form B_crit by 4× each side. NQM: the MC steps (first step "
              f"with mean loss <= target, at the closed-form optimal η per B) fitted by S = S_min + E_min/B "
              f"(least squares on relative residuals, NNLS) must have max |log(S/S_fit)| <= log {cfg['fit_band']:g}"
              f"; log₂(B_crit/B_noise) in "
              f"[−log₂ {cfg['noise_band']:g}, log₂ {cfg['noise_band']:g}], B_noise = tr(HΣ)/E[GᵀHG] averaged "
              "over the steps of the SGD run at the grid B nearest the closed-form B_crit (exact expectations); "
              f"intervals: percentile bootstrap over seeds of the whole pipeline (confidence "
              f"{n.bootstrap_confidence:.4g}). "
              "Digits: SGD's steps to the validation target, median over splits per B (censored B's left "
              "out; >= 3 needed), the same fit; bootstrap over splits (confidence "
              f"{ev.digits_interval_confidence:.4g}) of max |log residual| below log {cfg['fit_band']:g}"),
        sizes=_sizes(cfg))


# ============================================================= scaling.nqm_predictions
def predictions(ev, cfg):
    n = ev.nqm
    lo, hi = cfg["no_help_band"]
    below = cfg["helps_below"]
    bs = n.batch_sizes
    cf = n.cf_steps
    cfb = {v: n.cf_fit[v]["b_crit"] for v in n.variants}
    findings = []

    def ratio(v):
        return cf[list(n.variants).index(v), 0] / cf[0, 0]

    for v in ("momentum", "preconditioned"):
        r = ratio(v)
        findings.append(Finding(f"closed form: {v} does not help at B = {bs[0]:g}", exact_band(r, lo, hi),
                                f"S ratio to SGD {r:.2f} vs [{lo:g}, {hi:g}]"))
        findings.append(Finding(f"closed form: {v} raises B_crit", bool(cfb[v] > cfb["sgd"]),
                                f"B_crit {cfb[v]:.1f} vs SGD {cfb['sgd']:.1f}"))
    r = ratio("ema")
    findings.append(Finding(f"closed form: EMA helps at B = {bs[0]:g}", bool(r < below), f"S ratio {r:.2f} vs < {below:g}"))
    # Monte Carlo: bootstrap intervals over seeds
    for v in ("momentum", "preconditioned"):
        i = list(n.variants).index(v)
        rr, lb = n.small_batch_ratio[i], n.b_crit_log2_vs_sgd[i]
        findings.append(Finding(f"MC: {v} does not help at B = {bs[0]:g}", stats.within(rr[1], rr[2], lo, hi),
                                f"ratio {_iv(rr)}"))
        findings.append(Finding(f"MC: {v} raises B_crit", stats.exceeds(lb[1], lb[2], 0.0),
                                f"log₂ B_crit/B_crit(SGD) = {_iv(lb)}"))
    rr = n.small_batch_ratio[list(n.variants).index("ema")]
    findings.append(Finding(f"MC: EMA helps at B = {bs[0]:g}", stats.exceeds(-rr[2], -rr[1], -below),
                            f"ratio {_iv(rr)}"))
    # digits: momentum SGD (and LAMB) vs SGD at the smallest B and their B_crit
    dig = ev.digits_fits
    for m, what in (("msgd", "momentum"), ("lamb", "preconditioning (LAMB)")):
        if m not in ev.digits_methods:
            continue
        e = dig[m]
        rr = [e["estimate"][2], e["low"][2], e["high"][2]]
        lb = [e["estimate"][3], e["low"][3], e["high"][3]]
        findings.append(Finding(f"digits: {what} does not help at B = {int(ev.digits.batch_sizes[0])}",
                                None if np.isnan(rr[1]) else stats.within(rr[1], rr[2], lo, hi),
                                f"steps ratio to SGD {_iv(rr)}"))
        findings.append(Finding(f"digits: {what} raises B_crit", None if np.isnan(lb[1]) else stats.exceeds(lb[1], lb[2], 0.0),
                                f"log₂ B_crit/B_crit(SGD) = {_iv(lb)}"))
    return _verdict(
        findings,
        summary=(f"NQM closed form, steps to target at B = {int(bs[0])}…{int(bs[-1])}: "
                 + "; ".join(f"{LABELS[v]} " + "/".join(f"{int(s)}" for s in cf[i]) + f" (B_crit {cfb[v]:.0f})"
                             for i, v in enumerate(n.variants))
                 + "; digits median steps: " + "; ".join(
                     f"{m.upper()} " + "/".join(f"{int(s)}" if np.isfinite(s) else "∞" for s in dig[m]["median_steps"])
                     for m in ev.digits_methods)),
        measured=dict(closed_form_steps=cf, closed_form_b_crit=cfb, mc_small_batch_ratio=n.small_batch_ratio,
                      mc_b_crit_log2_vs_sgd=n.b_crit_log2_vs_sgd,
                      digits={m: dict(dig[m]) for m in ev.digits_methods}),
        predicted=dict(no_help_band=[lo, hi], helps_below=below, b_crit="variant > SGD"),
        rule=(f"'Does not help at small B': steps ratio to SGD at the smallest B within [{lo:g}, {hi:g}]; 'helps': "
              f"below {below:g}; 'raises B_crit': B_crit (fit S = S_min + E_min/B) above SGD's. Closed form: exact "
              "numbers (the hyperparameters — η, β in {0.5, 0.8, 0.9, 0.95, 0.98}, γ likewise, p = 0.5 — "
              "optimized per B). MC: the same at the closed-form optima, percentile bootstrap over seeds "
              f"(confidence {n.bootstrap_confidence:.4g} each). Digits: steps to the validation target, median "
              "over splits, η tuned per (method, B); bootstrap over splits (confidence "
              f"{ev.digits_interval_confidence:.4g}); a failed fit leaves the finding unresolved. Confirmed iff "
              "every finding is supported; refuted iff any is contradicted"),
        sizes=_sizes(cfg))


# ======================================================= scaling.optimizers_on_one_plot
def one_plot(ev, cfg):
    n, r = ev.nqm, ev.regression
    lo, hi = cfg["no_gain_band"]
    findings = []
    grid = lambda bs: (np.log2(bs[0]), np.log2(bs[-1]))
    g_n, g_r = grid(n.batch_sizes), grid(r.batch_sizes)
    names = list(n.variants) + ["sngm"]
    for i, v in enumerate(names):
        x = n.b_crit_log2[i]
        findings.append(Finding(f"NQM {LABELS[v]}: B_crit inside the grid", stats.within(x[1], x[2], *g_n),
                                f"log₂ B_crit = {_iv(x)} vs [{g_n[0]:g}, {g_n[1]:g}]"))
    for i, m in enumerate(r.methods):
        if m == "covnoise":
            continue
        x = r.b_crit_log2[i]
        findings.append(Finding(f"regression {REG_LABELS[m]}: B_crit inside the grid", stats.within(x[1], x[2], *g_r),
                                f"log₂ B_crit = {_iv(x)} vs [{g_r[0]:g}, {g_r[1]:g}]"))
    x = r.label_noise_vs_sgd_log2
    findings.append(Finding("label noise raises B_crit", stats.exceeds(x[1], x[2], 0.0),
                            f"log₂ B_crit(label noise)/B_crit(SGD) = {_iv(x)}"))
    for b, x in zip(r.covnoise_batches[1:], r.covnoise_ratio[1:]):
        findings.append(Finding(f"Σ(w)-noise SGD gains nothing at B = {int(b)} over B_s = {int(r.emulated_batch)}",
                                stats.within(x[1], x[2], lo, hi), f"S(B)/S_SGD(B_s) = {_iv(x)}"))
    b_n = {v: 2 ** n.b_crit_log2[i][0] for i, v in enumerate(names)}
    b_r = {m: 2 ** r.b_crit_log2[i][0] for i, m in enumerate(r.methods)}
    return _verdict(
        findings,
        summary=("critical batch sizes (fit S = S_min + E_min/B to the per-B tuned steps): NQM "
                 + ", ".join(f"{LABELS[v]} {b:.0f}" for v, b in b_n.items()) + "; regression "
                 + ", ".join(f"{REG_LABELS[m]} {b:.1f}" for m, b in b_r.items())),
        measured=dict(nqm_b_crit_log2={v: n.b_crit_log2[i] for i, v in enumerate(names)},
                      regression_b_crit_log2={m: r.b_crit_log2[i] for i, m in enumerate(r.methods)},
                      regression_steps=r.steps_tuned, label_noise_vs_sgd_log2=x, covnoise_ratio=r.covnoise_ratio,
                      regression_tuned_at_edge=r.tuned_at_edge),
        predicted=dict(b_crit="inside the grid", label_noise="B_crit above SGD's", covnoise_band=[lo, hi]),
        rule=("Steps to target per (optimizer, B): the first step at which the mean loss over seeds reaches the "
              "target (records every step), at the closed-form optimal hyperparameters (NQM variants) or the "
              "best η of the grid (SNGM; every regression optimizer, η grid centre·B^κ·2^j per method, the "
              "same number of points and ratio for all). B_crit = E_min/S_min of the fit S = S_min + E_min/B; "
              "intervals: percentile bootstrap over seeds (confidence "
              f"{n.bootstrap_confidence:.4g} NQM, {r.interval_confidence:.4g} regression), the whole pipeline "
              "(crossings, per-B tuning, fit) recomputed on each resample. A B_crit is supported inside the grid "
              "if its interval lies within [B_min, B_max], contradicted if entirely outside; label noise: the "
              "log-ratio interval above 0; covariance noise emulating B_s: S(B)/S_SGD(B_s) for every B > B_s "
              f"within [{lo:g}, {hi:g}]"),
        sizes=_sizes(cfg))
