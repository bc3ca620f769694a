"""Runs for the self-distillation claims (Mobahi, Farajtabar, Bartlett): one family of
kernel-regression instances distilled in closed form and by iterated fits (shared by the
four theorems), and per-seed test-risk curves for the U-shape hypothesis.

Randomness: the family's data come from ``numpy_rng(subkey(key, "selfdistill-data"))``,
the U-shape seeds' data from ``numpy_rng(subkey(key, "selfdistill-ushape"))``; nothing
else is random (eigendecompositions, solves and the root finder are deterministic).

The family run records, per instance, the measured quantities and the theory's predictions
next to them (bounds of :mod:`theory.self_distillation`); the comparisons live in
:mod:`simulations.claims.self_distillation.rules`.
"""
from __future__ import annotations

import numpy as np

from simulations.keys import numpy_rng, subkey
from simulations.registry import shared_run
from simulations.testbeds import kernel_regression as kr
from theory import self_distillation as sd

U64 = float(np.finfo(np.float64).eps)


def _pad(rows, width=None, fill=np.nan):
    """Ragged list of 1-D arrays -> 2-D array padded with ``fill``."""
    n = max(len(r) for r in rows) if width is None else width
    out = np.full((len(rows), n), fill)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


# ========================================================================= the family
def _amplification(cf):
    """c_t, r_t and, for every non-trivial round t < T, the bounds eq. (4), (5), (7)."""
    d, T, r = cf.eigenvalues, cf.n_nontrivial, cf.ratio
    kappa = sd.condition_number(d)
    c_bounds = np.array([sd.ridge_constant_bounds(r[t], d[0], d[-1]) for t in range(T)]).reshape(T, 2)
    paper = np.array([sd.ratio_bounds_paper(r[t], kappa) for t in range(T)]).reshape(T, 2)
    derived = np.array([sd.ratio_bounds_derived(r[t]) for t in range(T)]).reshape(T, 2)
    return dict(c=cf.c, r=r, c_lower=c_bounds[:, 0], c_upper=c_bounds[:, 1],
                r_next_lower_paper=paper[:, 0], r_next_upper_paper=paper[:, 1],
                r_next_lower_derived=derived[:, 0], r_next_upper_derived=derived[:, 1])


def _sparsification(cf, taus):
    """For each non-trivial round t: over the pairs d_j < d_k, the largest step ratio
    (B_{t+1}[j]/B_{t+1}[k]) / (B_t[j]/B_t[k]) among the steps float64 resolves and, among
    the others, the largest ratio divided by 1 + 8(t + 2)u; plus the basis counts.

    Float rule: B_t is a product of t + 1 rounded factors, so a ratio of two entries carries
    relative error ≤ 4(t + 2)u. A step is resolvable when its exact drop
    1 − A_t[j]/A_t[k] = c_t(d_k − d_j)/(d_k(c_t + d_j)) exceeds 8(t + 2)u.
    """
    d, B, T = cf.eigenvalues, cf.B, cf.n_nontrivial
    jj, kk = np.triu_indices(d.size, 1)
    keep = d[jj] < d[kk]
    jj, kk = jj[keep], kk[keep]
    step_max, weak_max, n_res = (np.full(T, np.nan) for _ in range(3))
    for t in range(T):
        step = (B[t + 1, jj] / B[t + 1, kk]) / (B[t, jj] / B[t, kk])
        drop = cf.c[t] * (d[kk] - d[jj]) / (d[kk] * (cf.c[t] + d[jj]))
        rel_err = 8 * (t + 2) * U64
        resolvable = drop > rel_err
        n_res[t] = resolvable.sum()
        if resolvable.any():
            step_max[t] = step[resolvable].max()
        if (~resolvable).any():
            weak_max[t] = step[~resolvable].max() / (1 + rel_err)
    counts = np.array([sd.basis_count(B[: T + 2], tau) for tau in taus])  # (n_tau, T + 2)
    return dict(step_ratio_max=step_max, weak_ratio_max=weak_max, n_resolvable=n_res,
                n_pairs=int(jj.size)), counts


def _collapse(cf, it, inst):
    """The collapse round from direct fits past it, and the bounds eq. (6), (8) on T."""
    T, K = cf.n_nontrivial, inst.data.n
    norms2 = np.sum(it.targets ** 2, axis=1)
    first = int(np.argmax(norms2 <= K * inst.eps * (1 + sd.ROUNDOFF_MARGIN) ** 2))
    after = np.concatenate([np.abs(it.predictions[T:]).ravel(), np.abs(it.targets[T + 1:]).ravel()])
    before = np.max(np.abs(it.predictions[:T]), axis=1) if T else np.array([np.inf])
    r0, kappa = float(cf.ratio[0]), sd.condition_number(cf.eigenvalues)
    paper = derived = (np.nan, np.nan)
    if not sd.is_collapsed(r0):
        paper, derived = sd.rounds_bounds_paper(r0, kappa), sd.rounds_bounds_derived(r0)
    return dict(T_iterated=it.n_nontrivial, first_small=first, max_abs_after=float(after.max()),
                finite_c_after=int(np.sum(np.isfinite(it.c[T:]))), min_abs_before=float(before.min()),
                r0=r0, lower_paper=paper[0], upper_paper=paper[1],
                lower_derived=derived[0], upper_derived=derived[1])


def _toy_index(insts, kernel="laplace"):
    """The toy instance with this kernel and the smallest ε (most rounds): the figure case."""
    cand = [j for j, i in enumerate(insts) if i.dataset == "toy" and i.kernel == kernel
            and not i.collapse_case]
    return min(cand, key=lambda j: insts[j].eps)


@shared_run("selfdistill.family")
def family(config, *, key):
    """Every (dataset, kernel, ε) of :func:`simulations.testbeds.kernel_regression.
    kernel_instances`: the closed form (eq. 3) and direct iterated fits for T + 3 rounds
    (T = non-trivial rounds), with what each theorem claim compares."""
    insts = kr.kernel_instances(config, numpy_rng(subkey(key, "selfdistill-data")),
                                config["collapse_eps_factors"])
    j_toy = _toy_index(insts)
    rows = {name: [] for name in ("closed_form", "amplification", "sparsification", "collapse")}
    scalars, counts, toy = [], [], {}
    for j, inst in enumerate(insts):
        cf = sd.closed_form_distillation(inst.G, inst.data.y, inst.eps, x_rows=inst.rows)
        T, n = cf.n_nontrivial, len(cf.c)
        # direct fits past the collapse; their first n rounds are the closed form's rounds
        it = sd.iterate_distillation(inst.G, inst.data.y, inst.eps, n_rounds=T + 3, x_rows=inst.rows)
        scalars.append(dict(kappa=sd.condition_number(cf.eigenvalues), T=T, n_rounds=n, K=inst.data.n,
                            d_min=cf.eigenvalues[0], d_max=cf.eigenvalues[-1]))
        # per round: |closed − iterated| on y_0 … y_n and on f_0 … f_{n−1} over the test grid,
        # next to the first-order round-off bound of one computation
        bound = sd.round_off_bound(cf, inst.eps, inst.rows)
        with np.errstate(invalid="ignore"):  # both collapsed: 0; only one: NaN (fails)
            diff_c = np.where(np.isinf(cf.c) & np.isinf(it.c[:n]), 0.0, np.abs(it.c[:n] - cf.c) / cf.c)
        rows["closed_form"].append(dict(
            diff_train=np.max(np.abs(cf.targets - it.targets[: n + 1]), axis=1),
            diff_test=np.max(np.abs(cf.predictions - it.predictions[:n]), axis=1), diff_c=diff_c,
            bound_train=bound.train, bound_test=bound.test, bound_c=bound.root))
        rows["amplification"].append(_amplification(cf))
        sp, cnt = _sparsification(cf, config["taus"])
        rows["sparsification"].append(sp)
        counts.append(cnt)
        rows["collapse"].append(_collapse(cf, it, inst))
        if j == j_toy:
            toy = dict(x=inst.data.x, y=inst.data.y, x_test=inst.data.x_test, eps=inst.eps,
                       pred_closed=cf.predictions, pred_iter=it.predictions[:n],
                       d=cf.eigenvalues, B=cf.B[: T + 1])

    def table(items):
        """Per-instance dicts -> per-name arrays (ragged per-round arrays padded with NaN)."""
        out = {}
        for k in items[0]:
            vals = [it_[k] for it_ in items]
            out[k] = _pad(vals) if np.ndim(vals[0]) else np.array(vals, float)
        return out

    width = max(c.shape[1] for c in counts)
    return dict(
        dataset=[i.dataset for i in insts], kernel=[i.kernel for i in insts],
        eps=[i.eps for i in insts], collapse_case=[int(i.collapse_case) for i in insts],
        **table(scalars), **{name: table(items) for name, items in rows.items()},
        basis_counts=np.stack([np.pad(c.astype(float), ((0, 0), (0, width - c.shape[1])),
                                      constant_values=np.nan) for c in counts]),
        toy=toy)


# ========================================================================== U shape
def u_shape(config, *, key):
    """Per seed and ε: the excess test risk of every round through the collapse (padded
    with the collapsed f ≡ 0's risk), the best round, the collapse round, monotonicity."""
    rng = numpy_rng(subkey(key, "selfdistill-ushape"))
    sig2 = config["noise_sd"] ** 2
    eps_grid = [f * sig2 for f in config["eps_over_noise_var"]]
    T = np.zeros((len(eps_grid), config["n_seeds"]), int)
    per_eps = [[] for _ in eps_grid]
    for s in range(config["n_seeds"]):
        data = kr.noisy_sinusoid(rng, config["n_points"], config["noise_sd"], config["n_test"])
        G = sd.gram_matrix(data.x, config["kernel"], config["length_scale"])
        rows = sd.feature_rows(data.x_test, data.x, config["kernel"], config["length_scale"])
        for e, eps in enumerate(eps_grid):
            risk, T[e, s] = kr.risk_per_round(data, G, rows, eps)
            per_eps[e].append(risk)
    n_r = max(len(r) for rs in per_eps for r in rs)
    # pad with the risk of f ≡ 0, the value every round after the collapse keeps
    risks = np.array([[np.concatenate([r, np.full(n_r - len(r), r[-1])]) for r in rs]
                      for rs in per_eps])
    best = np.argmin(risks, axis=2)
    return dict(eps=eps_grid, eps_over_noise_var=config["eps_over_noise_var"], risk=risks,
                best_round=best, n_nontrivial=T, u_shaped=((best >= 1) & (best < T)).astype(int),
                monotone=np.all(np.diff(risks, axis=2) >= 0, axis=2).astype(int))
