"""Claims of Zhao, Shi, Xie, Li (arXiv 2007.13985): SNGM vs MSGD on synthetic testbeds.

CLAIMS.md §2. Theorem (derived): ``sngm.bound``; hypotheses: ``sngm.bmax_linear_in_C``,
``sngm.lsmooth_parity``, ``sngm.relaxed_advantage``, ``sngm.no_lower_batch_limit`` and
(paper) ``sngm.test_accuracy``. Bounds: :mod:`theory.sngm`; testbeds:
:mod:`simulations.testbeds.smooth` and :mod:`simulations.testbeds.digits_mlp`; sweeps:
:mod:`simulations.sweep` (one compiled program per testbed and run length: methods × B ×
η × seeds in one engine call); the digits runs: :func:`digits_mlp.train_grid` (methods ×
η × seeds in one engine call).

All claims on one testbed share one sweep (cached per process by configuration and key).
"""
from __future__ import annotations

import jax
import numpy as np

from simulations import stats
from simulations import sweep as sw
from simulations.keys import subkey
from simulations.plotting import new_figure, save
from simulations.registry import HYPOTHESIS, THEOREM, Claim, Verdict, register
from simulations.testbeds import digits_mlp as dm
from simulations.testbeds.smooth import make_smooth_testbed
from theory import sngm as th
from theory import validation as check

PAPER = "Zhao, Shi, Xie, Li (2020), arXiv 2007.13985"
_CACHE: dict = {}


def _etas(cfg):
    return np.stack([np.geomspace(*cfg["sngm_eta_range"], cfg["n_eta"]),
                     np.geomspace(*cfg["msgd_eta_range"], cfg["n_eta"])])


def _validate(cfg):
    sw.check_beta(cfg["beta"])
    sw.check_eps(cfg["eps"])
    bs = sw.check_batch_sizes(cfg["batch_sizes"])
    sw.check_budgets(cfg["budgets"], bs)


def _sweep(cfg, key, x0):
    """The (cached) sweep for this testbed: evidence-ready arrays."""
    _validate(cfg)
    kbits = tuple(np.asarray(jax.random.key_data(key)).ravel().tolist())
    ck = (cfg["testbed"], float(x0), tuple(cfg["batch_sizes"]), tuple(cfg["budgets"]),
          tuple(cfg["sngm_eta_range"]), tuple(cfg["msgd_eta_range"]), cfg["n_eta"], cfg["beta"],
          cfg["sigma"], cfg["n_seeds"], cfg["d"], kbits)
    if ck not in _CACHE:
        tb = make_smooth_testbed(cfg["testbed"], x0=x0, d=cfg["d"])
        _CACHE[ck] = sw.sweep(tb, batch_sizes=cfg["batch_sizes"], budgets=cfg["budgets"],
                              etas=_etas(cfg), key=subkey(key, f"{cfg['testbed']}-{x0}"),
                              beta=cfg["beta"], sigma=cfg["sigma"], n_seeds=cfg["n_seeds"])
    return _CACHE[ck]


def _summary(res, eps):
    return dict(batch_sizes=res.batch_sizes, budgets=res.budgets, etas=res.etas,
                methods=list(res.methods), median_tail=res.median_tail(), b_max=res.b_max(eps),
                best_eta=np.take_along_axis(res.etas[None, :, None, :].repeat(len(res.budgets), 0)
                                            .repeat(len(res.batch_sizes), 2),
                                            res.best_eta_index()[..., None], -1)[..., 0],
                steps_to_eps=res.steps_to_eps(eps), record_every=res.record_every,
                n_steps=res.n_steps, wall_seconds=res.wall_seconds, compilations=res.compilations)


def _sizes(cfg):
    return dict(cfg, dtype="float32 (simulation), float64 (theory)")


# ====================================================================== sngm.bound
def run_bound(cfg, *, key):
    res = _sweep(cfg, key, cfg["x0"])
    beta, sigma, d = cfg["beta"], cfg["sigma"], cfg["d"]
    L, delta = th.LSMOOTH_L, th.lsmooth_delta(cfg["x0"], d)
    mean, se, n = (np.asarray(a) for a in stats.mean_stderr(res.average, axis=-1))
    mean_sq, se_sq, _ = (np.asarray(a) for a in stats.mean_stderr(res.average_sq, axis=-1))
    C_, M_, B_, E_ = mean.shape
    sngm_b = np.array([[[th.sngm_bound(res.etas[0, e], beta, res.batch_sizes[j], res.budgets[i],
                                       L, delta, sigma) for e in range(E_)] for j in range(B_)]
                       for i in range(C_)])
    cap = th.msgd_eta_cap(beta, L)
    in_cap = res.etas[1] <= cap
    msgd_b = np.array([[[th.msgd_bound(res.etas[1, e], beta, res.batch_sizes[j], res.budgets[i],
                                       L, delta, sigma) if in_cap[e] else np.nan
                         for e in range(E_)] for j in range(B_)] for i in range(C_)])
    return dict(**_summary(res, cfg["eps"]), delta=delta, L=L, msgd_cap=cap,
                sngm_mean=mean[:, 0], sngm_se=se[:, 0], sngm_bound=sngm_b,
                msgd_mean_sq=mean_sq[:, 1], msgd_se_sq=se_sq[:, 1], msgd_bound=msgd_b,
                msgd_in_cap=in_cap, n_failed=res.failed.sum(-1))


def verdict_bound(ev, cfg):
    sm, sse, sb = (np.asarray(ev[k], float) for k in ("sngm_mean", "sngm_se", "sngm_bound"))
    mm, mse, mb = (np.asarray(ev[k], float) for k in ("msgd_mean_sq", "msgd_se_sq", "msgd_bound"))
    in_cap = np.asarray(ev["msgd_in_cap"], bool)
    mm, mse, mb = mm[..., in_cap], mse[..., in_cap], mb[..., in_cap]
    n_cmp = sm.size + mm.size
    z = stats.critical_z(n_comparisons=n_cmp, two_sided=False)
    ucl_s, ucl_m = sm + z * sse, mm + z * mse
    ok_s = bool(np.all(np.isfinite(ucl_s) & (ucl_s <= sb)))
    ok_m = bool(np.all(np.isfinite(ucl_m) & (ucl_m <= mb)))
    ts, tm = sm / sb, mm / mb
    ok = ok_s and ok_m and in_cap.any()
    i, j, e = np.unravel_index(np.nanargmax(ts), ts.shape)
    where = (f"tightest SNGM point C = {int(ev['budgets'][i])}, B = {int(ev['batch_sizes'][j])}, "
             f"η = {float(np.asarray(ev['etas'])[0, e]):.3g}")
    return Verdict(
        claim_id="sngm.bound", status="holds" if ok else "violated",
        summary=(f"SNGM: avg-iterate E‖∇F‖ UCL <= bound (1) at all {sm.size} (C, B, η) points "
                 f"({ok_s}); tightness measured/bound max {np.nanmax(ts):.3f}, median "
                 f"{np.nanmedian(ts):.3f} ({where}). MSGD (η <= cap {ev['msgd_cap']:.3g}, {int(in_cap.sum())} η): "
                 f"avg E‖∇F‖² UCL <= bound (4) at all {mm.size} points ({ok_m}); tightness max "
                 f"{np.nanmax(tm):.3f}, median {np.nanmedian(tm):.3f}"),
        measured=dict(sngm_tightness_max=float(np.nanmax(ts)), sngm_tightness_median=float(np.nanmedian(ts)),
                      msgd_tightness_max=float(np.nanmax(tm)), msgd_tightness_median=float(np.nanmedian(tm)),
                      sngm_tightest_point=where,
                      sngm_max_ucl_over_bound=float(np.max(ucl_s / sb)),
                      msgd_max_ucl_over_bound=float(np.max(ucl_m / mb)) if mm.size else None),
        predicted=dict(delta=ev["delta"], L=ev["L"], msgd_eta_cap=ev["msgd_cap"]),
        rule=(f"mean over seeds + z·SE <= bound at every grid point, z = {z:.2f} (one-sided "
              f"Bonferroni over {n_cmp} points, family-wise 1e-4, floor 4); a trajectory that "
              "diverges within T counts as +inf (fails); MSGD only for η <= (1-β)²/(4L)"),
        sizes=_sizes(cfg))


def figure_bound(ev, verdict, path):
    fig, (ax, ax2) = new_figure("sngm.bound", 2, title="measured / derived bound (C = last budget)")
    bs, etas = np.asarray(ev["batch_sizes"]), np.asarray(ev["etas"])
    sm, sb = np.asarray(ev["sngm_mean"], float)[-1], np.asarray(ev["sngm_bound"], float)[-1]
    for j, b in enumerate(bs):
        ax.plot(etas[0], sb[j], "-", color=f"C{j % 10}", lw=1)
        ax.plot(etas[0], sm[j], "o", color=f"C{j % 10}", ms=3, label=f"B={b}")
    ax.set_xscale("log"); ax.set_yscale("log")
    ax.set_xlabel("η (SNGM)"); ax.set_ylabel("avg E‖∇F‖: bound (lines), MC (markers)")
    ax.legend(fontsize=6, ncol=2)
    in_cap = np.asarray(ev["msgd_in_cap"], bool)
    mm, mb = np.asarray(ev["msgd_mean_sq"], float)[-1], np.asarray(ev["msgd_bound"], float)[-1]
    for j, b in enumerate(bs):
        ax2.plot(etas[1][in_cap], mb[j][in_cap], "-", color=f"C{j % 10}", lw=1)
        ax2.plot(etas[1][in_cap], mm[j][in_cap], "o", color=f"C{j % 10}", ms=3)
    ax2.set_xscale("log"); ax2.set_yscale("log")
    ax2.set_xlabel("η (MSGD, within cap)"); ax2.set_ylabel("avg E‖∇F‖²: bound (lines), MC (markers)")
    ax2.set_title(verdict.status, fontsize=9)
    save(fig, path)


# ============================================================ sngm.bmax_linear_in_C
def run_bmax_linear(cfg, *, key):
    out = {}
    for name, sub in cfg["testbeds"].items():
        c = dict(cfg, **sub)
        res = _sweep(c, key, c["x0"])
        s = _summary(res, c["eps"])
        out.update({f"{name}/{k}": v for k, v in s.items()})
    out["testbed_names"] = list(cfg["testbeds"])
    return out


def _grid_steps(b1, b2, grid):
    grid = list(np.asarray(grid))
    return grid.index(b2) - grid.index(b1)


def verdict_bmax_linear(ev, cfg):
    rows, ok_all, any_censored = [], True, False
    for name in ev["testbed_names"]:
        bm = np.asarray(ev[f"{name}/b_max"])       # (budget, method)
        grid = np.asarray(ev[f"{name}/batch_sizes"])
        for m, meth in enumerate(ev[f"{name}/methods"]):
            b1, b4 = int(bm[0, m]), int(bm[1, m])
            censored = b1 in (0, grid[-1]) or b4 in (0, grid[-1])
            any_censored |= censored
            # factor 4 = two grid steps; allowed 1..3 steps (within one grid step of 4x)
            ok = (not censored) and 1 <= _grid_steps(b1, b4, grid) <= 3
            ok_all &= ok
            rows.append(f"{name}/{meth}: {b1} -> {b4}")
    status = "inconclusive" if any_censored else ("confirmed" if ok_all else "refuted")
    return Verdict(
        claim_id="sngm.bmax_linear_in_C", status=status,
        summary="B_max(ε, C) -> B_max(ε, 4C): " + "; ".join(rows),
        measured=dict(rows=rows), predicted=dict(ratio=4, eps=cfg["eps"]),
        rule=("B_max = largest grid B (powers of 2) whose best η gives median-over-seeds tail "
              "metric <= ε; confirmed iff for every (testbed, method) B_max(4C)/B_max(C) ∈ {2, 4, 8} "
              "(within one grid step of 4); inconclusive if any B_max is censored (0 or the top "
              "of the grid)"),
        sizes=_sizes(cfg))


def figure_bmax_linear(ev, verdict, path):
    fig, (ax, ax2) = new_figure("sngm.bmax_linear_in_C", 2, title="B_max vs C; steps to ε vs B")
    for i, name in enumerate(ev["testbed_names"]):
        cs, bm = np.asarray(ev[f"{name}/budgets"]), np.asarray(ev[f"{name}/b_max"])
        for m, meth in enumerate(ev[f"{name}/methods"]):
            ax.plot(cs, np.maximum(bm[:, m], 0.5), "o-" if meth == "sngm" else "s--",
                    color=f"C{2 * i + m}", label=f"{name} {meth}")
        ax.plot(cs, bm[0].max() * cs / cs[0], ":", color="gray", lw=1)
    ax.set_xscale("log", base=2); ax.set_yscale("log", base=2)
    ax.set_xlabel("budget C"); ax.set_ylabel("B_max(ε, C)  (dotted: ∝ C)")
    ax.legend(fontsize=7); ax.set_title(verdict.status, fontsize=9)
    for i, name in enumerate(ev["testbed_names"]):
        st = np.asarray(ev[f"{name}/steps_to_eps"], float)[-1]  # (method, B) at the largest C
        for m, meth in enumerate(ev[f"{name}/methods"]):
            ax2.plot(ev[f"{name}/batch_sizes"], np.where(np.isfinite(st[m]), st[m], np.nan),
                     "o-" if meth == "sngm" else "s--", color=f"C{2 * i + m}", label=f"{name} {meth}")
    ax2.set_xscale("log", base=2); ax2.set_yscale("log")
    ax2.set_xlabel("B"); ax2.set_ylabel(f"median steps to ‖∇F‖ <= ε = {verdict.predicted['eps']:g} at best η")
    ax2.set_title("largest C per testbed; missing: not reached", fontsize=8); ax2.legend(fontsize=7)
    save(fig, path)


# ============================================================== sngm.lsmooth_parity
def run_parity(cfg, *, key):
    res = _sweep(cfg, key, cfg["x0"])
    return _summary(res, cfg["eps"])


def verdict_parity(ev, cfg):
    bm = np.asarray(ev["b_max"])  # (budget, method)
    grid = np.asarray(ev["batch_sizes"])
    censored = np.any((bm == 0) | (bm == grid[-1]))
    ratios = [float(bm[i, 0] / bm[i, 1]) if bm[i, 1] else float("inf") for i in range(len(bm))]
    ok = all(0.5 <= r <= 2 for r in ratios)
    status = "confirmed" if ok else ("inconclusive" if censored else "refuted")
    return Verdict(
        claim_id="sngm.lsmooth_parity", status=status,
        summary=(f"L-smooth, ε = {cfg['eps']}: B_max SNGM/MSGD = "
                 + ", ".join(f"{int(bm[i, 0])}/{int(bm[i, 1])} at C = {int(c)}"
                             for i, c in enumerate(ev["budgets"]))),
        measured=dict(b_max=bm, ratios=ratios), predicted=dict(ratio_range=[0.5, 2]),
        rule=("confirmed iff B_max(SNGM)/B_max(MSGD) ∈ [1/2, 2] at every budget; otherwise "
              "inconclusive if a B_max is censored (0 or top of grid), else refuted"),
        sizes=_sizes(cfg))


def figure_parity(ev, verdict, path):
    mt = np.asarray(ev["median_tail"], float)[-1]  # (method, B, η)
    fig, axes = new_figure("sngm.lsmooth_parity", 3, width=4.2,
                           title=f"median tail ‖∇F‖, C = {int(ev['budgets'][-1])}")
    for m, meth in enumerate(ev["methods"]):
        im = axes[m].imshow(np.log10(np.minimum(mt[m], 1e3)), aspect="auto", origin="lower",
                            cmap="viridis")
        axes[m].set_yticks(range(len(ev["batch_sizes"])), [str(b) for b in ev["batch_sizes"]])
        axes[m].set_xticks(range(0, mt.shape[-1], 3),
                           [f"{e:.0e}" for e in np.asarray(ev["etas"])[m][::3]], fontsize=6)
        axes[m].set_xlabel(f"η ({meth})"); axes[m].set_ylabel("B")
        fig.colorbar(im, ax=axes[m], label="log10 median tail")
    st = np.asarray(ev["steps_to_eps"], float)[-1]
    for m, meth in enumerate(ev["methods"]):
        axes[2].plot(ev["batch_sizes"], np.where(np.isfinite(st[m]), st[m], np.nan), "o-", label=meth)
    axes[2].set_xscale("log", base=2); axes[2].set_yscale("log")
    axes[2].set_xlabel("B"); axes[2].set_ylabel(f"steps to ‖∇F‖ <= ε (granularity {ev['record_every']})")
    axes[2].legend(); axes[2].set_title(verdict.status, fontsize=9)
    save(fig, path)


# ============================================================ sngm.relaxed_advantage
def run_relaxed(cfg, *, key):
    out = dict(x0s=list(cfg["x0s"]))
    for x0 in cfg["x0s"]:
        res = _sweep(cfg, key, x0)
        s = _summary(res, cfg["eps"])
        out.update({f"x0={x0:g}/{k}": v for k, v in s.items()})
        out[f"x0={x0:g}/heavy_ball_cap"] = th.heavy_ball_cap(cfg["beta"], th.l0l1_lambda_max(x0))
    return out


def verdict_relaxed(ev, cfg):
    x0s = ev["x0s"]
    grid = np.asarray(ev[f"x0={x0s[0]:g}/batch_sizes"])
    ratios, rows, censored, near = [], [], False, []
    for x0 in x0s:
        p = f"x0={x0:g}/"
        bm = np.asarray(ev[p + "b_max"])[-1]  # last budget: (method,)
        bs_, bm_ = int(bm[0]), int(bm[1])
        censored |= (bs_ == grid[-1]) or (bs_ == 0 and bm_ == 0)
        ratios.append(np.inf if bm_ == 0 and bs_ > 0 else (bs_ / bm_ if bm_ else np.nan))
        # MSGD's best η at its B_max (at the smallest B if none qualifies) vs the cap
        j = int(np.nonzero(grid == bm_)[0][0]) if bm_ else 0
        eta_best = float(np.asarray(ev[p + "best_eta"])[-1, 1, j])
        cap = ev[p + "heavy_ball_cap"]
        near.append(abs(np.log2(eta_best / cap)) <= 2)
        rows.append(f"x0={x0:g}: {bs_} vs {bm_}, MSGD best η {eta_best:.2g} (cap {cap:.2g})")
    r = np.asarray(ratios, float)
    grows = bool(np.all(np.diff(np.nan_to_num(r, nan=-1)) >= 0) and r[-1] > r[0])
    ok = bool(r[-1] >= 4 and grows and all(near))
    status = "confirmed" if ok else ("inconclusive" if censored or np.isnan(r).any() else "refuted")
    return Verdict(
        claim_id="sngm.relaxed_advantage", status=status,
        summary=(f"(L0,L1) testbed, ε = {cfg['eps']}, C = {int(cfg['budgets'][-1])}: B_max SNGM vs MSGD "
                 + "; ".join(rows)),
        measured=dict(ratios=[float(x) for x in r], msgd_best_eta_near_cap=near, rows=rows),
        predicted=dict(ratio_at_largest_x0=">= 4", grows_with_x0=True, eps=cfg["eps"],
                       heavy_ball_caps=[ev[f"x0={x:g}/heavy_ball_cap"] for x in x0s]),
        rule=("at the largest budget: confirmed iff B_max(SNGM)/B_max(MSGD) >= 4 at the largest x0 "
              "(MSGD B_max = 0 with SNGM > 0 counts as infinite), the ratio is non-decreasing in x0 "
              "and larger at the largest x0 than at the smallest, and at every x0 MSGD's best η (at "
              "its B_max) is within a factor 4 of 2(1+β)/λ_max(w0); inconclusive if SNGM's B_max is "
              "censored at the grid top or neither method reaches ε; else refuted"),
        sizes=_sizes(cfg))


def _tail_heatmaps(axes, ev, prefix, eps, fig):
    """Median-over-seeds tail metric over (B, η) per method at the largest budget (log10
    colour, one scale for both methods); white contour: median tail = ε (B_max's level)."""
    mt = np.asarray(ev[prefix + "median_tail"], float)[-1]  # (method, B, η)
    finite = np.log10(np.clip(mt, 1e-3, 1e3))
    lo, hi = float(np.min(finite)), float(np.max(finite))
    bs, etas = np.asarray(ev[prefix + "batch_sizes"]), np.asarray(ev[prefix + "etas"], float)
    for m, meth in enumerate(ev[prefix + "methods"]):
        ax = axes[m]
        im = ax.imshow(finite[m], aspect="auto", origin="lower", cmap="viridis", vmin=lo, vmax=hi)
        if np.any(mt[m] <= eps) and np.any(mt[m] > eps):
            ax.contour(finite[m], levels=[np.log10(eps)], colors="w", linewidths=1.2, linestyles="solid")
        ax.set_yticks(range(len(bs)), [str(int(b)) for b in bs])
        step = max(1, len(etas[m]) // 4)
        ax.set_xticks(range(0, len(etas[m]), step), [f"{e:.0e}" for e in etas[m][::step]], fontsize=7)
        ax.set_xlabel(f"η ({meth})"); ax.set_ylabel("B"); ax.grid(False)
        ax.set_title(f"{meth}: log10 median tail ‖∇F‖ (white: = ε)", fontsize=8)
    fig.colorbar(im, ax=axes[len(ev[prefix + "methods"]) - 1], label="log10 median tail (clipped to [-3, 3])")


def figure_relaxed(ev, verdict, path):
    x0s = ev["x0s"]
    fig, (ax, ax2, ax3, ax4) = new_figure(
        "sngm.relaxed_advantage", 4, width=4.2,
        title=f"(L0, L1)-smooth testbed; heat maps at x0 = {x0s[-1]:g}, C = {int(np.asarray(ev[f'x0={x0s[-1]:g}/budgets'])[-1])}")
    for m, meth in enumerate(("sngm", "msgd")):
        bm = [np.asarray(ev[f"x0={x:g}/b_max"])[-1, m] for x in x0s]
        ax.plot(x0s, np.maximum(bm, 0.5), "o-", label=meth)
    ax.set_yscale("log", base=2); ax.set_xlabel("x0"); ax.set_ylabel("B_max (0 drawn as 1/2)")
    ax.legend(); ax.set_title(verdict.status, fontsize=9)
    for i, x in enumerate(x0s):
        p = f"x0={x:g}/"
        mt = np.asarray(ev[p + "median_tail"], float)[-1, 1]  # (B, η) MSGD
        etas = np.asarray(ev[p + "etas"])[1]
        ax2.plot(etas, np.minimum(mt.min(axis=0), 1e3), "o-", color=f"C{i}", label=f"x0={x:g}")
        ax2.axvline(ev[p + "heavy_ball_cap"], color=f"C{i}", ls=":")
    ax2.set_xscale("log"); ax2.set_yscale("log")
    ax2.set_xlabel("η (MSGD); dotted: 2(1+β)/λ_max(w0)"); ax2.set_ylabel("min over B of median tail")
    ax2.legend()
    _tail_heatmaps([ax3, ax4], ev, f"x0={x0s[-1]:g}/", verdict.predicted["eps"], fig)
    save(fig, path)


# ============================================================ sngm.no_lower_batch_limit
def run_no_lower(cfg, *, key):
    _validate(dict(cfg, batch_sizes=[1]))
    tb = make_smooth_testbed(cfg["testbed"], x0=cfg["x0"], d=cfg["d"])
    etas = np.geomspace(*cfg["sngm_eta_range"], cfg["n_eta"])
    res = sw.sweep(tb, batch_sizes=[1], budgets=cfg["budgets"], etas=etas[None], methods=("sngm",),
                   key=subkey(key, "no_lower"), beta=cfg["beta"], sigma=cfg["sigma"],
                   n_seeds=cfg["n_seeds"])
    tail = res.tail[-1, 0, 0]  # (η, seed)
    window = th.sngm_batch_window(cfg["eps"], cfg["beta"], cfg["budgets"][-1], th.LSMOOTH_L,
                                  th.lsmooth_delta(cfg["x0"], cfg["d"]), cfg["sigma"])
    return dict(etas=etas, tail=tail, median_tail=np.median(tail, axis=-1),
                bound_batch_low=window.low, wall_seconds=res.wall_seconds,
                compilations=res.compilations, steps_to_eps=res.steps_to_eps(cfg["eps"])[-1, 0, 0])


def verdict_no_lower(ev, cfg):
    med = np.asarray(ev["median_tail"], float)
    tail = np.asarray(ev["tail"], float)
    i = int(np.argmin(med))
    k, n = int(np.sum(tail[i] <= cfg["eps"])), tail.shape[1]
    _, lo, hi = stats.wilson_interval(k, n)
    ok = bool(med[i] <= cfg["eps"])
    return Verdict(
        claim_id="sngm.no_lower_batch_limit", status="confirmed" if ok else "refuted",
        summary=(f"SNGM at B = 1 (bound needs B >= 16σ²/ε² = {ev['bound_batch_low']:.0f}), "
                 f"C = {int(cfg['budgets'][-1])}: best median tail ‖∇F‖ = {med[i]:.3f} at η = "
                 f"{ev['etas'][i]:.2g} vs ε = {cfg['eps']}; {k}/{n} seeds <= ε (95% Wilson "
                 f"[{lo:.2f}, {hi:.2f}]); median steps to ε {ev['steps_to_eps']}"),
        measured=dict(best_median_tail=float(med[i]), best_eta=float(ev["etas"][i]),
                      seeds_below_eps=k, n_seeds=n),
        predicted=dict(eps=cfg["eps"], bound_batch_low=ev["bound_batch_low"]),
        rule="confirmed iff some η on the grid gives median (over seeds) tail metric <= ε at B = 1; else refuted",
        sizes=_sizes(cfg))


def figure_no_lower(ev, verdict, path):
    fig, (ax,) = new_figure("sngm.no_lower_batch_limit", title="SNGM at B = 1")
    etas, tail = np.asarray(ev["etas"]), np.asarray(ev["tail"], float)
    ax.plot(etas, np.asarray(ev["median_tail"]), "o-", label="median over seeds")
    ax.plot(np.repeat(etas, tail.shape[1]), tail.ravel(), ".", color="gray", ms=2, label="seeds")
    ax.axhline(verdict.predicted["eps"], color="k", ls=":", label="ε")
    ax.set_xscale("log"); ax.set_yscale("log")
    ax.set_xlabel("η"); ax.set_ylabel("tail metric (last 25% of iterates)")
    ax.legend(); ax.set_title(verdict.status, fontsize=9)
    save(fig, path)


# ============================================================== sngm.test_accuracy
def _acc_etas(cfg):
    """(method, η) log grids, one per method of :data:`digits_mlp.METHODS`."""
    n_eta = check.integer_at_least("n_eta", cfg["n_eta"], 2)
    for m in dm.METHODS:
        lo, hi = (check.positive(f"eta_ranges[{m!r}]", e) for e in cfg["eta_ranges"][m])
        if hi <= lo:
            check.fail(f"eta_ranges[{m!r}]", hi, f"an upper end > the lower end {lo:g}")
    return np.stack([np.geomspace(*cfg["eta_ranges"][m], n_eta) for m in dm.METHODS])


def run_test_accuracy(cfg, *, key):
    """Tune η per method on the validation split, then measure test accuracy at the tuned
    η on held-out seeds: one engine call trains every (method, η) on n_tune + n_eval seeds
    (common random numbers: seed s has the same init and minibatches for every method and
    η). Seeds [0, n_tune) select η (mean validation accuracy); seeds [n_tune, n_tune +
    n_eval) give the test accuracies at the selected η, paired across methods."""
    sw.check_beta(cfg["beta"])
    n_tune = check.integer_at_least("n_tune_seeds", cfg["n_tune_seeds"], 1)
    n_eval = check.integer_at_least("n_eval_seeds", cfg["n_eval_seeds"], 2)
    check.positive("margin", cfg["margin"])
    check.in_range("confidence", cfg["confidence"], 0.0, 1.0, closed_low=False)
    tb = dm.make_digits_mlp(cfg["batch_size"], width=cfg["width"], split_seed=cfg["split_seed"])
    etas = _acc_etas(cfg)
    out = dm.train_grid(tb, etas, key=subkey(key, "digits"), beta=cfg["beta"],
                        n_steps=cfg["n_steps"], n_seeds=n_tune + n_eval)
    val, test = out["val"][..., :n_tune], out["test"][..., n_tune:]   # (method, η, seed)
    best = np.argmax(val.mean(axis=-1), axis=-1)                     # (method,)
    return dict(methods=list(dm.METHODS), etas=etas, val=val, test=test, best_index=best,
                best_eta=etas[np.arange(len(best)), best],
                test_at_best=test[np.arange(len(best)), best],          # (method, n_eval)
                n_diverged=out["diverged"].sum(-1), n_train=tb.n_train,
                gradient_computations=cfg["n_steps"] * cfg["batch_size"],
                wall_seconds=out["wall_seconds"], compilations=out["compilations"])


def _compare(diff, margin, confidence):
    """Paired-difference CI and its class: worse (CI below 0), non-inferior (CI above
    −margin and not below 0), undecided (the CI reaches below −margin and above 0)."""
    mean, lo, hi = stats.mean_ci(diff, confidence)
    cls = "worse" if hi < 0 else ("non-inferior" if lo >= -margin else "undecided")
    return float(mean), float(lo), float(hi), cls


def verdict_test_accuracy(ev, cfg):
    methods = list(ev["methods"])
    acc = np.asarray(ev["test_at_best"], float)
    best, etas = np.asarray(ev["best_index"], int), np.asarray(ev["etas"], float)
    n_cmp = len(methods) - 1
    conf = 1 - (1 - cfg["confidence"]) / n_cmp  # Bonferroni over the baselines
    rows, classes, measured = [], [], {}
    for b in range(1, len(methods)):
        mean, lo, hi, cls = _compare(acc[0] - acc[b], cfg["margin"], conf)
        classes.append(cls)
        rows.append(f"SNGM − {methods[b].upper()} = {100 * mean:+.2f} pp [{100 * lo:+.2f}, {100 * hi:+.2f}] "
                    f"({cls}{', SNGM better' if lo > 0 else ''})")
        measured[f"diff_vs_{methods[b]}"] = dict(mean=mean, low=lo, high=hi, result=cls, superior=lo > 0)
    edge = [m for i, m in enumerate(methods) if best[i] in (0, etas.shape[1] - 1)]
    if edge:
        status = "inconclusive"
    elif "worse" in classes:
        status = "refuted"
    else:
        status = "confirmed" if all(c == "non-inferior" for c in classes) else "inconclusive"
    per = "; ".join(f"{m.upper()} {100 * acc[i].mean():.2f}% (η = {etas[i, best[i]]:.3g})"
                    for i, m in enumerate(methods))
    return Verdict(
        claim_id="sngm.test_accuracy", status=status,
        summary=(f"digits MLP, B = {cfg['batch_size']} of n = {ev['n_train']}, T = {cfg['n_steps']} "
                 f"steps, {acc.shape[1]} held-out seeds: test accuracy {per}; " + "; ".join(rows)
                 + (f"; tuned η at the grid edge for {edge}" if edge else "")),
        measured=dict(measured, test_accuracy_mean={m: float(acc[i].mean()) for i, m in enumerate(methods)},
                      diverged_runs=int(np.sum(ev["n_diverged"])),
                      tuned_eta={m: float(etas[i, best[i]]) for i, m in enumerate(methods)},
                      tuned_eta_at_grid_edge=edge),
        predicted=dict(sngm_minus_baseline=">= 0 (SNGM's test accuracy >= MSGD's and LARS's)",
                       margin=cfg["margin"]),
        rule=(f"η per method = argmax over its log grid of the mean validation accuracy over "
              f"{cfg['n_tune_seeds']} tuning seeds; test accuracy at that η on {cfg['n_eval_seeds']} "
              "other seeds, paired across methods (same init and minibatches per seed); a run "
              "that becomes non-finite counts as accuracy 0. For each baseline, Student-t CI of "
              f"the mean paired difference SNGM − baseline at confidence {conf:.4g} (family "
              f"{cfg['confidence']:g}, Bonferroni over {n_cmp} baselines): 'worse' if the CI is "
              f"below 0, 'non-inferior' if its lower end is >= −{100 * cfg['margin']:g} pp (margin "
              "decided before the runs) and it is not below 0, else 'undecided'. Confirmed iff "
              "non-inferior to every baseline; refuted iff worse than any; else inconclusive, and "
              "inconclusive whenever a tuned η sits at an end of its grid (tuning censored)"),
        sizes=dict(_sizes(cfg), weight_decay="none (all three methods)",
                   minibatches="B indices uniform with replacement from the training split",
                   accuracy="of the final iterate w_T"))


def figure_test_accuracy(ev, verdict, path):
    methods = list(ev["methods"])
    fig, (ax, ax2, ax3) = new_figure("sngm.test_accuracy", 3, width=4.3,
                                     title="digits MLP at a large batch")
    etas, val = np.asarray(ev["etas"], float), np.asarray(ev["val"], float)
    acc, best = np.asarray(ev["test_at_best"], float), np.asarray(ev["best_index"], int)
    for i, m in enumerate(methods):
        mean, lo, hi = np.array([stats.mean_ci(v) for v in val[i]]).T
        ax.plot(etas[i], mean, "o-", color=f"C{i}", ms=3, label=m.upper())
        ax.fill_between(etas[i], np.clip(lo, 0, 1), np.clip(hi, 0, 1), color=f"C{i}", alpha=0.2)
        ax.plot(etas[i, best[i]], mean[best[i]], "*", color=f"C{i}", ms=12, mec="k")
    ax.set_xscale("log"); ax.set_ylim(0.8, 1.0)
    ax.set_xlabel("η (own grid per method; ★ tuned)")
    ax.set_ylabel("validation accuracy (tuning seeds, 95% CI)")
    ax.set_title("tuning curves (below 0.8: off the axis)", fontsize=8)
    ax.legend(loc="upper left", ncol=3, fontsize=7)
    for i, m in enumerate(methods):
        mean, lo, hi = stats.mean_ci(acc[i])
        ax2.errorbar([i], [mean], yerr=[[mean - lo], [hi - mean]], fmt="o", color=f"C{i}", capsize=5)
        ax2.plot(np.full(acc.shape[1], i) + np.linspace(-0.15, 0.15, acc.shape[1]), acc[i], ".",
                 color="gray", ms=4)
    ax2.set_xticks(range(len(methods)), [m.upper() for m in methods]); ax2.set_xlim(-0.5, len(methods) - 0.5)
    ax2.set_ylabel("test accuracy at tuned η (95% CI; dots: seeds)")
    for j, m in enumerate(methods[1:]):
        d = verdict.measured[f"diff_vs_{m}"]
        diff = 100 * (acc[0] - acc[j + 1])
        ax3.errorbar([j], [100 * d["mean"]], yerr=[[100 * (d["mean"] - d["low"])], [100 * (d["high"] - d["mean"])]],
                     fmt="o", color="k", capsize=5)
        ax3.plot(np.full(diff.size, j) + np.linspace(-0.15, 0.15, diff.size), diff, ".", color="gray", ms=4)
    ax3.axhline(0, color="k", lw=1)
    ax3.axhline(-100 * verdict.predicted["margin"], color="C3", ls=":", label="−margin")
    ax3.set_xticks(range(len(methods) - 1), [f"SNGM − {m.upper()}" for m in methods[1:]])
    ax3.set_xlim(-0.5, len(methods) - 1.5)
    ax3.set_ylabel("SNGM − baseline, test accuracy (pp)")
    ax3.set_xlabel("paired over seeds; Bonferroni CI")
    ax3.legend(); ax3.set_title(verdict.status, fontsize=9)
    save(fig, path)


# ===================================================================== registration
_LS = dict(testbed="lsmooth", x0=3.0, d=10, sigma=1.0, beta=0.9, eps=0.2,
           sngm_eta_range=(1e-3, 1.0), msgd_eta_range=(1e-5, 1.0))
QUICK_LS = dict(_LS, batch_sizes=[4, 8, 16, 32, 64, 128, 256], budgets=[2 ** 10, 2 ** 12],
                n_eta=8, n_seeds=4)
FULL_LS = dict(_LS, batch_sizes=[4, 8, 16, 32, 64, 128, 256, 512], budgets=[2 ** 12, 2 ** 14],
               n_eta=16, n_seeds=8)
_L01 = dict(testbed="l0l1", x0=12.0, sngm_eta_range=(1e-3, 1.0), msgd_eta_range=(1e-6, 1e-1))
QUICK_L01 = dict(_LS, **_L01, batch_sizes=[1, 2, 4, 8, 16, 32, 64, 128], budgets=[2 ** 10, 2 ** 12],
                 n_eta=6, n_seeds=3)
FULL_L01 = dict(_LS, **_L01, batch_sizes=[1, 2, 4, 8, 16, 32, 64, 128], budgets=[2 ** 12, 2 ** 14],
                n_eta=10, n_seeds=4)

register(Claim(
    id="sngm.bound", paper=PAPER, kind=THEOREM,
    statement=("On the L-smooth testbed, for every (B, η): (1/T)Σ E‖∇F(w_t)‖ <= (1-β)Δ/(ηT) + "
               "(1+β)Lη/(2(1-β)²) + 2σ/√B for SNGM, and (1/T)Σ E‖∇F‖² <= 4(1-β)Δ/(ηT) + "
               "c_β Lησ²/((1-β)B) for MSGD with η <= (1-β)²/(4L), T = C/B (derived)."),
    configs={"quick": QUICK_LS, "full": FULL_LS},
    run=run_bound, verdict=verdict_bound, figure=figure_bound))

register(Claim(
    id="sngm.bmax_linear_in_C", paper=PAPER, kind=HYPOTHESIS,
    statement="B_max(ε, 4C) ≈ 4 B_max(ε, C) within one grid step, both methods, both testbeds.",
    configs={"quick": dict(QUICK_LS, testbeds={"lsmooth": {}, "l0l1": QUICK_L01}),
             "full": dict(FULL_LS, testbeds={"lsmooth": {}, "l0l1": FULL_L01})},  # l0l1: x0 = 12
    run=run_bmax_linear, verdict=verdict_bmax_linear, figure=figure_bmax_linear))

register(Claim(
    id="sngm.lsmooth_parity", paper=PAPER, kind=HYPOTHESIS,
    statement="Under L-smoothness B_max(SNGM)/B_max(MSGD) ∈ [1/2, 2].",
    configs={"quick": QUICK_LS, "full": FULL_LS},
    run=run_parity, verdict=verdict_parity, figure=figure_parity))

register(Claim(
    id="sngm.relaxed_advantage", paper=PAPER, kind=HYPOTHESIS,
    statement=("On the (L0, L1)-smooth testbed from a far start, B_max(SNGM)/B_max(MSGD) >= 4 and grows "
               "with x0; MSGD's best η sits near the heavy-ball cap 2(1+β)/λ_max(w0)."),
    configs={"quick": dict(QUICK_L01, x0s=[6.0, 9.0, 12.0]), "full": dict(FULL_L01, x0s=[6.0, 9.0, 12.0])},
    run=run_relaxed, verdict=verdict_relaxed, figure=figure_relaxed))

register(Claim(
    id="sngm.no_lower_batch_limit", paper=PAPER, kind=HYPOTHESIS,
    statement="SNGM at B = 1 reaches tail metric <= ε: the bound's B >= 16σ²/ε² is not needed.",
    configs={"quick": dict(_LS, budgets=[2 ** 12], n_eta=8, n_seeds=4),
             "full": dict(_LS, budgets=[2 ** 14], n_eta=16, n_seeds=8)},
    run=run_no_lower, verdict=verdict_no_lower, figure=figure_no_lower))

_ACC = dict(batch_size=256, width=64, split_seed=0, beta=0.9, margin=0.01, confidence=0.95,
            eta_ranges={"sngm": (1e-3, 1.0), "msgd": (3e-3, 3.0), "lars": (1e-1, 1e2)})
register(Claim(
    id="sngm.test_accuracy", paper=PAPER, kind=HYPOTHESIS,
    statement=("On the digits two-layer network (finite sum, true minibatch sampling) at B = 256 "
               "(about n/4) and the same number of gradient computations, with η tuned per method "
               "on the validation split, SNGM's test accuracy >= MSGD's; optax's LARS as a second "
               "baseline (paper)."),
    configs={"quick": dict(_ACC, n_steps=60, n_eta=6, n_tune_seeds=3, n_eval_seeds=5),
             "full": dict(_ACC, n_steps=300, n_eta=12, n_tune_seeds=4, n_eval_seeds=8)},
    run=run_test_accuracy, verdict=verdict_test_accuracy, figure=figure_test_accuracy))
