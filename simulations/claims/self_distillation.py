"""Claims of Mobahi, Farajtabar & Bartlett 2020 (self-distillation in Hilbert space), CLAIMS.md §5.

Four theorems are checked exactly on every instance of a family (the 11-point sinusoid toy
and K = 40 noisy sinusoids over seeds; a Laplace kernel and a Gaussian kernel with the
jitter of :data:`theory.self_distillation.GAUSSIAN_JITTER`; several tolerances ε), and one
hypothesis (U-shaped test error) gets a verdict from seed counts with Wilson intervals.
The formulas live in :mod:`theory.self_distillation`; the data in
:mod:`simulations.testbeds.kernel_regression`.
"""
from __future__ import annotations

import numpy as np

from simulations import plotting
from simulations.keys import numpy_rng, subkey
from simulations.registry import HYPOTHESIS, THEOREM, Claim, Verdict, register
from simulations.stats import mean_ci, wilson_interval
from simulations.testbeds import kernel_regression as kr
from theory import self_distillation as sd

PAPER = ("Mobahi, Farajtabar & Bartlett, Self-Distillation Amplifies Regularization in "
         "Hilbert Space, NeurIPS 2020 (arXiv 2002.05715)")
U64 = float(np.finfo(np.float64).eps)
#: spec tolerance of the closed form against iterated fits.
CLOSED_FORM_TOL = 1e-12
#: relative slack on the c_t and r_t bounds: c_t is solved to relative precision
#: ~4u·|log c_t| and r_t carries ~K·u of rounding, both far below 1e-12.
BOUND_SLACK = 1e-12
TAUS = (1e-1, 1e-2, 1e-4)

_FAMILY = dict(noise_sd=kr.NOISE_SD, n_points=40, n_test=201, kernels=["laplace", "gaussian"],
               length_laplace=0.2, length_gaussian=0.1,
               toy_eps=[0.005, 0.02, 0.1], eps_grid=[0.005, 0.01, 0.03, 0.09])
THEOREM_CONFIGS = {"quick": dict(_FAMILY, n_seeds=3), "full": dict(_FAMILY, n_seeds=20)}


# ----------------------------------------------------------------------------- instances
def instances(config, key, eps_factors=()):
    """The family of (dataset, kernel, ε) checked by the theorem claims (data from the key)."""
    return kr.kernel_instances(config, numpy_rng(subkey(key, "selfdistill-data")), eps_factors)


def _labels(insts):
    return dict(dataset=[i.dataset for i in insts], kernel=[i.kernel for i in insts],
                eps=np.array([i.eps for i in insts]))


def _sizes(config, n_instances):
    return dict(n_seeds=config["n_seeds"], K=config["n_points"], toy_K=11,
                toy_eps=config["toy_eps"], eps_grid=config["eps_grid"], kernels=config["kernels"],
                length_scales={k: config[f"length_{k}"] for k in config["kernels"]},
                gaussian_jitter=sd.GAUSSIAN_JITTER, noise_sd=config["noise_sd"],
                n_instances=n_instances, rounds="until the first collapsed round")


def _pad(rows, fill=np.nan):
    """Ragged list of 1-D arrays -> 2-D array padded with ``fill``."""
    n = max(len(r) for r in rows)
    out = np.full((len(rows), n), fill)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def _finite(c):
    return np.where(np.isfinite(c), c, np.nan)


def _toy_index(insts, kernel="laplace"):
    """The toy instance with this kernel and the smallest ε (most rounds): the figure case."""
    cand = [j for j, i in enumerate(insts) if i.dataset == "toy" and i.kernel == kernel]
    return min(cand, key=lambda j: insts[j].eps)


# ----------------------------------------------------------------------------- closed form
def run_closed_form(config, *, key):
    insts = instances(config, key)
    j_toy = _toy_index(insts)
    diff_train, diff_test, tol, kappa, T = [], [], [], [], []
    for j, inst in enumerate(insts):
        cf = sd.closed_form_distillation(inst.G, inst.data.y, inst.eps, x_rows=inst.rows)
        it = sd.iterate_distillation(inst.G, inst.data.y, inst.eps, n_rounds=len(cf.c),
                                     x_rows=inst.rows)
        k = sd.condition_number(cf.eigenvalues)
        diff_train.append(float(np.max(np.abs(cf.targets - it.targets))))
        diff_test.append(float(np.max(np.abs(cf.predictions - it.predictions))))
        # float rule: both sides carry round-off ~ u·κ·‖y₀‖∞ (a solve/eigendecomposition of a
        # matrix with condition number κ); the spec's 1e-12 is the floor.
        tol.append(max(CLOSED_FORM_TOL, 16 * U64 * k * float(np.max(np.abs(inst.data.y)))))
        kappa.append(k)
        T.append(cf.n_nontrivial)
        if j == j_toy:
            toy = dict(toy_x=inst.data.x, toy_y=inst.data.y, toy_x_test=inst.data.x_test,
                       toy_eps=inst.eps, toy_pred_closed=cf.predictions,
                       toy_pred_iter=it.predictions)
    return dict(_labels(insts), diff_train=np.array(diff_train), diff_test=np.array(diff_test),
                tolerance=np.array(tol), kappa=np.array(kappa), n_nontrivial=np.array(T), **toy)


def verdict_closed_form(ev, config):
    diff = np.maximum(np.asarray(ev["diff_train"], float), np.asarray(ev["diff_test"], float))
    tol = np.asarray(ev["tolerance"], float)
    kernel = np.asarray(ev["kernel"])
    lap = kernel == "laplace"
    ok = bool(np.all(diff <= tol)) and bool(np.all(diff[lap] <= CLOSED_FORM_TOL))
    worst = int(np.argmax(diff / tol))
    gauss = ~lap
    summary = (f"closed form vs iterated kernel-ridge fits over {diff.size} instances: max |Δ| = "
               f"{diff[lap].max():.1e} with the Laplace kernel (≤ {CLOSED_FORM_TOL:g})"
               + (f", {diff[gauss].max():.1e} with the jittered Gaussian (κ up to "
                  f"{np.asarray(ev['kappa'], float)[gauss].max():.1e}; float limit "
                  f"16uκ‖y₀‖∞)" if gauss.any() else "")
               + f"; worst |Δ|/tolerance = {diff[worst] / tol[worst]:.2g}.")
    return Verdict(
        claim_id="selfdistill.closed_form", status="holds" if ok else "violated", summary=summary,
        measured=dict(max_diff_laplace=float(diff[lap].max()),
                      max_diff_gaussian=float(diff[gauss].max()) if gauss.any() else None,
                      max_diff_over_tolerance=float(np.max(diff / tol)),
                      max_kappa=float(np.max(ev["kappa"]))),
        predicted=dict(difference=0.0, spec_tolerance=CLOSED_FORM_TOL),
        rule=("max over rounds and points (training and a 201-point test grid) of |closed form "
              "− iterated fit| ≤ max(1e-12, 16·u·κ·‖y₀‖∞) per instance (u = float64 epsilon, κ "
              "= d_max/d_min: the round-off of a solve with that conditioning), and ≤ 1e-12 "
              "on every Laplace-kernel instance (spec tolerance)."),
        sizes=_sizes(config, diff.size))


def figure_closed_form(ev, v, path):
    fig, (ax, ax2) = plotting.new_figure("selfdistill.closed_form", 2,
                                         title="closed form = iterated kernel ridge fits")
    xt = np.asarray(ev["toy_x_test"], float)
    pc, pi = np.asarray(ev["toy_pred_closed"], float), np.asarray(ev["toy_pred_iter"], float)
    colors = plotting.plt.cm.viridis(np.linspace(0, 0.9, len(pc)))
    ax.plot(ev["toy_x"], ev["toy_y"], "ko", label="labels y₀")
    ax.plot(xt, np.sin(2 * np.pi * xt), "k:", lw=1, label="sin 2πx")
    for t, (p, col) in enumerate(zip(pc, colors)):
        last = t == len(pc) - 1
        lab = f"f_{t} closed form" + (" (collapsed: ≡ 0)" if last and not np.any(p) else "")
        ax.plot(xt, p, color=col, lw=1.3, label=lab if t == 0 or last else None)
        ax.plot(xt[::20], pi[t][::20], "x", color=col, ms=4,
                label="iterated fit" if t == 0 else None)
    ax.set(xlabel="x", ylabel="f_t(x)",
           title=f"toy, Laplace kernel, ε = {ev['toy_eps']:g}: round t = 0…{len(pc) - 1}")
    ax.legend(loc="lower left")
    kappa = np.asarray(ev["kappa"], float)
    diff = np.maximum(np.asarray(ev["diff_train"], float), np.asarray(ev["diff_test"], float))
    for kern, mk in (("laplace", "o"), ("gaussian", "s")):
        sel = np.asarray(ev["kernel"]) == kern
        if sel.any():
            ax2.loglog(kappa[sel], np.maximum(diff[sel], 1e-18), mk, mfc="none", label=kern)
    ax2.loglog(kappa, np.asarray(ev["tolerance"], float), "k_", ms=10,
               label="tolerance max(1e-12, 16uκ‖y₀‖∞)")
    ax2.axhline(CLOSED_FORM_TOL, color="r", ls="--", lw=1, label="spec 1e-12")
    ax2.set(xlabel="κ = d_max/d_min", ylabel="max |closed − iterated|", title=v.status)
    ax2.legend()
    plotting.save(fig, path)


# ----------------------------------------------------------------------------- amplification
def _amplification_checks(cf):
    """Violations of c_{t+1} > c_t, eq. (4), eq. (5) and eq. (7) over non-trivial rounds."""
    d = cf.eigenvalues
    kap = sd.condition_number(d)
    T = cf.n_nontrivial
    c, r = cf.c, cf.ratio
    out = dict(c_monotone=0, c_bounds=0, r_paper=0, r_derived=0, c_growth_min=np.inf,
               c_lo_slack=np.inf, c_hi_slack=np.inf, r_paper_gap=0.0)
    for t in range(T):
        lo, hi = sd.ridge_constant_bounds(r[t], d[0], d[-1])
        out["c_bounds"] += int(not (lo * (1 - BOUND_SLACK) <= c[t] <= hi * (1 + BOUND_SLACK)))
        out["c_lo_slack"] = min(out["c_lo_slack"], c[t] / lo)
        out["c_hi_slack"] = min(out["c_hi_slack"], hi / c[t])
        rl, rh = sd.ratio_bounds_paper(r[t], kap)
        out["r_paper"] += int(not (rl * (1 - BOUND_SLACK) <= r[t + 1] <= rh * (1 + BOUND_SLACK)))
        out["r_paper_gap"] = max(out["r_paper_gap"], (rh - rl) / r[t])
        dl, dh = sd.ratio_bounds_derived(r[t])
        out["r_derived"] += int(not (dl * (1 - BOUND_SLACK) <= r[t + 1] <= dh * (1 + BOUND_SLACK)))
        if t + 1 < T:
            out["c_monotone"] += int(not c[t + 1] > c[t])
            out["c_growth_min"] = min(out["c_growth_min"], c[t + 1] / c[t])
    return out


def run_amplification(config, *, key):
    insts = instances(config, key)
    rows, cs, rs = [], [], []
    for inst in insts:
        cf = sd.closed_form_distillation(inst.G, inst.data.y, inst.eps)
        chk = _amplification_checks(cf)
        chk.update(kappa=sd.condition_number(cf.eigenvalues), T=cf.n_nontrivial,
                   d_min=cf.eigenvalues[0], d_max=cf.eigenvalues[-1])
        rows.append(chk)
        cs.append(_finite(cf.c))
        rs.append(cf.ratio)
    ev = {k: np.array([r[k] for r in rows], float) for k in rows[0]}
    for k in ("c_growth_min", "c_lo_slack", "c_hi_slack"):
        ev[k] = np.where(np.isfinite(ev[k]), ev[k], np.nan)
    ev.update(_labels(insts), c=_pad(cs), r=_pad(rs))
    return ev


def verdict_amplification(ev, config):
    viol = {k: int(np.sum(ev[k])) for k in ("c_monotone", "c_bounds", "r_paper", "r_derived")}
    ok = sum(viol.values()) == 0
    growth = float(np.nanmin(np.asarray(ev["c_growth_min"], float)))
    lo_sl = float(np.nanmin(np.asarray(ev["c_lo_slack"], float)))
    hi_sl = float(np.nanmin(np.asarray(ev["c_hi_slack"], float)))
    n = len(ev["eps"])
    summary = (f"over {n} instances every c_{{t+1}} > c_t (smallest ratio {growth:.3g}) and every "
               f"bound held ({sum(viol.values())} violations); closest approach: c_t ≥ "
               f"{lo_sl:.3g}× its lower bound, ≤ 1/{hi_sl:.3g} of its upper bound; the paper's "
               f"r_{{t+1}} interval is up to {float(np.max(ev['r_paper_gap'])):.2f}·r_t wide.")
    return Verdict(
        claim_id="selfdistill.amplification", status="holds" if ok else "violated",
        summary=summary,
        measured=dict(violations=viol, min_c_ratio=growth, min_c_over_lower=lo_sl,
                      min_upper_over_c=hi_sl,
                      max_relative_width_paper_r_bounds=float(np.max(ev["r_paper_gap"]))),
        predicted=dict(violations=0, c_ratio="> 1"),
        rule=("exact check on every non-trivial round t (r_t > 1): c_{t+1} > c_t strictly; "
              "d_min/(r_t−1) ≤ c_t ≤ d_max/(r_t−1) and the paper's r_{t+1} bounds, and the "
              "derived-here r_t − 1 ≤ r_{t+1} ≤ √(r_t² − 1), each with relative slack 1e-12 "
              "(root-finder and norm round-off ≪ 1e-12). Zero violations = holds."),
        sizes=_sizes(config, n))


def figure_amplification(ev, v, path):
    fig, (ax, ax2) = plotting.new_figure("selfdistill.amplification", 2,
                                         title="c_t grows; bounds on c_t and r_{t+1}")
    kernel, dataset = np.asarray(ev["kernel"]), np.asarray(ev["dataset"])
    eps = np.asarray(ev["eps"], float)
    sel = np.flatnonzero((dataset == "toy") & (kernel == "laplace"))
    j = sel[np.argmin(eps[sel])]
    c, r = np.asarray(ev["c"], float)[j], np.asarray(ev["r"], float)[j]
    T = int(ev["T"][j])
    t = np.arange(T)
    ax.semilogy(t, c[:T], "o", label="c_t (root of h(c) = ε)")
    ax.fill_between(t, ev["d_min"][j] / (r[:T] - 1), ev["d_max"][j] / (r[:T] - 1), alpha=0.2,
                    label="d_min/(r_t−1) … d_max/(r_t−1)")
    ax.set(xlabel="round t", ylabel="c_t", title=f"toy, Laplace, ε = {eps[j]:g}, κ = {ev['kappa'][j]:.3g}")
    ax.legend()
    lo_p = r[:T] * (r[:T] - 1) / (r[:T] - 1 + ev["kappa"][j])
    hi_p = r[:T] * ev["kappa"][j] * (r[:T] - 1) / (1 + ev["kappa"][j] * (r[:T] - 1))
    ax2.plot(t + 1, r[1:T + 1], "ko", label="r_{t+1} measured")
    ax2.plot(t + 1, lo_p, "b-", label="paper bounds from r_t")
    ax2.plot(t + 1, hi_p, "b-")
    ax2.plot(t + 1, r[:T] - 1, "g--", label="derived: r_t − 1, √(r_t² − 1)")
    ax2.plot(t + 1, np.sqrt(r[:T] ** 2 - 1), "g--")
    ax2.axhline(1, color="r", lw=1, ls=":", label="collapse level r = 1")
    ax2.set(xlabel="round t + 1", ylabel="r = ‖y‖/√(Kε)", title=v.status)
    ax2.legend()
    plotting.save(fig, path)


# ----------------------------------------------------------------------------- sparsification
def _sparsification_checks(cf):
    """Violations of: B_t[j]/B_t[k] strictly decreasing for d_j < d_k; basis counts never rising.

    Float rule: B_t is a product of t + 1 rounded factors, so a ratio of two entries carries
    relative error ≤ 4(t + 2)u. A step is asserted strictly decreasing when its exact drop
    1 − A_t[j]/A_t[k] = c_t(d_k − d_j)/(d_k(c_t + d_j)) exceeds 8(t + 2)u, and
    non-increasing within 8(t + 2)u otherwise (then it is not resolvable in float64).
    """
    d, B, A, T = cf.eigenvalues, cf.B, cf.A, cf.n_nontrivial
    jj, kk = np.triu_indices(d.size, 1)
    keep = d[jj] < d[kk]
    jj, kk = jj[keep], kk[keep]
    strict = weak = n_strict = 0
    for t in range(T):
        before = B[t, jj] / B[t, kk]
        after = B[t + 1, jj] / B[t + 1, kk]
        drop = cf.c[t] * (d[kk] - d[jj]) / (d[kk] * (cf.c[t] + d[jj]))
        rel_err = 8 * (t + 2) * U64
        resolvable = drop > rel_err
        n_strict += int(resolvable.sum())
        strict += int(np.sum(resolvable & ~(after < before)))
        weak += int(np.sum(~resolvable & (after > before * (1 + rel_err))))
    counts = np.array([sd.basis_count(B[: T + 2], tau) for tau in TAUS])  # (n_tau, T+2)
    count_viol = int(np.sum(np.diff(counts, axis=1) > 0))
    return dict(strict=strict, weak=weak, n_strict_checked=n_strict, count_rises=count_viol,
                n_pairs=int(jj.size)), counts


def run_sparsification(config, *, key):
    insts = instances(config, key)
    rows, counts_mid = [], []
    for inst in insts:
        cf = sd.closed_form_distillation(inst.G, inst.data.y, inst.eps)
        chk, counts = _sparsification_checks(cf)
        chk.update(T=cf.n_nontrivial, K=inst.data.n)
        rows.append(chk)
        counts_mid.append(counts[1])  # τ = 1e-2
    ev = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    ev.update(_labels(insts), basis_count_tau2=_pad(counts_mid))
    j = _toy_index(insts)
    cf = sd.closed_form_distillation(insts[j].G, insts[j].data.y, insts[j].eps)
    ev.update(toy_eps=insts[j].eps, toy_d=cf.eigenvalues, toy_B=cf.B[: cf.n_nontrivial + 1])
    return ev


def verdict_sparsification(ev, config):
    strict, weak = int(np.sum(ev["strict"])), int(np.sum(ev["weak"]))
    rises = int(np.sum(ev["count_rises"]))
    ok = strict == weak == rises == 0
    K = np.asarray(ev["K"])
    counts = np.asarray(ev["basis_count_tau2"], float)
    # f_t uses B_{t+1}: the teacher f_0 uses B_1, the last non-trivial round B_T
    first, last = counts[:, 1], np.array([row[np.isfinite(row)][-2] for row in counts])
    big = K == K.max()
    summary = (f"{int(np.sum(ev['n_strict_checked']))} resolvable ratio steps all strictly "
               f"decreased ({strict} violations, {weak} unresolvable steps rose); basis counts "
               f"never rose ({rises} rises); at K = {K.max()} the count with B_t/max B_t > 1e-2 "
               f"fell from a median {np.median(first[big]):.0f} (B_1, the teacher's) to "
               f"{np.median(last[big]):.0f} (B_T, the last non-trivial round's).")
    return Verdict(
        claim_id="selfdistill.sparsification", status="holds" if ok else "violated",
        summary=summary,
        measured=dict(strict_violations=strict, weak_violations=weak, count_rises=rises,
                      steps_checked=int(np.sum(ev["n_strict_checked"])),
                      median_count_teacher=float(np.median(first[big])),
                      median_count_last_round=float(np.median(last[big]))),
        predicted=dict(strict_violations=0, count_rises=0),
        rule=("for all pairs d_j < d_k and non-trivial rounds t: B_{t+1}[j]/B_{t+1}[k] < "
              "B_t[j]/B_t[k] where the exact drop exceeds 8(t+2)u (else ≤ within 8(t+2)u, the "
              "round-off of a (t+1)-fold product); #{k: B_t[k]/max B_t > τ} non-increasing in t "
              f"for τ in {list(TAUS)} (exact integer comparison). Zero violations = holds."),
        sizes=_sizes(config, len(ev["eps"])))


def figure_sparsification(ev, v, path):
    fig, (ax, ax2) = plotting.new_figure("selfdistill.sparsification", 2,
                                         title="B_t sparsifies the basis")
    d, B = np.asarray(ev["toy_d"], float), np.asarray(ev["toy_B"], float)
    order = np.argsort(d)[::-1]
    colors = plotting.plt.cm.viridis(np.linspace(0, 0.9, len(B)))
    for t, (b, col) in enumerate(zip(B, colors)):
        ax.semilogy(np.arange(1, d.size + 1), b[order], "o-", color=col, ms=3, lw=1,
                    label=f"t = {t}" if t in (0, 1, len(B) - 1) else None)
    ax.set(xlabel="eigen-index k (d_k decreasing)", ylabel="B_t[k]",
           title=f"toy, Laplace kernel, ε = {ev['toy_eps']:g}")
    ax.legend()
    counts = np.asarray(ev["basis_count_tau2"], float)
    K = np.asarray(ev["K"])
    for kval, col in ((K.max(), "C0"), (K.min(), "C1")):
        sel = counts[K == kval]
        for row in sel:
            ax2.plot(np.arange(row.size), row, "-", color=col, alpha=0.25, lw=0.8)
        ax2.plot([], [], "-", color=col, label=f"K = {kval} instances")
    ax2.set(xlabel="round t", ylabel="#{k : B_t[k]/max B_t > 1e-2}", title=v.status)
    ax2.legend()
    plotting.save(fig, path)


# ----------------------------------------------------------------------------- collapse
COLLAPSE_FACTORS = (1.0, 1.5)  # extra instances with ε = factor·‖y‖²/K: collapse at round 0


def run_collapse(config, *, key):
    insts = instances(config, key, eps_factors=COLLAPSE_FACTORS)
    rows = []
    for inst in insts:
        cf = sd.closed_form_distillation(inst.G, inst.data.y, inst.eps)
        T = cf.n_nontrivial
        # independent path: direct fits for two rounds past the collapse
        it = sd.iterate_distillation(inst.G, inst.data.y, inst.eps, n_rounds=T + 3,
                                     x_rows=inst.rows)
        norms2 = np.sum(it.targets ** 2, axis=1)
        first = int(np.argmax(norms2 <= inst.data.n * inst.eps * (1 + sd.ROUNDOFF_MARGIN) ** 2))
        zero_after = bool(np.all(it.predictions[T:] == 0) and np.all(it.targets[T + 1:] == 0)
                          and np.all(np.isinf(it.c[T:])))
        nonzero_before = bool(np.all(np.any(it.predictions[:T] != 0, axis=1)))
        r0, kap = float(cf.ratio[0]), sd.condition_number(cf.eigenvalues)
        if sd.is_collapsed(r0):
            lo_p = hi_p = lo_d = hi_d = np.nan
            in_paper = in_derived = T == 0
        else:
            lo_p, hi_p = sd.rounds_bounds_paper(r0, kap)
            lo_d, hi_d = sd.rounds_bounds_derived(r0)
            in_paper, in_derived = lo_p <= T <= hi_p, lo_d <= T <= hi_d
        rows.append(dict(T=T, T_iterated=it.n_nontrivial, first_small=first, r0=r0, kappa=kap,
                         zero_after=zero_after, nonzero_before=nonzero_before,
                         in_paper=in_paper, in_derived=in_derived, lower_paper=lo_p,
                         upper_paper=hi_p, lower_derived=lo_d, upper_derived=hi_d))
    ev = {k: np.array([r[k] for r in rows], float) for k in rows[0]}
    ev.update(_labels(insts))
    return ev


def verdict_collapse(ev, config):
    T, Ti, first = (np.asarray(ev[k], float) for k in ("T", "T_iterated", "first_small"))
    checks = dict(same_T=int(np.sum(T != Ti)), first_small_is_T=int(np.sum(first != T)),
                  zero_after=int(np.sum(ev["zero_after"] == 0)),
                  nonzero_before=int(np.sum(ev["nonzero_before"] == 0)),
                  paper_bounds=int(np.sum(ev["in_paper"] == 0)),
                  derived_bounds=int(np.sum(ev["in_derived"] == 0)))
    ok = sum(checks.values()) == 0
    nt = T > 0
    up = np.asarray(ev["upper_paper"], float)[nt] / T[nt]
    lo = T[nt] / np.asarray(ev["lower_paper"], float)[nt]
    kap = np.asarray(ev["kappa"], float)
    summary = (f"{T.size} instances ({int(np.sum(~nt))} with ε ≥ ‖y‖²/K collapsed at round 0): "
               f"T = {int(T[nt].min())}…{int(T.max())} non-trivial rounds, all within "
               f"(r₀−1)/κ ≤ T ≤ κ(r₀−1)+1 ({checks['paper_bounds']} misses) but the paper's "
               f"bounds are loose by factors {np.median(lo):.2g} (lower) and {np.median(up):.2g} "
               f"(upper, median) at κ = {kap.min():.2g}…{kap.max():.2g}; the derived "
               f"⌈r₀−1⌉ ≤ T ≤ ⌈r₀²−1⌉ held too ({checks['derived_bounds']} misses).")
    return Verdict(
        claim_id="selfdistill.collapse", status="holds" if ok else "violated", summary=summary,
        measured=dict(checks_failed=checks, T_min=int(T[nt].min()), T_max=int(T.max()),
                      median_upper_over_T=float(np.median(up)),
                      median_T_over_lower=float(np.median(lo)),
                      median_T_over_derived_upper=float(np.median(
                          T[nt] / np.asarray(ev["upper_derived"], float)[nt]))),
        predicted=dict(checks_failed=0),
        rule=("exact: T (closed form) = T (direct fits) = first t with ‖y_t‖² ≤ Kε; every "
              "round ≥ T gives f ≡ 0 and c_t = ∞ and every round < T a non-zero f; for r₀ > 1 "
              "(r₀−1)/κ ≤ T ≤ κ(r₀−1)+1 (paper) and ⌈r₀−1⌉ ≤ T ≤ ⌈r₀²−1⌉ (derived here); "
              "for r₀ ≤ 1, T = 0 (the paper's upper bound is stated for r₀ > 1 only)."),
        sizes=dict(_sizes(config, T.size), collapse_eps_factors=list(COLLAPSE_FACTORS)))


def figure_collapse(ev, v, path):
    fig, (ax,) = plotting.new_figure("selfdistill.collapse", 1, width=6.5,
                                     title="number of non-trivial rounds T vs r₀")
    T, r0 = np.asarray(ev["T"], float), np.asarray(ev["r0"], float)
    kap = np.asarray(ev["kappa"], float)
    nt = T > 0
    for kern, mk in (("laplace", "o"), ("gaussian", "s")):
        sel = nt & (np.asarray(ev["kernel"]) == kern)
        ax.plot(r0[sel], T[sel], mk, mfc="none", label=f"T measured ({kern})")
    rr = np.linspace(1.001, r0.max() * 1.05, 200)
    ax.plot(rr, np.ceil(rr - 1), "g-", label="derived ⌈r₀−1⌉, ⌈r₀²−1⌉")
    ax.plot(rr, np.ceil(rr ** 2 - 1), "g-")
    for k, ls in ((kap[nt].min(), "--"), (kap[nt].max(), ":")):
        ax.plot(rr, (rr - 1) / k, "b" + ls, lw=1, label=f"paper bounds, κ = {k:.2g}")
        ax.plot(rr, k * (rr - 1) + 1, "b" + ls, lw=1)
    ax.set_yscale("log")
    ax.set_ylim(0.3 * (r0[nt].min() - 1) / kap[nt].max(), 3 * kap[nt].max() * r0.max())
    ax.set(xlabel="r₀ = ‖y₀‖/√(Kε)", ylabel="T (non-trivial rounds)", title=v.status)
    ax.legend(fontsize=7)
    plotting.save(fig, path)


# ----------------------------------------------------------------------------- U shape
_USHAPE = dict(noise_sd=kr.NOISE_SD, n_points=40, n_test=201, kernel="laplace", length_scale=0.2,
               eps_over_noise_var=[1 / 18, 1 / 9, 1 / 3, 1 / 2, 1.0],
               overfit_max=1 / 9, not_overfit_min=1 / 2, alpha=0.05)
USHAPE_CONFIGS = {"quick": dict(_USHAPE, n_seeds=20), "full": dict(_USHAPE, n_seeds=100)}
USHAPE_RULE = (
    "Fixed before running. Per seed and ε, the excess test risk (mean squared error to "
    "sin 2πx on a 201-point grid) is computed for every round up to and including the "
    "collapse (f ≡ 0). Over-fitting regime: ε ≤ σ²/9; non-over-fitting: ε ≥ σ²/2 (ε = σ²/3 "
    "is reported only). U-shaped = the best round t* satisfies 1 ≤ t* < the collapse round. "
    "With m = number of regime ε values, Wilson intervals at level 1 − 0.05/m (Bonferroni): "
    "confirmed if at every over-fitting ε the lower bound of P(U-shaped) > 1/2 and at every "
    "non-over-fitting ε the lower bound of P(t* = 0) > 1/2; refuted if at some over-fitting ε "
    "the upper bound of P(U-shaped) < 1/2 or at some non-over-fitting ε the upper bound of "
    "P(t* = 0) < 1/2; otherwise inconclusive.")


def risk_per_round(data, G, rows, eps, n_rounds=None):
    """Excess test risk of f_0, f_1, … through the first collapsed round (closed form)."""
    cf = sd.closed_form_distillation(G, data.y, eps, n_rounds=n_rounds, x_rows=rows)
    return kr.excess_risk(cf.predictions, data), cf.n_nontrivial


def run_u_shape(config, *, key):
    rng = numpy_rng(subkey(key, "selfdistill-ushape"))
    sig2 = config["noise_sd"] ** 2
    eps_grid = [f * sig2 for f in config["eps_over_noise_var"]]
    risks, T = [], np.zeros((len(eps_grid), config["n_seeds"]), int)
    per_eps = [[] for _ in eps_grid]
    for s in range(config["n_seeds"]):
        data = kr.noisy_sinusoid(rng, config["n_points"], config["noise_sd"], config["n_test"])
        G = sd.gram_matrix(data.x, config["kernel"], config["length_scale"])
        rows = sd.feature_rows(data.x_test, data.x, config["kernel"], config["length_scale"])
        for e, eps in enumerate(eps_grid):
            risk, T[e, s] = risk_per_round(data, G, rows, eps)
            per_eps[e].append(risk)
    n_r = max(len(r) for rs in per_eps for r in rs)
    # pad with the risk of f ≡ 0, the value every round after the collapse keeps
    risks = np.array([[np.concatenate([r, np.full(n_r - len(r), r[-1])]) for r in rs]
                      for rs in per_eps])
    best = np.argmin(risks, axis=2)
    u_shaped = (best >= 1) & (best < T)
    monotone = np.all(np.diff(risks, axis=2) >= 0, axis=2)
    return dict(eps=np.array(eps_grid), eps_over_noise_var=np.array(config["eps_over_noise_var"]),
                risk=risks, best_round=best, n_nontrivial=T, u_shaped=u_shaped.astype(int),
                monotone=monotone.astype(int), overfit_max=config["overfit_max"],
                not_overfit_min=config["not_overfit_min"], alpha=config["alpha"])


def _ushape_stats(ev):
    """Regimes, Bonferroni level and Wilson intervals (the rule's thresholds travel in ev)."""
    ratio = np.asarray(ev["eps_over_noise_var"], float)
    over = ratio <= float(ev["overfit_max"]) * (1 + 1e-9)
    under = ratio >= float(ev["not_overfit_min"]) * (1 - 1e-9)
    m = int(over.sum() + under.sum())
    conf = 1 - float(ev["alpha"]) / m
    u = np.asarray(ev["u_shaped"], int)
    b0 = np.asarray(ev["best_round"], int) == 0
    n = u.shape[1]
    wil_u = np.array([wilson_interval(int(k), n, conf) for k in u.sum(1)])
    wil_0 = np.array([wilson_interval(int(k), n, conf) for k in b0.sum(1)])
    return ratio, over, under, conf, wil_u, wil_0, u.sum(1), b0.sum(1), n


def verdict_u_shape(ev, config):
    ratio, over, under, conf, wil_u, wil_0, k_u, k_0, n = _ushape_stats(ev)
    if np.all(wil_u[over, 1] > 0.5) and np.all(wil_0[under, 1] > 0.5):
        status = "confirmed"
    elif np.any(wil_u[over, 2] < 0.5) or np.any(wil_0[under, 2] < 0.5):
        status = "refuted"
    else:
        status = "inconclusive"
    eps = np.asarray(ev["eps"], float)
    parts_o = ", ".join(f"ε={e:.3g}: {k}/{n} U-shaped [{lo:.2f}, {hi:.2f}]"
                        for e, k, (_, lo, hi) in zip(eps[over], k_u[over], wil_u[over]))
    parts_u = ", ".join(f"ε={e:.3g}: {k}/{n} teacher best [{lo:.2f}, {hi:.2f}]"
                        for e, k, (_, lo, hi) in zip(eps[under], k_0[under], wil_0[under]))
    mono = np.asarray(ev["monotone"], int).sum(1)
    return Verdict(
        claim_id="selfdistill.u_shape", status=status,
        summary=f"{status}: over-fitting teacher {parts_o}; non-over-fitting {parts_u} "
                f"({conf:.1%} Wilson intervals; error curves monotone in "
                f"{mono[under].sum()}/{n * under.sum()} non-over-fitting runs).",
        measured=dict(eps=[float(f"{e:.6g}") for e in eps], u_shaped=k_u.tolist(), teacher_best=k_0.tolist(),
                      monotone=mono.tolist(), n_seeds=n,
                      wilson_u_shaped=wil_u[:, 1:].tolist(), wilson_teacher_best=wil_0[:, 1:].tolist(),
                      median_best_round=np.median(np.asarray(ev["best_round"]), axis=1).tolist()),
        predicted=dict(u_shaped_fraction_overfit="> 1/2", teacher_best_fraction_not_overfit="> 1/2"),
        rule=USHAPE_RULE,
        sizes=dict(n_seeds=n, K=config["n_points"], kernel=config["kernel"],
                   length_scale=config["length_scale"], noise_variance=config["noise_sd"] ** 2,
                   eps_grid=[float(f"{e:.6g}") for e in eps],
                   rounds="until the first collapsed round"))


def figure_u_shape(ev, v, path):
    fig, (ax, ax2) = plotting.new_figure("selfdistill.u_shape", 2,
                                         title="test error vs self-distillation round")
    risk = np.asarray(ev["risk"], float)
    eps = np.asarray(ev["eps"], float)
    n_show = min(risk.shape[2], int(np.percentile(np.asarray(ev["n_nontrivial"]), 90)) + 2)
    t = np.arange(n_show)
    for e in range(len(eps)):
        stats = np.array([mean_ci(risk[e, :, i]) for i in t])
        ax.plot(t, stats[:, 0], "o-", ms=3, label=f"ε = {eps[e]:.3g}")
        ax.fill_between(t, stats[:, 1], stats[:, 2], alpha=0.2)
    ax.set_yscale("log")
    ax.set(xlabel="round t (0 = teacher)", ylabel="excess test risk E(f_t − f*)²",
           title="mean over seeds, 95% t-interval bands")
    ax.legend()
    ratio, over, under, conf, wil_u, wil_0, *_ = _ushape_stats(ev)
    for w, lab, mk, dx in ((wil_u, "P(U-shaped)", "o", -0.02), (wil_0, "P(teacher best)", "s", 0.02)):
        err = np.maximum(0.0, [w[:, 0] - w[:, 1], w[:, 2] - w[:, 0]])  # 0 up to round-off at p̂ = 0, 1
        ax2.errorbar(ratio * (1 + dx), w[:, 0], yerr=err,
                     fmt=mk, capsize=3, label=lab)
    ax2.axhline(0.5, color="k", lw=1, ls=":")
    ax2.axvspan(ratio.min() * 0.8, float(ev["overfit_max"]) * 1.05, color="C3", alpha=0.08,
                label="over-fitting regime")
    ax2.axvspan(float(ev["not_overfit_min"]) * 0.95, ratio.max() * 1.2, color="C2", alpha=0.08,
                label="non-over-fitting regime")
    ax2.set_xscale("log")
    ax2.set(xlabel="ε / σ²", ylabel="fraction of seeds", ylim=(-0.05, 1.05),
            title=f"{v.status} (Wilson {conf:.1%} intervals)")
    ax2.legend(fontsize=7)
    plotting.save(fig, path)


# ----------------------------------------------------------------------------- registry
_STATEMENTS = {
    "closed_form": "Closed form y_t = Vᵀ B_t V y₀, f_t = g_xᵀ Vᵀ D⁻¹ B_{t+1} V y₀ equals "
                   "iterated constrained kernel ridge regression, on and off the training points.",
    "amplification": "c_{t+1} > c_t; d_min/(r_t−1) ≤ c_t ≤ d_max/(r_t−1); r_t(r_t−1)/(r_t−1+κ) "
                     "≤ r_{t+1} ≤ r_t κ(r_t−1)/(1+κ(r_t−1)).",
    "sparsification": "For d_j < d_k, B_t[j]/B_t[k] strictly decreases in t; the number of k with "
                      "B_t[k]/max B_t > τ never increases.",
    "collapse": "The first round with ‖y_t‖² ≤ Kε gives f ≡ 0 and all later rounds stay 0; the "
                "number of non-trivial rounds T satisfies (r₀−1)/κ ≤ T ≤ κ(r₀−1)+1.",
    "u_shape": "Test error vs round is U-shaped when the teacher over-fits (ε well below the "
               "label-noise variance) and monotone (teacher best) otherwise.",
}

for _name, _run, _verdict, _figure in (
        ("closed_form", run_closed_form, verdict_closed_form, figure_closed_form),
        ("amplification", run_amplification, verdict_amplification, figure_amplification),
        ("sparsification", run_sparsification, verdict_sparsification, figure_sparsification),
        ("collapse", run_collapse, verdict_collapse, figure_collapse)):
    register(Claim(id=f"selfdistill.{_name}", paper=PAPER, kind=THEOREM,
                   statement=_STATEMENTS[_name], configs=THEOREM_CONFIGS, run=_run,
                   verdict=_verdict, figure=_figure))

register(Claim(id="selfdistill.u_shape", paper=PAPER, kind=HYPOTHESIS,
               statement=_STATEMENTS["u_shape"], configs=USHAPE_CONFIGS, run=run_u_shape,
               verdict=verdict_u_shape, figure=figure_u_shape))
