"""Runs for the synthetic SNGM claims: one batch-size × learning-rate sweep per testbed and
start (the shared run :data:`sweep`), the derived bounds on its grid, and bootstrap
intervals of the largest admissible batch B_max over seeds.

Randomness comes from the claim's key: the sweep of testbed ``t`` from start ``x0`` from
``subkey(key, f"{t}-{x0}")``, the run at B = 1 from ``subkey(key, "no_lower")``, and every
bootstrap from ``subkey(key, "bootstrap/<claim>/<quantity>")``.

B_max is a grid value (a power of 2), so comparisons are made in grid steps, i.e. log₂ of
a ratio of batch sizes. A B_max at the top of the grid, or below its bottom (no batch size
reaches ε), is censored: the true value may lie beyond, so a combination of B_max indices
that contains it is only bounded on one side; the bootstrap interval then leaves that end
open (:data:`OPEN` grid steps).
"""
from __future__ import annotations

import numpy as np

from simulations import stats
from simulations import sweep as sw
from simulations.keys import numpy_rng, subkey
from simulations.registry import shared_run
from simulations.testbeds.smooth import make_smooth_testbed
from theory import sngm as th

#: grid steps standing for an interval end that censoring leaves open (beyond any grid).
OPEN = 99


def etas(cfg) -> np.ndarray:
    """(method, η) log grids: SNGM's row, then MSGD's."""
    return np.stack([np.geomspace(*cfg["sngm_eta_range"], cfg["n_eta"]),
                     np.geomspace(*cfg["msgd_eta_range"], cfg["n_eta"])])


def validate(cfg) -> None:
    """β, ε, the batch sizes and budgets, named in the error, before anything compiles."""
    sw.check_beta(cfg["beta"])
    sw.check_eps(cfg["eps"])
    sw.check_budgets(cfg["budgets"], sw.check_batch_sizes(cfg["batch_sizes"]))


# ======================================================================== the sweep
@shared_run("sngm.sweep")
def sweep(cfg, *, key):
    """Every (method, B, η) × seed on one testbed from one start, per-seed metrics at every
    budget: axes (budget, method, B, η, seed)."""
    validate(cfg)
    tb = make_smooth_testbed(cfg["testbed"], x0=cfg["x0"], d=cfg["d"])
    res = sw.sweep(tb, batch_sizes=cfg["batch_sizes"], budgets=cfg["budgets"], etas=etas(cfg),
                   key=subkey(key, f"{cfg['testbed']}-{cfg['x0']}"), beta=cfg["beta"],
                   sigma=cfg["sigma"], n_seeds=cfg["n_seeds"])
    return dict(methods=list(res.methods), batch_sizes=res.batch_sizes, budgets=res.budgets,
                etas=res.etas, tail=res.tail, average=res.average, average_sq=res.average_sq,
                failed=res.failed, hit_steps=res.hit_steps(cfg["eps"]),
                record_every=res.record_every, n_steps=res.n_steps,
                wall_seconds=res.wall_seconds, compilations=res.compilations)


def summary(ev, eps) -> dict:
    """What figures and summaries show of a sweep: medians, B_max, best η, steps to ε."""
    idx = sw.b_max_index(ev.tail, eps)
    bs = ev.batch_sizes
    best = sw.best_eta_index(ev.tail)  # (budget, method, B)
    return dict(batch_sizes=bs, budgets=ev.budgets, etas=ev.etas, methods=ev.methods,
                median_tail=sw.median_tail(ev.tail), b_max_index=idx,
                b_max=np.where(idx >= 0, bs[np.maximum(idx, 0)], 0),
                best_eta=np.take_along_axis(ev.etas[None, :, None, :], best[..., None], -1)[..., 0],
                steps_to_eps=sw.steps_to_eps(ev.hit_steps, ev.tail),
                record_every=ev.record_every, n_seeds=ev.tail.shape[-1])


# ================================================================ B_max intervals
def _combination(indices, coeffs, tops):
    """(lower, upper) bounds of Σ c·index given censoring: an index at its grid's top may
    truly be larger, an index −1 (no batch size reaches ε) may truly be smaller (±:data:`OPEN`)."""
    value = int(sum(c * i for c, i in zip(coeffs, indices)))
    lower = upper = value
    for c, i, top in zip(coeffs, indices, tops):
        larger, smaller = i == top, i == -1
        if (larger and c > 0) or (smaller and c < 0):
            upper = OPEN
        if (smaller and c > 0) or (larger and c < 0):
            lower = -OPEN
    return lower, upper


def step_interval(rows, coeffs, eps, *, key, name, n_boot, confidence) -> dict:
    """Percentile-bootstrap interval (over seeds) of Σ c_k·index(B_max of row k), in grid
    steps. ``rows``: (B, η, seed) tail arrays with one seed count and η count (seeds
    resampled jointly: paired across budgets, independent across methods and starts; the
    batch grids may differ). Censored B_max leave the corresponding end open (±:data:`OPEN`).
    Returns the observed value (difference of the observed indices), its bounds given
    censoring (``point_lower``, ``point_upper``), the interval ``low``, ``high`` and whether
    the observed value is censored."""
    tops = [r.shape[0] - 1 for r in rows]
    n_b = max(tops) + 1
    # shorter batch grids padded with never-qualifying (+inf) batch sizes above their top
    stacked = np.stack([np.concatenate([r, np.full((n_b - r.shape[0],) + r.shape[1:], np.inf)])
                        for r in rows])  # (k, B, η, seed)

    upper_of = []  # upper bounds of the resamples, in the order the first pass meets them

    def lower(sample):
        lo, up = _combination(sw.b_max_index(sample, eps), coeffs, tops)
        upper_of.append(up)
        return lo

    replay = iter(upper_of)
    # the same generator state twice: identical resamples (and the full sample last), so the
    # second pass, for the upper bounds, replays what the first computed
    lo_est, low, _ = stats.bootstrap_grid_interval(
        stacked, lower, rng=numpy_rng(subkey(key, name)), n_boot=n_boot, confidence=confidence, axis=-1)
    hi_est, _, high = stats.bootstrap_grid_interval(
        stacked, lambda s: next(replay), rng=numpy_rng(subkey(key, name)), n_boot=n_boot,
        confidence=confidence, axis=-1)
    value = int(np.dot(coeffs, sw.b_max_index(stacked, eps)))
    return dict(estimate=value, low=low, high=high, point_lower=lo_est, point_upper=hi_est,
                censored=bool(lo_est != hi_est))


def index_interval(row, eps, *, key, name, n_boot, confidence) -> list:
    """[index, low, high] bootstrap interval of one B_max grid index (−1: none reaches ε)."""
    return list(stats.bootstrap_grid_interval(
        row, lambda s: sw.b_max_index(s, eps), rng=numpy_rng(subkey(key, name)),
        n_boot=n_boot, confidence=confidence, axis=-1))


def family_confidence(cfg, n_findings: int) -> float:
    """Each finding's interval at 1 − (1 − confidence)/k (Bonferroni over the k findings of
    a rule): a hypothesis refuted when any finding is contradicted keeps its family-wise
    error at 1 − confidence."""
    return 1 - (1 - cfg["confidence"]) / n_findings


def _boot(cfg, n_findings: int = 1):
    return dict(n_boot=cfg["n_boot"], confidence=family_confidence(cfg, n_findings))


# ======================================================================= sngm.bound
def bound(cfg, *, key):
    """The derived bounds (1) and (4) on the sweep's (C, B, η) grid (no simulation)."""
    del key
    s = cfg["sweep"]
    validate(s)
    beta, sigma, L = s["beta"], s["sigma"], th.LSMOOTH_L
    delta = th.lsmooth_delta(s["x0"], s["d"])
    grid = etas(s)
    cap = th.msgd_eta_cap(beta, L)
    in_cap = grid[1] <= cap
    sngm_b = [[[th.sngm_bound(e, beta, b, c, L, delta, sigma) for e in grid[0]]
               for b in s["batch_sizes"]] for c in s["budgets"]]
    msgd_b = [[[th.msgd_bound(e, beta, b, c, L, delta, sigma) if ok else np.nan
                for e, ok in zip(grid[1], in_cap)] for b in s["batch_sizes"]] for c in s["budgets"]]
    return dict(delta=delta, L=L, msgd_cap=cap, msgd_in_cap=in_cap, sngm_bound=sngm_b,
                msgd_bound=msgd_b)


# ========================================================== sngm.bmax_linear_in_C
def bmax_linear(cfg, *, key):
    """Per testbed: the sweep (shared), B_max at each budget with its interval, and the
    interval of the grid steps from the first to the last budget, per method."""
    for sub in cfg["testbeds"].values():
        validate(sub)  # every sub-config before the first simulation
    k = 2 * len(cfg["testbeds"])  # one finding per (testbed, method)
    out = dict(testbed_names=list(cfg["testbeds"]), n_findings=k)
    for name, sub in cfg["testbeds"].items():
        ev = sweep(sub, key=key)
        tail, eps = ev.tail, sub["eps"]
        steps, idx = [], []
        for m, method in enumerate(ev.methods):
            steps.append(step_interval([tail[-1, m], tail[0, m]], [1, -1], eps, key=key,
                                       name=f"bootstrap/bmax_linear/{name}/{method}", **_boot(cfg, k)))
            idx.append([index_interval(tail[i, m], eps, key=key,
                                       name=f"bootstrap/bmax_linear/{name}/{method}/{i}", **_boot(cfg))
                        for i in range(len(ev.budgets))])
        out[name] = dict(summary(ev, eps), steps=steps, b_max_interval=idx)
    return out


# ============================================================== sngm.lsmooth_parity
def parity(cfg, *, key):
    """Grid steps B_max(SNGM) − B_max(MSGD) at every budget, with bootstrap intervals."""
    ev = sweep(cfg["sweep"], key=key)
    eps = cfg["sweep"]["eps"]
    k = len(ev.budgets)  # one finding per budget
    steps = [step_interval([ev.tail[i, 0], ev.tail[i, 1]], [1, -1], eps, key=key,
                           name=f"bootstrap/parity/{i}", **_boot(cfg, k))
             for i in range(k)]
    return dict(steps=steps, summary=summary(ev, eps), n_findings=k)


# ============================================================ sngm.relaxed_advantage
def _best_eta_at_b_max(row, eps) -> int:
    """MSGD's best-η index at its B_max (at the smallest B if none reaches ε)."""
    j = max(int(sw.b_max_index(row, eps)), 0)
    return int(sw.best_eta_index(row)[j])


def relaxed(cfg, *, key):
    """One sweep per start (``cfg["sweep"]`` updated by each entry of ``cfg["starts"]``;
    shared with other claims where configs agree): at the last budget, grid steps
    B_max(SNGM) − B_max(MSGD) per x0 and their changes with x0, and MSGD's best η at its
    B_max against the heavy-ball cap, all with bootstrap intervals. Grid steps are index
    differences within one sweep, so starts may use different batch grids."""
    eps = cfg["sweep"]["eps"]
    subs = [dict(cfg["sweep"], **start) for start in cfg["starts"]]
    for sub in subs:
        validate(sub)
    x0s = [sub["x0"] for sub in subs]
    k = 1 + 2 * len(subs)  # the ratio at the last start, len − 1 + 1 changes, one η per start
    runs = [sweep(sub, key=key) for sub in subs]
    rows = [r.tail[-1] for r in runs]  # (method, B, η, seed) at the last budget
    per_x0, caps, eta_idx = [], [], []
    for x0, row in zip(x0s, rows):
        per_x0.append(step_interval([row[0], row[1]], [1, -1], eps, key=key,
                                    name=f"bootstrap/relaxed/{x0:g}", **_boot(cfg, k)))
        caps.append(th.heavy_ball_cap(cfg["sweep"]["beta"], th.l0l1_lambda_max(x0)))
        eta_idx.append(list(stats.bootstrap_grid_interval(
            row[1], lambda s: _best_eta_at_b_max(s, eps),
            rng=numpy_rng(subkey(key, f"bootstrap/relaxed/eta/{x0:g}")), axis=-1, **_boot(cfg, k))))
    # changes of (SNGM − MSGD) between starts: consecutive pairs, then last vs first
    pairs = [(k, k + 1) for k in range(len(x0s) - 1)] + [(0, len(x0s) - 1)]
    changes = [step_interval([rows[b][0], rows[b][1], rows[a][0], rows[a][1]], [1, -1, -1, 1], eps,
                             key=key, name=f"bootstrap/relaxed/{x0s[a]:g}-{x0s[b]:g}", **_boot(cfg, k))
               for a, b in pairs]
    reach = index_interval(rows[-1][0], eps, key=key, name="bootstrap/relaxed/sngm_reach", **_boot(cfg))
    return dict(x0s=x0s, ratio_steps=per_x0, changes=changes, sngm_b_max_index_far=reach, n_findings=k,
                change_pairs=[[x0s[a], x0s[b]] for a, b in pairs], heavy_ball_cap=caps,
                msgd_best_eta_index=eta_idx, sweeps=[summary(r, eps) for r in runs])


# ======================================================== sngm.no_lower_batch_limit
def no_lower(cfg, *, key):
    """SNGM alone at B = 1 over an η grid: the tail metric of every seed at the budget."""
    validate(dict(cfg, batch_sizes=[1]))
    tb = make_smooth_testbed(cfg["testbed"], x0=cfg["x0"], d=cfg["d"])
    grid = np.geomspace(*cfg["sngm_eta_range"], cfg["n_eta"])
    res = sw.sweep(tb, batch_sizes=[1], budgets=cfg["budgets"], etas=grid[None], methods=("sngm",),
                   key=subkey(key, "no_lower"), beta=cfg["beta"], sigma=cfg["sigma"],
                   n_seeds=cfg["n_seeds"])
    window = th.sngm_batch_window(cfg["eps"], cfg["beta"], cfg["budgets"][-1], th.LSMOOTH_L,
                                  th.lsmooth_delta(cfg["x0"], cfg["d"]), cfg["sigma"])
    return dict(etas=grid, tail=res.tail[-1, 0, 0], bound_batch_low=window.low,
                steps_to_eps=np.median(res.hit_steps(cfg["eps"])[-1, 0, 0], axis=-1),  # per η
                wall_seconds=res.wall_seconds, compilations=res.compilations)
