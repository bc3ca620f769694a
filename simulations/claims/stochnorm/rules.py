"""Verdict rules for the Stochastic Normalization claims: pure functions of (evidence, config).

``stochnorm.layer`` is a theorem: violated only by an identity off beyond float32
round-off, or drawn masks whose moments miss Bernoulli(p) by more than a family-wise
Student-t critical value. ``stochnorm.few_shot`` is a hypothesis, decided from Student-t
intervals of per-seed paired differences (every arm of seed s shares its start network,
training subset, test split, head, minibatches and the uniform numbers of its masks),
behind a transfer gate.
"""
from __future__ import annotations

import numpy as np

from simulations import stats
from simulations.layers import MOMENTUM
from simulations.registry import Finding, Verdict, decide, holds

F32 = float(np.finfo(np.float32).eps)
#: round-off allowance of a float32 layer against float64: 64 units of round-off,
#: relative to max(1, |value|) (a normalization is a few dozen rounded operations)
TOL = 64 * F32


# ============================================================================ layer
def layer(ev, cfg):
    bn = ev.bn_errors
    bn_worst = max(float(bn[k]) for k in bn)
    eval_worst = float(np.max(ev.eval_errors))
    mom = ev.moments
    sy, sz = 1.0 + ev.scale_y, 1.0 + ev.scale_z
    mean_err = max(float(m.mean_err) for m in mom) / sy
    var_err = max(float(m.var_err) for m in mom) / sy ** 2
    readout_err = max(max(float(m.readout_var_err), float(m.readout_cov_err)) for m in mom) / sz ** 2
    cross = min(float(m.cross_example_cov) for m in mom)
    # drawn masks: first and second moments of s against (p, p(1 − p)I)
    p, R, c = ev.draw_p, int(ev.n_draws), int(ev.channels)
    n_cmp = c + c * (c + 1) // 2
    crit = stats.critical_t(n_comparisons=n_cmp, dof=R - 1)
    iu = np.triu_indices(c)
    dev1 = np.abs(ev.first_moment_mean - p) - crit * ev.first_moment_se
    dev2 = (np.abs(ev.second_moment_mean - ev.second_moment_exact) - crit * ev.second_moment_se)[iu]
    draws_ok = bool(np.all(dev1 <= 1e-12) and np.all(dev2 <= 1e-12))
    z1 = np.abs(ev.first_moment_mean - p) / np.maximum(ev.first_moment_se, 1e-300)
    recovered = float(ev.recovery_err) <= 1e-3
    status, failed = holds({
        "p = 1 equals batch normalization (output and running statistics)": bn_worst <= TOL,
        "evaluation equals batch-norm evaluation": eval_worst <= TOL,
        "evaluation leaves the state unchanged": bool(np.all(ev.eval_state_unchanged)),
        "running statistics independent of the mask": float(ev.state_spread_over_masks) == 0.0,
        "E y over masks = closed form": mean_err <= TOL,
        "Var y over masks = p(1 − p)γ²(x̂_batch − x̂_moving)²": var_err <= TOL,
        "linear readout covariance = closed form": readout_err <= TOL,
        "drawn output is one of the two branches": recovered,
        "one draw per channel shared by the batch": bool(ev.shared_by_examples),
        "drawn masks have Bernoulli(p) i.i.d. moments": draws_ok})
    return Verdict(
        status=status,
        summary=(f"p = 1 vs float64 batch norm: max rel. error {bn_worst:.1e} (output, running mean "
                 f"and unbiased variance, padded batch); evaluation {eval_worst:.1e}; over all "
                 f"{int(ev.n_masks)} masks (C = {c}, m = {int(ev.batch)}) E y, Var y and the "
                 f"readout covariance match the closed forms to {max(mean_err, var_err, readout_err):.1e} "
                 f"({'<=' if max(mean_err, var_err, readout_err) <= TOL else '>'} {TOL:.1e}); "
                 f"cross-example readout covariance up to {cross:.2f} (0 if s were drawn per "
                 f"example); {R} keyed passes at p = {p:g}: s {'shared' if ev.shared_by_examples else 'NOT shared'} "
                 f"by the batch, max |z| of the channel frequencies {float(np.max(z1)):.1f} "
                 f"({'<=' if draws_ok else '>'} {crit:.2f})" + (f"; failed: {', '.join(failed)}" if failed else "")),
        measured=dict(bn_max_rel_error=bn_worst, eval_max_rel_error=eval_worst,
                      mask_mean_error=mean_err, mask_var_error=var_err, readout_error=readout_err,
                      frequencies=ev.ones_per_channel / R, recovery_error=float(ev.recovery_err),
                      distinct_masks=int(ev.distinct_masks)),
        predicted=dict(tolerance=TOL, frequency=p, cross_example_covariance_per_example_draws=0.0),
        rule=(f"identities to {TOL:.1e} = 64 float32 round-offs relative to max(1, |value|) "
              "(variances and covariances relative to (1 + max|y|)², (1 + max|z|)²): p = 1 output "
              "and running statistics (momentum 0.1, unbiased variance) vs float64 batch norm, "
              "also with a key and on a padded batch; evaluation vs float64 batch-norm evaluation "
              "for p = 0, 0.5, 1 with the state unchanged bitwise; the state after every mask "
              "bitwise equal to batch norm's; mask-weighted mean, variance and readout "
              "covariance over all 2^C masks vs theory.stochnorm. Keyed draws: the output "
              "decomposes as one branch per (example, channel) to 1e-3, with one s per pass and "
              "channel shared by every example; the means of s_c and of (s_c − p)(s_d − p) within "
              f"t = {crit:.2f} SE of p and p(1 − p)δ_cd (Student-t, {R - 1} dof, Bonferroni over "
              f"{n_cmp}, family-wise 1e-4)"),
        sizes=dict(batch=int(ev.batch), channels=c, masks=int(ev.n_masks), ps=list(ev.ps),
                   readout_width=int(ev.readout_width), keyed_passes=R, dtype="float32 layer, float64 theory"))


# ========================================================================= few shot
def _per_seed(ev, arm_a, arm_b, ns):
    """Per eval seed: mean over the n in ``ns`` of acc(arm_a) − acc(arm_b) at tuned η."""
    names = list(ev.arms)
    shots = list(np.asarray(ev.shots).astype(int))
    idx = [shots.index(n) for n in ns]
    acc = ev.test_at_best  # (arm, n, eval seed)
    return (acc[names.index(arm_a)][idx] - acc[names.index(arm_b)][idx]).mean(axis=0)


def few_shot(ev, cfg):
    shots = [int(n) for n in ev.shots]
    small = [n for n in shots if n <= cfg["small_max"]]
    large = [n for n in shots if n >= cfg["large_min"]]
    main, ctrl = f"StochNorm({cfg['p_main']:g})", f"control StochNorm({cfg['p_main']:g})"
    tau = cfg["threshold"]
    conf = 1 - (1 - cfg["confidence"]) / 4  # Bonferroni over the gate and three findings
    gate_d = _per_seed(ev, "BN", "scratch", small)
    gain_small = _per_seed(ev, main, "BN", small)
    gain_large = _per_seed(ev, main, "BN", large)
    gain_ctrl = _per_seed(ev, ctrl, "control BN", small)
    ci = {name: stats.mean_ci(d, conf) for name, d in
          (("gate", gate_d), ("small", gain_small), ("shrink", gain_small - gain_large),
           ("control", gain_ctrl))}

    def pp(name):
        m, lo, hi = ci[name]
        return f"{100 * m:+.2f} pp [{100 * lo:+.2f}, {100 * hi:+.2f}]"

    vanish = stats.exceeds(*ci["control"][1:], tau)
    gate = Finding("fine-tuning beats training from scratch at small n", stats.exceeds(*ci["gate"][1:], 0.0),
                   f"no transfer: BN fine-tuning − scratch = {pp('gate')}")
    findings = [
        Finding(f"{main} beats BN at small n", stats.exceeds(*ci["small"][1:], tau),
                f"gain {pp('small')} vs {100 * tau:g} pp"),
        Finding("the gain shrinks as n grows", stats.exceeds(*ci["shrink"][1:], 0.0),
                f"gain(small n) − gain(large n) = {pp('shrink')}"),
        Finding("the gain vanishes with uninformative statistics", None if vanish is None else not vanish,
                f"control gain {pp('control')} vs {100 * tau:g} pp")]
    status, reason = decide(findings, gate=gate)
    names = list(ev.arms)
    acc = ev.test_at_best.mean(axis=-1)  # (arm, n)
    edges = int(np.sum((ev.best_index == 0) | (ev.best_index == len(ev.etas) - 1)))
    n_div = int(np.sum(ev.diverged_at_best))
    remain = (1 - MOMENTUM) ** cfg["n_steps"]
    per_arm = "; ".join(f"{a} {100 * acc[i, 0]:.1f}% → {100 * acc[i, -1]:.1f}%" for i, a in enumerate(names))
    return Verdict(
        status=status,
        summary=(f"test accuracy at n = {shots[0]} → {shots[-1]} per class: {per_arm}. Gate (n <= "
                 f"{cfg['small_max']}): BN fine-tuning − scratch {pp('gate')}; {main} − BN {pp('small')} "
                 f"at n <= {cfg['small_max']}, shrink to n >= {cfg['large_min']} {pp('shrink')}, "
                 f"control {pp('control')} (band {100 * tau:g} pp; {conf:.2%} CIs)"
                 + (f"; tuned η at an end of its grid for {edges} of {ev.best_index.size} (arm, n)"
                    if len(ev.etas) > 2 else "")
                 + (f"; {n_div} diverged runs at a tuned η (counted as accuracy 0)" if n_div else "")
                 + f"; after T = {cfg['n_steps']} steps the pretrained statistics weigh (1 − "
                   f"{MOMENTUM:g})^T = {remain:.0e} in the moving average"
                 + ("" if status == "confirmed" else f"; {reason}")),
        measured=dict(gate=list(ci["gate"]), gain_small=list(ci["small"]), shrink=list(ci["shrink"]),
                      gain_control=list(ci["control"]),
                      test_accuracy={a: acc[i] for i, a in enumerate(names)},
                      tuned_eta={a: ev.best_eta[i] for i, a in enumerate(names)},
                      tuned_eta_at_grid_edge=edges, diverged_at_tuned_eta=n_div,
                      source_test_accuracy=float(ev.source_test_accuracy),
                      pretrained_statistics_weight_at_end=remain),
        predicted=dict(gate="> 0", gain_small=f"> {tau:g}", shrink="> 0", gain_control=f"<= {tau:g}"),
        rule=(f"per (arm, n): η = argmax over {len(ev.etas)} values of the mean validation accuracy "
              f"of {cfg['n_tune_seeds']} tuning seeds; test accuracies of {cfg['n_eval_seeds']} other "
              "seeds at that η (a diverged run counts 0). Per eval seed, paired differences averaged "
              f"over n <= {cfg['small_max']} (small) or n >= {cfg['large_min']} (large); Student-t "
              f"intervals at {conf:.4g} ({cfg['confidence']:g} family-wise, Bonferroni over 4). Gate: "
              "BN fine-tuning − scratch (small n) above 0, else inconclusive (no transfer). "
              f"Findings: {main} − BN (small n) above {tau:g}; its excess over the large-n gain "
              f"above 0; with re-initialized moving statistics {ctrl} − control BN (small n) at "
              f"most {tau:g}. Each supported when its interval clears its band, contradicted when it "
              "lies on the other side, unresolved when it straddles; confirmed iff all supported, "
              "refuted iff any contradicted. Bands fixed before any StochNorm result was seen"),
        sizes=dict(shots=shots, etas=list(ev.etas), arms=names, n_steps=cfg["n_steps"],
                   batch_size=cfg["batch_size"], widths=list(cfg["widths"]), gamma=cfg["gamma"],
                   tune_seeds=cfg["n_tune_seeds"], eval_seeds=cfg["n_eval_seeds"],
                   source_images=int(ev.n_source), target_images=int(ev.n_target)))
