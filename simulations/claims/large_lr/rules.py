"""Verdict rules of Li, Wei & Ma's P/Q claims: the regime gate and the claims it guards,
pure functions of (evidence, config), deciding through :func:`simulations.registry.decide`.

The paper's premise (its Figure 1 and its setting) is a regime: before annealing the
small learning rate trains faster, the large one plateaus, and it jumps after annealing.
:func:`regime_gate` checks it for a pair of arms; every order or generalization claim is
judged only where it passes and is ``inconclusive`` (premise not met) elsewhere, never
refuted in a regime the paper does not describe. Each verdict states its regime
(optimizer, model, constants) and the gate's outcome.

Units of replication are data draws (each with its own geometry, training and test
sets); a per-draw value is the mean over that draw's valid seeds. Intervals: 95%
Student-t over draws for means and paired differences, Wilson for the Q-first proportion
(one unit per draw: a conservative design effect for the seeds that share a draw). The
thresholds were fixed before any run; they are the claims' operational meaning of
"learned", "near chance", "κ ≈ 0", "plateau" and "jump", and every verdict states them.
"""
from __future__ import annotations

import numpy as np

from simulations import stats
from simulations.claims.large_lr.runs import REGIME_WORDS, REGIMES, THRESHOLD
from simulations.registry import Finding, Verdict, decide

CHANCE_CAP = 0.6       # "near chance" for the two-class Q-only examples
KAPPA_FRACTION = 0.1   # "κ ≈ 0": below 10% of the arm's final κ
PLATEAU_CAP = 0.95     # the large arm's training accuracy at the anneal step stays below this
JUMP_MIN = 0.03        # ... rises by more than this after annealing, to >= THRESHOLD
OUTCOME = {"confirmed": "yes", "refuted": "no", "inconclusive": "unknown"}  # of a decision
YES_NO = {True: "yes", False: "no", None: "unknown"}                          # of a finding


# ------------------------------------------------------------------------ intervals
def interval(x):
    """(mean, low, high): 95% Student-t interval over the finite draws of ``x``; with
    fewer than 2 finite draws nothing is resolved: (mean, −inf, inf)."""
    x = np.ravel(x)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return (float(x.mean()) if x.size else np.nan), -np.inf, np.inf
    return tuple(float(v) for v in stats.mean_ci(x))


def paired(a, b):
    """95% Student-t interval of mean(a − b) over the draws where both are finite."""
    return interval(np.subtract(a, b))


def below(low, high, threshold):
    """Is the true value at or below ``threshold``? (the mirror of stats.exceeds)"""
    return {True: False, False: True, None: None}[stats.exceeds(low, high, threshold)]


def relation(supported, yes: str, no: str) -> str:
    """The comparison symbol a finding earned: ``yes`` / ``no`` / "straddles"."""
    return yes if supported else no if supported is False else "straddles"


def fmt_ci(c, f=".2f"):
    return f"{c[0]:{f}} [{c[1]:{f}}, {c[2]:{f}}]"


def at_least(low, high, threshold):
    """Is the true value >= threshold? True if low >= it, False if high < it, else None."""
    return True if low >= threshold else False if high < threshold else None


# ----------------------------------------------------------------------- regime gate
def gate_findings(loss_window, fit_at_anneal, fit_final, large: int, small: int):
    """The premise for the arm pair (large, small) from per-draw (arm, draw) values:

    * small ahead before annealing: the paired per-draw difference of the mean training
      loss over the records anneal/2 <= step <= anneal, small − large, lies below 0;
    * the large arm plateaus: its training accuracy at the anneal step lies at or below
      PLATEAU_CAP;
    * it jumps after annealing: final − anneal-step training accuracy (paired) above
      JUMP_MIN and the final training accuracy at or above THRESHOLD.

    Returns (findings, numbers): three :class:`Finding`s and their intervals."""
    ahead = paired(loss_window[small], loss_window[large])
    plateau = interval(fit_at_anneal[large])
    jump = paired(fit_final[large], fit_at_anneal[large])
    final = interval(fit_final[large])
    jumped = stats.all_of([stats.exceeds(jump[1], jump[2], JUMP_MIN), at_least(final[1], final[2], THRESHOLD)])
    findings = [
        Finding("small LR ahead before annealing", below(ahead[1], ahead[2], 0.0),
                f"pre-anneal training loss small − large {fmt_ci(ahead, '+.3f')} vs 0"),
        Finding("large LR plateaus", below(plateau[1], plateau[2], PLATEAU_CAP),
                f"its training accuracy at the anneal step {fmt_ci(plateau)} vs {PLATEAU_CAP}"),
        Finding("large LR jumps after annealing", jumped,
                f"rise {fmt_ci(jump, '+.2f')} vs {JUMP_MIN}, final {fmt_ci(final)} vs {THRESHOLD}")]
    return findings, dict(loss_small_minus_large=list(ahead), fit_at_anneal=list(plateau),
                          jump=list(jump), fit_final=list(final))


GATE_RULE = (f"premise gate (pre-registered): per data draw, mean training loss over the records "
             f"with anneal/2 <= step <= anneal, small − large, 95% t-interval below 0 (small LR "
             f"ahead); the large arm's training accuracy at the anneal step, interval at or below "
             f"{PLATEAU_CAP} (plateau); its final − anneal-step training accuracy (paired) above "
             f"{JUMP_MIN} and final accuracy at or above {THRESHOLD} (jump). Passed iff all three "
             f"are supported; not met iff any is contradicted; else not established")


def regime_gate(pq, regime: str):
    """(gate Finding, findings, numbers) of a regime of :data:`REGIMES` in P/Q evidence."""
    arms = list(pq.arms)
    large, small = (arms.index(a) for a in REGIMES[regime])
    findings, numbers = gate_findings(pq.loss_window, pq.fit_at_anneal, pq.fit_final, large, small)
    ok = stats.all_of([f.supported for f in findings])
    detail = "; ".join(f"{f.name}: {f.detail} ({YES_NO[f.supported]})" for f in findings)
    return Finding(f"premise of the regime ({regime})", ok, detail), findings, dict(
        numbers, passed=YES_NO[ok])


GATE_WORDS = {True: "passed", False: "not met", None: "not established"}
GATED = (GATE_RULE + ", for the pair of arms the claim compares; the claim is judged only where "
         "the gate passes (else inconclusive: premise not met or not established)")


def _reason(status, reason):
    return "" if status == "confirmed" else f". {reason}"


def regime_text(c, regime: str) -> str:
    """The regime a verdict was measured in: optimizer, model, constants."""
    noise = {"mitigation": f", annealed noise std {c.get('noise_std')}",
             "noise_eta": f", noise_scale {c.get('noise_scale')}",
             "noise_eta2": f", noise_scale {c.get('noise_scale')}"}.get(regime, "")
    r = c.get("r")
    return (f"regime: {REGIME_WORDS[regime]}{noise}; two-layer ReLU width {c['width']}, B = "
            f"{c['batch_size']}, λ = {c['l2']:g}, η₁ = {c['eta1']:g} → η₂ = {c['eta2']:g} at step "
            f"{c['anneal_step']} of {c['n_steps']}; d = {c['d']}, n = {c['n']}, p₀ = {c['p0']:g}, "
            f"q₀ = {c['q0']:g}, σ_P = {c['p_noise']:g}, ‖z‖ = {c.get('z_norm', 1.0):g}, r = "
            f"{'d^-1/4' if r is None else format(r, 'g')}")


def gated(pq, cfg_pq, regime, findings):
    """decide(findings) behind the regime's gate: (status, reason, gate text)."""
    gate, _, _ = regime_gate(pq, regime)
    status, reason = decide(findings, gate=gate)
    return status, reason, (f"[{regime_text(cfg_pq, regime)}; premise gate "
                            f"{GATE_WORDS[gate.supported]}] ")


# ------------------------------------------------------------------- Q learned first
def q_first_count(pq, arm: int):
    """Trajectories whose Q-only examples cross 0.9 training accuracy before the P-only
    ones (ties: not Q first), with the Wilson interval over data draws."""
    t = pq.t_first[arm].reshape(-1, 3)
    valid = pq.valid[arm].ravel()
    tp, tq = t[valid, 0], t[valid, 1]
    q_first = np.isfinite(tq) & (~np.isfinite(tp) | (tq < tp))
    p_first = np.isfinite(tp) & (~np.isfinite(tq) | (tp < tq))
    n, k = int(valid.sum()), int(q_first.sum())
    n_eff = int(pq.n_draws)  # conservative: one independent unit per data draw
    _, lo, hi = stats.wilson_interval(round(k * n_eff / max(n, 1)), n_eff)
    return dict(fraction=k / max(n, 1), lo=float(lo), hi=float(hi), q_first=k,
                p_first=int(p_first.sum()),
                ties=int((np.isfinite(tp) & np.isfinite(tq) & (tp == tq)).sum()),
                neither=int((~np.isfinite(tp) & ~np.isfinite(tq)).sum()), n=n,
                median_t_p=float(np.median(tp[np.isfinite(tp)])) if np.isfinite(tp).any() else None,
                median_t_q=float(np.median(tq[np.isfinite(tq)])) if np.isfinite(tq).any() else None)


def shown_arms(pq):
    """The arms a summary lists: the SGD pair and the annealed-noise arm, when present."""
    return [a for a in ("large_anneal", "small", "small_noise") if a in list(pq.arms)]


def small_lr_learns_q_first(ev, cfg):
    pq, arms = ev.pq, list(ev.pq.arms)
    res = {a: q_first_count(pq, i) for i, a in enumerate(arms)}
    s = res["small"]
    ok = stats.exceeds(s["lo"], s["hi"], 0.5)
    status, reason, where = gated(pq, cfg["pq"], "sgd", [Finding(
        "small LR: Q first in most trajectories", ok, f"Wilson [{s['lo']:.2f}, {s['hi']:.2f}] vs 0.5")])

    def row(a):
        r = res[a]
        return (f"{a}: Q first in {r['q_first']}/{r['n']} (P first {r['p_first']}, ties "
                f"{r['ties']}, neither {r['neither']}; median step P {r['median_t_p']}, Q {r['median_t_q']})")
    return Verdict(
        status=status,
        summary=(where + f"small LR (η = {cfg['pq']['eta2']}): P(Q-only crosses {THRESHOLD} first) = "
                 f"{s['fraction']:.2f}, 95% Wilson [{s['lo']:.2f}, {s['hi']:.2f}] "
                 f"{relation(ok, '> 0.5', '<= 0.5')}; " + "; ".join(row(a) for a in shown_arms(pq))
                 + _reason(status, reason)),
        measured=dict({a: res[a] for a in arms}, gate=regime_gate(pq, "sgd")[2]),
        predicted=dict(q_first_fraction="> 0.5"),
        rule=GATED + "; " + (f"per trajectory, t_type = first recorded step (every {cfg['pq']['record_every']}) "
              f"with training accuracy >= {THRESHOLD}; Q first iff t_Q < t_P or only Q crosses (ties "
              "count as not Q first). Wilson 95% interval of the Q-first fraction with n = the "
              "number of data draws (design effect of the paired seeds within a draw); confirmed "
              f"iff its lower end > 0.5, refuted iff its upper end <= 0.5, else inconclusive"),
        sizes=sizes(ev, cfg))


# ------------------------------------------------------------ Q delayed until annealing
def delay_findings(q_acc_window, kappa_window, kappa_final, q_acc_final):
    """Findings of "Q delayed until annealing" for one arm from per-draw values, and the
    intervals behind them."""
    qa = interval(q_acc_window)
    kf = interval(kappa_final)
    gap = paired(kappa_window, np.multiply(KAPPA_FRACTION, kappa_final))
    qf = interval(q_acc_final)
    kf_pos = stats.exceeds(kf[1], kf[2], 0.0)
    kappa_ok = below(gap[1], gap[2], 0.0) if kf_pos else None
    learned = True if qf[1] >= THRESHOLD else None  # not learning Q is not evidence against
    findings = [
        Finding("Q-only train acc near chance before annealing", below(qa[1], qa[2], CHANCE_CAP),
                f"{fmt_ci(qa)} vs {CHANCE_CAP}"),
        Finding("κ ≈ 0 before annealing", kappa_ok,
                (f"κ − {KAPPA_FRACTION}·final κ: {fmt_ci(gap, '.3g')} vs 0" if kf_pos else
                 f"final κ {fmt_ci(kf, '.3g')} not resolved above 0")),
        Finding("Q learned after annealing", learned, f"final Q-only train acc {fmt_ci(qf)} vs {THRESHOLD}")]
    return findings, dict(q_acc=list(qa), kappa=list(interval(kappa_window)), kappa_final=list(kf),
                          kappa_gap=list(gap), q_acc_final=list(qf))


def delay(pq, arm: int):
    findings, numbers = delay_findings(pq.q_acc_window[arm], pq.kappa_window[arm],
                                       pq.kappa_final[arm], pq.q_acc_final[arm])
    status, reason = decide(findings)
    return dict(numbers, outcome=OUTCOME[status], reason=reason), findings


def _delay_text(a, r):
    return (f"{a}: pre-anneal Q-only train acc {fmt_ci(r['q_acc'])}, κ {fmt_ci(r['kappa'], '.3g')} "
            f"vs final κ {r['kappa_final'][0]:.3g}, final Q acc {r['q_acc_final'][0]:.2f} -> {r['outcome']}")


DELAY_RULE = (f"Q delayed (yes) iff, over the records with anneal/2 <= step <= anneal, the 95% "
              f"t-interval (over data draws) of the mean Q-only training accuracy lies at or below "
              f"{CHANCE_CAP}, the final κ interval lies above 0 and the interval of the paired "
              f"per-draw κ − {KAPPA_FRACTION}·(final κ) at or below 0, and the final Q-only training "
              f"accuracy interval at or above {THRESHOLD}; not delayed (no) iff the accuracy interval "
              f"lies above {CHANCE_CAP} or (final κ above 0 and) the κ difference interval above 0 "
              "(Q learned before annealing); otherwise unknown")


def large_lr_delays_q(ev, cfg):
    pq, arms = ev.pq, list(ev.pq.arms)
    res = {a: delay(pq, i)[0] for i, a in enumerate(arms)}
    c = cfg["pq"]
    status, reason, where = gated(pq, c, "sgd", delay(pq, arms.index("large_anneal"))[1])
    return Verdict(
        status=status,
        summary=(where + f"η₁ = {c['eta1']} → η₂ = {c['eta2']} at step {c['anneal_step']}. " + "; ".join(
            _delay_text(a, res[a]) for a in shown_arms(pq)) + _reason(status, reason)),
        measured=dict(res, gate=regime_gate(pq, "sgd")[2]),
        predicted=dict(q_acc_before_anneal=f"<= {CHANCE_CAP}",
                       kappa_before_anneal=f"<= {KAPPA_FRACTION} x final κ"),
        rule=(GATED + f"; large → anneal arm: {DELAY_RULE}; confirmed/refuted/inconclusive for "
              "yes/no/unknown"),
        sizes=sizes(ev, cfg))


# ------------------------------------------------------------------- generalization
def p_gain(pq, arm: int, ref: int, kind: int = 0):
    """Paired per-draw final test accuracy gain of ``arm`` over ``ref`` on one type."""
    return paired(pq.test_final[arm, :, kind], pq.test_final[ref, :, kind])


def generalization(ev, cfg):
    pq, arms = ev.pq, list(ev.pq.arms)
    i, j = arms.index("large_anneal"), arms.index("small")
    g = p_gain(pq, i, j)
    others = {t: list(p_gain(pq, i, j, k)) for k, t in enumerate(("P", "Q", "PQ"))}
    ok = stats.exceeds(g[1], g[2], 0.0)
    status, reason, where = gated(pq, cfg["pq"], "sgd",
                                  [Finding("P-only test gain > 0", ok, f"{fmt_ci(g, '+.4f')} vs 0")])
    tf = pq.test_final
    return Verdict(
        status=status,
        summary=(where + f"final P-only test accuracy large→anneal {np.nanmean(tf[i, :, 0]):.3f} vs small "
                 f"{np.nanmean(tf[j, :, 0]):.3f}: gain {g[0]:+.4f}, 95% CI [{g[1]:+.4f}, {g[2]:+.4f}] "
                 f"{relation(ok, '> 0', '<= 0')} over {tf.shape[1]} data draws (Q-only gain "
                 f"{others['Q'][0]:+.3f}, both {others['PQ'][0]:+.3f})" + _reason(status, reason)),
        measured=dict(gain=g[0], gain_ci=[g[1], g[2]], gain_by_type=others,
                      test_final_mean={a: np.nanmean(tf[k], axis=0).tolist() for k, a in enumerate(arms)},
                      gate=regime_gate(pq, "sgd")[2]),
        predicted=dict(gain="> 0"),
        rule=GATED + "; " + ("gain = per-draw mean (over seeds) final P-only test accuracy, large → anneal minus "
              "small, paired by data draw; 95% Student-t interval over draws; confirmed iff its "
              "lower end > 0, refuted iff its upper end <= 0, else inconclusive"),
        sizes=sizes(ev, cfg))


def activation_noise(ev, cfg):
    pq, arms = ev.pq, list(ev.pq.arms)
    k, j = arms.index("small_noise"), arms.index("small")
    d, findings = delay(pq, k)
    g = p_gain(pq, k, j)
    ok = stats.exceeds(g[1], g[2], 0.0)
    c = cfg["pq"]
    status, reason, where = gated(
        pq, c, "mitigation", [Finding(f"delay: {f.name}", f.supported, f.detail) for f in findings]
        + [Finding("P-only test gain > 0", ok, f"{fmt_ci(g, '+.4f')} vs 0")])
    return Verdict(
        status=status,
        summary=(where + f"noise std {c['noise_std']} annealed at step {c['anneal_step']}: pre-anneal "
                 f"Q-only train acc {fmt_ci(d['q_acc'])}, κ {d['kappa'][0]:.3g} vs final "
                 f"{d['kappa_final'][0]:.3g}, final Q acc {d['q_acc_final'][0]:.2f} (delay: "
                 f"{d['outcome']}); P-only test gain vs small {fmt_ci(g, '+.4f')} ({YES_NO[ok]})"
                 + _reason(status, reason)),
        measured=dict(delay=d, gain=g[0], gain_ci=[g[1], g[2]], gate=regime_gate(pq, "mitigation")[2]),
        predicted=dict(delay="yes", gain="> 0"),
        rule=(GATED.replace("the pair", "the pair (small + noise as the large arm, small)")
              + "; small + noise arm: " + DELAY_RULE + "; gain as in largelr.generalization (noise "
              "arm minus small). Confirmed iff delay yes and gain CI > 0; refuted iff delay no or "
              "gain CI <= 0; else inconclusive"),
        sizes=sizes(ev, cfg))


def sizes(ev, cfg):
    c = cfg["pq"]
    return dict(c, gamma0=ev.pq.gamma0, r_value=ev.pq.r_value,
                trajectories_per_arm=c["n_draws"] * c["seeds_per_draw"],
                dtype="float32 (simulation), float64 (data)")


# ------------------------------------------------------------------------- the premise
def regime(ev, cfg):
    pq, c = ev.pq, cfg["pq"]
    arms = list(pq.arms)
    present = [r for r, pair in REGIMES.items() if all(a in arms for a in pair)]
    out = {r: regime_gate(pq, r) for r in present}
    status, _ = decide(out["sgd"][1])
    text = "; ".join(f"{r}: {GATE_WORDS[out[r][0].supported]} ({out[r][0].detail})" for r in present)
    return Verdict(
        status=status,
        summary=f"[{regime_text(c, 'sgd')}] " + text,
        measured={r: out[r][2] for r in present},
        predicted=dict(loss_small_minus_large="< 0", fit_at_anneal=f"<= {PLATEAU_CAP}",
                       jump=f"> {JUMP_MIN}, final >= {THRESHOLD}"),
        rule=(GATE_RULE + ". The claim's status is the SGD pair's (large → anneal vs small): "
              "confirmed iff all three parts are supported, refuted iff any is contradicted, else "
              "inconclusive; the other pairs present are reported"),
        sizes=sizes(ev, cfg))
