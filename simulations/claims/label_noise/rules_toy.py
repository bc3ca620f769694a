"""Verdict rules of the three-parameter toy claims (beyond linear scaling, tracks the
regularized flow); the interval conventions are those of
:mod:`simulations.claims.label_noise.rules`."""
from __future__ import annotations

import numpy as np

from simulations import stats
from simulations.claims.label_noise.rules import BOOTSTRAP_ALPHA, FAMILY_ALPHA, N_BOOT, _tri, sizes
from simulations.registry import Finding, Verdict, decide


# ============================================================== beyond linear scaling
def beyond_linear(ev, cfg):
    toy = ev.toy
    big, small = toy.levels
    qs, etas = toy.q_star, toy.etas
    q_big, se_big, q_sm, se_sm = big.q_mean, big.q_se, small.q_mean, small.q_se
    q_ext = (4 * q_sm - q_big) / 3                      # Richardson: removes the O(λ) term
    se_ext = np.sqrt(16 * se_sm ** 2 + se_big ** 2) / 3
    large = etas >= 1.0
    dof = int(min(np.min(big.n_valid), np.min(small.n_valid))) - 1
    n_cmp = len(etas) + int(large.sum())
    t2 = stats.critical_t(FAMILY_ALPHA, n_cmp, dof)
    t1 = stats.critical_t(FAMILY_ALPHA, n_cmp, dof, two_sided=False)
    lo, hi = q_ext - t2 * se_ext, q_ext + t2 * se_ext
    findings = []
    for e, q, a, b in zip(etas, qs, lo, hi):
        # supported if q* is inside and the trace prediction 1 outside; contradicted if q* is
        # outside; an interval holding both cannot tell R_η from the trace regularizer
        ok = False if not a <= q <= b else (None if a <= 1.0 <= b else True)
        findings.append(Finding(f"η = {e:g}: Richardson q = q*", ok, f"[{a:.4f}, {b:.4f}] vs q* = {q:.4f}"))
    for e, q, s in zip(etas[large], q_sm[large], se_sm[large]):
        findings.append(Finding(f"η = {e:g}: q > 1", stats.exceeds(q - t1 * s, q + t1 * s, 1.0),
                                f"q(λ/4) = {q:.4f}, one-sided bounds [{q - t1 * s:.4f}, {q + t1 * s:.4f}]"))
    status, reason = decide(findings)
    z1 = (q_sm - 1.0) / se_sm
    rows = "; ".join(f"η = {e:g}: q = {a:.4f} ± {s:.4f} (ηλ = {small.eta_lambda:g}), extrapolated "
                     f"{x:.4f} [{l:.4f}, {h:.4f}] vs q* = {p:.4f} ({'inside' if l <= p <= h else 'outside'})"
                     for e, a, s, x, l, h, p in zip(etas, q_sm, se_sm, q_ext, lo, hi, qs))
    return Verdict(
        status=status,
        summary=rows + f"; trace regularizer predicts 1 ((q − 1)/SE at η >= 1: {np.round(z1[large], 1).tolist()}, "
                       f"one-sided t = {t1:.2f})" + ("" if status == "confirmed" else f"; {reason}"),
        measured=dict(q_tail=q_sm, q_tail_se=se_sm, q_tail_large_lambda=q_big, q_extrapolated=q_ext,
                      q_extrapolated_se=se_ext, q_extrapolated_ci=np.stack([lo, hi], axis=1),
                      z_vs_one=z1, diverged=[lv.n_diverged.tolist() for lv in toy.levels],
                      findings={f.name: _tri(f.supported) for f in findings}),
        predicted=dict(q_star=qs, q_trace=1.0, q_flow_end_R_eta=small.q_flow_end.R_eta,
                       q_flow_end_trace=small.q_flow_end.trace),
        rule=(f"tail = mean of q = a² over the last {100 * (1 - cfg['toy']['tail_start']):.0f}% of "
              "steps, per seed; q(λ) = q* + cλ + O(λ²), so the Richardson value (4q(λ/4) − q(λ))/3 "
              f"± t·SE (t = {t2:.2f}: Student-t, dof {dof}, Bonferroni over {n_cmp}, family-wise "
              f"{FAMILY_ALPHA:g}) must contain q*(η) (contradicted if it does not; unresolved if it "
              "also contains the trace prediction 1); for η >= 1, q(λ/4) > 1: supported if its "
              f"one-sided lower bound (t = {t1:.2f}) exceeds 1, contradicted if its upper bound is "
              "<= 1. Confirmed if all are supported, refuted if any is contradicted, else inconclusive"),
        sizes=sizes(cfg))


# ============================================================ tracks regularized flow
def flow_statistics(n_seeds, flow):
    """Bootstrap statistic over seeds of the toy's label-noise iterates of one strength.

    ``flow`` kind -> (η, record, 3) reference flows. Returns a function (mean, var) -> (b, m)
    of the seed mean and variance of θ (b, η, record, 3) with, per η: RMS over records of
    the bias to the R_η flow, the end bias to GD on L and to the ¼tr flow, the end distance
    to the ¼tr flow, and then its differences between adjacent η. The squared bias is
    estimated without bias by ‖θ̄ − θ_flow‖² − Σ_k var_k/n (E‖θ̄ − θ_flow‖² = ‖bias‖² +
    Σ_k Var(θ̄_k)), averaged over records before it is floored at 0 (flooring each record
    would bias a noise-dominated RMS upward, and noise would read as evidence of a bias)."""
    def stat(mean, var):
        floor = var.sum(-1) / n_seeds                                  # (b, η, record)

        def bias2(kind, at=slice(None)):
            return ((mean[..., at, :] - flow[kind][:, at]) ** 2).sum(-1) - floor[..., at]

        def root(x):
            return np.sqrt(np.maximum(x, 0.0))
        rms = root(bias2("R_eta").mean(-1))
        end_gd, end_tr = root(bias2("none", -1)), root(bias2("trace", -1))
        d_tr = np.sqrt(((mean[..., -1, :] - flow["trace"][:, -1]) ** 2).sum(-1))
        return np.concatenate([rms, end_gd, end_tr, d_tr, np.diff(d_tr, axis=-1)], axis=-1)
    return stat


def tracks_flow(ev, cfg):
    toy = ev.toy
    etas = toy.etas
    k, c = len(etas), cfg["constant"]
    large = etas >= 1.0
    n_int = 2 * (2 * k + int(large.sum())) + (k - 1)  # intervals the findings read
    conf = 1 - BOOTSTRAP_ALPHA / n_int
    rng = np.random.default_rng(int(toy.bootstrap_seed))
    per_level, rows = [], []
    for lv in toy.levels:
        theta = np.moveaxis(lv.theta, 1, 0)                               # (seed, η, record, 3)
        keep = np.all(np.isfinite(theta), axis=(1, 2, 3))                 # diverged seeds: dropped
        flow = {kind: lv.flows[kind] for kind in ("R_eta", "none", "trace")}
        est, lo, hi = stats.bootstrap_moments_ci(theta[keep], flow_statistics(int(keep.sum()), flow),
                                                 rng=rng, n_boot=N_BOOT, confidence=conf)
        sq = np.sqrt(lv.lam)
        part = {name: (est[i * k:(i + 1) * k], lo[i * k:(i + 1) * k], hi[i * k:(i + 1) * k])
                for i, name in enumerate(("rms", "end_gd", "end_trace", "d_trace", "growth"))}
        per_level.append(dict(part, sqrt_lam=sq, n_seeds=int(keep.sum())))
        rows.append(f"ηλ = {lv.eta_lambda:g}: RMS_t bias/√λ = {np.round(part['rms'][0] / sq, 3).tolist()} "
                    f"(upper {np.round(part['rms'][2] / sq, 3).tolist()}), end bias/√λ to GD on L "
                    f"{np.round(part['end_gd'][0] / sq, 1).tolist()}, to the ¼tr flow "
                    f"{np.round(part['end_trace'][0] / sq, 1).tolist()}")

    def every(pairs):
        return stats.all_of(pairs)
    within = every(True if h <= c * s else (False if l > c * s else None)
                   for p in per_level for l, h, s in zip(p["rms"][1], p["rms"][2], p["sqrt_lam"]))
    from_gd = every(stats.exceeds(l, h, c * s)
                    for p in per_level for l, h, s in zip(p["end_gd"][1], p["end_gd"][2], p["sqrt_lam"]))
    from_tr = every(stats.exceeds(l, h, c * s) for p in per_level
                    for l, h, s in zip(p["end_trace"][1][large], p["end_trace"][2][large], p["sqrt_lam"][large]))
    # growth with η of the end distance to the ¼tr flow (weaker strength): adjacent differences
    d_est, d_lo, d_hi = per_level[1]["d_trace"]
    g_est, g_lo, g_hi = per_level[1]["growth"]
    grows = every(stats.exceeds(l, h, 0.0) for l, h in zip(g_lo, g_hi))
    findings = [
        Finding("tracks L + λR_η within c√λ", within, f"RMS_t bias intervals vs c·√λ, c = {c:g}"),
        Finding("drifts from GD on L", from_gd, "end bias lower bounds vs c·√λ"),
        Finding("drifts from the ¼tr flow (η >= 1)", from_tr, "end bias lower bounds vs c·√λ"),
        Finding("¼tr-flow distance grows with η", grows,
                f"end distances {np.round(d_est, 4).tolist()}, adjacent differences "
                f"{np.round(g_est, 4).tolist()}, lower bounds {np.round(g_lo, 4).tolist()}")]
    status, reason = decide(findings)
    return Verdict(
        status=status,
        summary="; ".join(rows) + f" (η = {etas.tolist()}); ¼tr-flow end distance at ηλ = "
                f"{toy.levels[1].eta_lambda:g}: {np.round(d_est, 4).tolist()}"
                + ("" if status == "confirmed" else f"; {reason}"),
        measured=dict(rms_bias_over_sqrt_lambda=[p["rms"][0] / p["sqrt_lam"] for p in per_level],
                      rms_bias_upper_over_sqrt_lambda=[p["rms"][2] / p["sqrt_lam"] for p in per_level],
                      end_bias_gd_lower_over_sqrt_lambda=[p["end_gd"][1] / p["sqrt_lam"] for p in per_level],
                      end_bias_trace_lower_over_sqrt_lambda=[p["end_trace"][1] / p["sqrt_lam"] for p in per_level],
                      trace_flow_end_distance=d_est, trace_flow_end_distance_ci=np.stack([d_lo, d_hi], 1),
                      trace_flow_growth_ci=np.stack([g_lo, g_hi], 1),
                      findings={f.name: _tri(f.supported) for f in findings}),
        predicted=dict(constant=c, scaling="bias = O(√λ)"),
        rule=(f"θ̄(t) = seed mean of the label-noise iterates; bias(t)² = ‖θ̄ − θ_flow‖² − Σ_k SE_k² "
              "(unbiased; RMS_t bias = √max(mean_t bias², 0), floored after the average over records "
              "where the rule before floored every record); intervals: percentile bootstrap over seeds ({N_BOOT} resamples, "
              f"confidence 1 − {BOOTSTRAP_ALPHA:g}/{n_int} each). Tracks: supported if the upper bound "
              f"of RMS_t bias (to GD on L + λR_η) <= c·√λ (c = {c:g}) at every η and both strengths "
              "(λ and λ/4), contradicted if one lower bound exceeds it; drifts: the end bias to GD on L "
              "(every η) and to GD on L + λ¼tr∇²L (η >= 1) has its lower bound above c·√λ "
              "(contradicted if an upper bound is <= c·√λ); grows: the end distance to the ¼tr flow "
              "(strength λ/4) increases with η: every adjacent difference has its lower bound above 0 "
              "(contradicted if an upper bound is <= 0). Confirmed if all are "
              "supported, refuted if any is contradicted, else inconclusive"),
        sizes=sizes(cfg))
