"""Measurements and decision rules shared by the claims of Li, Wei & Ma (NeurIPS 2019,
arXiv 1907.04595), CLAIMS.md §4: the arms' traced hyperparameters, schedule validation,
95% Student-t intervals over data draws, per-type first crossings, the evidence of the
P/Q runs, and the "Q learned first" and "Q delayed until annealing" tests.

The thresholds below were fixed before any run (they are the claims' operational
meaning of "learned", "near chance" and "κ ≈ 0"); every verdict states them in its rule.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import stats as sps

from simulations import stats
from theory import validation as check

ARMS = ("large_anneal", "small", "small_noise")

THRESHOLD = 0.9        # "learned": training accuracy of a type >= 0.9
CHANCE_CAP = 0.6       # "near chance" for the two-class Q-only examples
KAPPA_FRACTION = 0.1   # "κ ≈ 0": below 10% of the arm's final κ


def check_schedule(cfg, n_steps_key="n_steps", anneal_key="anneal_step", every_key="record_every"):
    """η₁, η₂ > 0, noise ≥ 0, and an anneal step inside the run on the recording grid."""
    check.positive("eta1", cfg["eta1"])
    check.positive("eta2", cfg["eta2"])
    check.nonnegative("noise_std", cfg.get("noise_std", 0.0))
    n_steps = check.integer_at_least(n_steps_key, cfg[n_steps_key], 2)
    every = check.integer_at_least(every_key, cfg[every_key], 1)
    a = cfg[anneal_key]
    if isinstance(a, bool) or int(a) != a or not 1 <= int(a) <= n_steps - 1:
        check.fail(anneal_key, a, f"an integer step inside the run, 1 <= {anneal_key} <= "
                                  f"{n_steps - 1} (n_steps = {n_steps})")
    if n_steps % every or int(a) % every:
        check.fail(every_key, every, f"a divisor of {n_steps_key} = {n_steps} and of "
                                     f"{anneal_key} = {int(a)} (the anneal step is recorded)")
    check.integer_at_least("n_draws", cfg["n_draws"], 2)
    check.integer_at_least("seeds_per_draw", cfg["seeds_per_draw"], 1)


def arm_hparams(cfg, arms=ARMS):
    """The traced hyperparameters of the arms (one config per arm)."""
    e1, e2, s = cfg["eta1"], cfg["eta2"], cfg["noise_std"]
    table = {"large_anneal": (e1, e2, 0.0), "small": (e2, e2, 0.0), "small_noise": (e2, e2, s)}
    rows = np.array([table[a] for a in arms], dtype=np.float64)
    return dict(eta1=rows[:, 0], eta2=rows[:, 1], noise_std=rows[:, 2],
                anneal_step=np.full(len(arms), float(cfg["anneal_step"])))


# ----------------------------------------------------------------- measurements
def first_crossing(acc, steps, threshold=THRESHOLD):
    """First recorded step with acc >= threshold along the last axis (NaN: never)."""
    hit = np.asarray(acc) >= threshold
    return np.where(hit.any(axis=-1), np.asarray(steps)[np.argmax(hit, axis=-1)], np.nan)


def _draw_means(x, valid):
    """(arm, draw, seed, ...) -> (arm, draw, ...) mean over the finite (valid) seeds."""
    v = np.asarray(valid).reshape(np.shape(valid) + (1,) * (np.ndim(x) - 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all seeds of a draw diverged: NaN
        return np.nanmean(np.where(v, x, np.nan), axis=2)


def ci(x, axis):
    """(mean, low, high, se): 95% Student-t interval over ``axis`` (NaN draws dropped)."""
    x = np.asarray(x, dtype=np.float64)
    m, se, n = stats.mean_stderr(x, axis=axis, valid=np.isfinite(x))
    half = sps.t.ppf(0.975, np.maximum(n - 1, 1)) * se
    return m, m - half, m + half, se


def pre_anneal_window(steps, anneal):
    """Records in the second half of the pre-anneal phase: anneal/2 <= step <= anneal."""
    steps = np.asarray(steps)
    return (steps >= anneal / 2) & (steps <= anneal)


def pq_evidence(runs, anneal):
    """Flat evidence of the P/Q runs: curves with CIs, per-draw summaries, crossings."""
    steps, valid = runs["record_steps"], runs["valid"]
    tr = _draw_means(runs["train_acc"], valid)          # (arm, draw, record, type)
    te = _draw_means(runs["test_acc"], valid)
    ka = _draw_means(runs["kappa"], valid)               # (arm, draw, record)
    win = pre_anneal_window(steps, anneal)
    out = dict(record_steps=steps, anneal_step=anneal, arms=runs["arms"],
               n_diverged=(~valid).sum(axis=(1, 2)), compilations=runs["compilations"])
    for name, x in (("train_acc", tr), ("test_acc", te), ("kappa", ka)):
        m, lo, hi, _ = ci(x, axis=1)
        out.update({f"{name}_mean": m, f"{name}_lo": lo, f"{name}_hi": hi})
    t = first_crossing(np.moveaxis(runs["train_acc"], -1, -2), steps)  # (arm, draw, seed, type)
    t = np.where(valid[..., None], t, np.nan)
    out.update(t_first=t.reshape(t.shape[0], -1, 3), valid=valid.reshape(len(valid), -1),
               q_acc_window=tr[:, :, win, 1].mean(-1), kappa_window=ka[:, :, win].mean(-1),
               q_acc_final=tr[:, :, -1, 1], kappa_final=ka[:, :, -1], test_final=te[:, :, -1],
               n_draws=tr.shape[1])
    return out


def map_cell(runs, anneal):
    """One cell of the parameter map: the P-only test gain and the Q delay of the large arm."""
    ev = pq_evidence(runs, anneal)
    gain = np.asarray(ev["test_final"])[0, :, 0] - np.asarray(ev["test_final"])[1, :, 0]
    m, lo, hi, se = ci(gain, axis=0)
    delay = delay_test(ev, 0)
    order = q_first_test(ev, 1)
    noise = {}
    if "small_noise" in ev["arms"]:
        j = list(ev["arms"]).index("small_noise")
        gn = ci(np.asarray(ev["test_final"])[j, :, 0] - np.asarray(ev["test_final"])[1, :, 0], axis=0)
        noise = dict(gain_noise=float(gn[0]), gain_noise_lo=float(gn[1]), gain_noise_hi=float(gn[2]),
                     q_delayed_noise=delay_test(ev, j)["outcome"])
    return dict(**noise, gain=float(m), gain_lo=float(lo), gain_hi=float(hi), gain_se=float(se),
                q_delayed=delay["outcome"], q_acc_window_large=delay["q_acc"][0],
                kappa_ratio_large=delay["kappa_ratio"], q_first_small=order["fraction"],
                test_p_large=float(np.nanmean(np.asarray(ev["test_final"])[0, :, 0])),
                test_p_small=float(np.nanmean(np.asarray(ev["test_final"])[1, :, 0])))


# ----------------------------------------------------------------------- verdict rules
def arr(ev, name):
    """An evidence entry (lists after a JSON round trip) as a float64 array."""
    return np.asarray(ev[name], dtype=np.float64)


def delay_test(ev, arm):
    """Is Q delayed until annealing in this arm? outcome yes / no / unknown (rule below)."""
    qa = ci(arr(ev, "q_acc_window")[arm], axis=0)
    kw = ci(arr(ev, "kappa_window")[arm], axis=0)
    kf = float(np.nanmean(arr(ev, "kappa_final")[arm]))
    qf = float(np.nanmean(arr(ev, "q_acc_final")[arm]))
    cap = KAPPA_FRACTION * kf
    small_k = kf > 0 and kw[2] <= cap
    if qa[2] <= CHANCE_CAP and small_k and qf >= THRESHOLD:
        outcome = "yes"
    elif qa[1] > CHANCE_CAP or (kf > 0 and kw[1] > cap):
        outcome = "no"
    else:
        outcome = "unknown"
    return dict(outcome=outcome, q_acc=[float(v) for v in qa[:3]],
                kappa=[float(v) for v in kw[:3]], kappa_final=kf, q_acc_final=qf,
                kappa_ratio=float(kw[0] / kf) if kf > 0 else None)


DELAY_RULE = (f"Q delayed (yes) iff, over the records with anneal/2 <= step <= anneal, the 95% "
              f"t-interval (over data draws) of the mean Q-only training accuracy lies at or below "
              f"{CHANCE_CAP}, that of the mean κ at or below {KAPPA_FRACTION}·(mean final κ) with "
              f"final κ > 0, and the mean final Q-only training accuracy is >= {THRESHOLD}; not "
              f"delayed (no) iff the accuracy interval lies above {CHANCE_CAP} or the κ interval "
              f"above {KAPPA_FRACTION}·final κ (Q learned before annealing); otherwise unknown")


def q_first_test(ev, arm):
    """Fraction of trajectories whose Q-only examples cross 0.9 before the P-only ones."""
    t = arr(ev, "t_first")[arm]
    valid = np.asarray(ev["valid"], bool)[arm]
    tp, tq = t[valid, 0], t[valid, 1]
    q_first = (np.isfinite(tq) & (~np.isfinite(tp) | (tq < tp)))
    p_first = (np.isfinite(tp) & (~np.isfinite(tq) | (tp < tq)))
    ties = np.isfinite(tp) & np.isfinite(tq) & (tp == tq)
    n, k = int(valid.sum()), int(q_first.sum())
    n_eff = int(ev["n_draws"])  # conservative: one independent unit per data draw
    _, lo, hi = stats.wilson_interval(round(k * n_eff / max(n, 1)), n_eff)
    return dict(fraction=k / max(n, 1), lo=float(lo), hi=float(hi), q_first=k,
                p_first=int(p_first.sum()), ties=int(ties.sum()),
                neither=int((~np.isfinite(tp) & ~np.isfinite(tq)).sum()), n=n,
                median_t_p=float(np.nanmedian(tp)) if np.isfinite(tp).any() else None,
                median_t_q=float(np.nanmedian(tq)) if np.isfinite(tq).any() else None)
