"""Figures of the synthetic SNGM claims: the derived bounds as lines over Monte-Carlo
markers, B_max against the budget and the start with its bootstrap interval, tail-metric
heat maps over (B, η) per method, and steps to ε against B.

Error bars of means are 95% Student-t intervals over seeds (the plotting convention); error
bars of B_max are the verdicts' own percentile-bootstrap intervals over seeds, and say so.
"""
from __future__ import annotations

import numpy as np

from simulations import stats
from simulations.plotting import CI_LABEL, ci_halfwidth, heatmap, log2_axes, new_figure, save

_MARK = {"sngm": ("o-", 0), "msgd": ("s--", 1)}


def _b_values(bs, idx):
    """Batch sizes of grid indices, −1 (none reaches ε) drawn at B = 1/2."""
    idx = np.asarray(idx, int)
    return np.where(idx >= 0, np.asarray(bs, float)[np.maximum(idx, 0)], 0.5)


def _steps_panel(ax, summaries, names, eps):
    for i, (name, s) in enumerate(zip(names, summaries)):
        st = s.steps_to_eps[-1]  # (method, B) at the largest budget
        for m, meth in enumerate(s.methods):
            ax.plot(s.batch_sizes, np.where(np.isfinite(st[m]), st[m], np.nan), _MARK[meth][0],
                    color=f"C{2 * i + m}", label=f"{name} {meth}")
    log2_axes(ax, y=False)
    ax.set_yscale("log")
    ax.set_xlabel("B")
    ax.set_ylabel(f"median steps to ‖∇F‖ <= ε = {eps:g} at the best η")
    ax.set_title("largest budget; missing: not reached", fontsize=8)
    ax.legend(fontsize=7)


def _tail_heatmaps(axes, s, eps, fig):
    """log10 median tail metric over (B, η) per method at the largest budget; white: ε."""
    mt = np.log10(np.clip(s.median_tail[-1], 1e-3, 1e3))
    lo, hi = float(mt.min()), float(mt.max())
    for m, meth in enumerate(s.methods):
        heatmap(axes[m], mt[m], rows=[int(b) for b in s.batch_sizes], cols=list(s.etas[m]), fig=fig,
                label="log10 median tail ‖∇F‖", row_name="B", col_name=f"η ({meth})",
                vmin=lo, vmax=hi, contour=np.log10(eps))
        axes[m].set_title(f"{meth}: median tail (white: = ε)", fontsize=8)


# ====================================================================== sngm.bound
def bound(ev, verdict, cfg, path):
    sw = ev.sweep
    fig, (ax, ax2) = new_figure(verdict.claim_id, 2,
                                title=f"measured vs derived bound, C = {int(sw.budgets[-1])} ({verdict.status})")
    n = sw.tail.shape[-1]
    mean, se, _ = stats.mean_stderr(sw.average[-1], axis=-1)      # (method, B, η)
    msq, sesq, _ = stats.mean_stderr(sw.average_sq[-1], axis=-1)
    in_cap = ev.msgd_in_cap.astype(bool)
    for j, b in enumerate(sw.batch_sizes):
        c = f"C{j % 10}"
        ax.plot(sw.etas[0], ev.sngm_bound[-1, j], "-", color=c, lw=1)
        ax.errorbar(sw.etas[0], mean[0, j], yerr=ci_halfwidth(se[0, j], n), fmt="o", ms=3, color=c,
                    capsize=1.5, label=f"B={int(b)}")
        ax2.plot(sw.etas[1][in_cap], ev.msgd_bound[-1, j][in_cap], "-", color=c, lw=1)
        ax2.errorbar(sw.etas[1][in_cap], msq[1, j][in_cap], yerr=ci_halfwidth(sesq[1, j][in_cap], n),
                     fmt="o", ms=3, color=c, capsize=1.5)
    for a in (ax, ax2):
        a.set_xscale("log")
        a.set_yscale("log")
    ax.set_xlabel("η (SNGM)")
    ax.set_ylabel(f"avg E‖∇F‖: bound (1) lines, MC markers ({CI_LABEL})")
    ax.legend(fontsize=6, ncol=2)
    ax2.set_xlabel("η (MSGD, within its cap)")
    ax2.set_ylabel(f"avg E‖∇F‖²: bound (4) lines, MC markers ({CI_LABEL})")
    save(fig, path)


# ============================================================ sngm.bmax_linear_in_C
def bmax_linear(ev, verdict, cfg, path):
    fig, (ax, ax2) = new_figure(verdict.claim_id, 2, title=f"B_max vs C; steps to ε vs B ({verdict.status})")
    names = list(ev.testbed_names)
    for i, name in enumerate(names):
        s = ev[name]
        cs = np.asarray(s.budgets, float)
        for m, meth in enumerate(s.methods):
            iv = np.asarray(s.b_max_interval[m], int)  # (budget, [index, low, high])
            y, lo, hi = (_b_values(s.batch_sizes, iv[:, k]) for k in range(3))
            x = cs * (1.06 if m else 0.94)
            ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt=_MARK[meth][0], color=f"C{2 * i + m}",
                        capsize=3, label=f"{name} {meth}")
        ax.plot(cs, _b_values(s.batch_sizes, s.b_max_index[0]).max() * cs / cs[0], ":", color="gray", lw=1)
    log2_axes(ax)
    ax.set_xlabel("budget C")
    ax.set_ylabel("B_max(ε, C) (½: none reaches ε; dotted ∝ C)")
    ax.set_title(f"bars: {cfg['confidence']:.0%} bootstrap over seeds (the verdict's)", fontsize=8)
    ax.legend(fontsize=7)
    eps = cfg["testbeds"][names[0]]["eps"]
    _steps_panel(ax2, [ev[n] for n in names], names, eps)
    save(fig, path)


# ============================================================== sngm.lsmooth_parity
def parity(ev, verdict, cfg, path):
    s = ev.summary
    fig, axes = new_figure(verdict.claim_id, 3, width=4.3,
                           title=f"L-smooth, C = {int(s.budgets[-1])} ({verdict.status})")
    _tail_heatmaps(axes, s, cfg["sweep"]["eps"], fig)
    _steps_panel(axes[2], [s], ["lsmooth"], cfg["sweep"]["eps"])
    save(fig, path)


# ============================================================ sngm.relaxed_advantage
def relaxed(ev, verdict, cfg, path):
    x0s = list(ev.x0s)
    last = ev.sweeps[-1]
    fig, (ax, ax2, ax3, ax4) = new_figure(
        verdict.claim_id, 4, width=4.2,
        title=f"(L0, L1)-smooth; heat maps at x0 = {x0s[-1]:g}, C = {int(last.budgets[-1])} ({verdict.status})")
    for m, meth in enumerate(last.methods):
        bm = [int(s.b_max[-1, m]) for s in ev.sweeps]
        ax.plot(x0s, np.where(np.asarray(bm) > 0, bm, 0.5), _MARK[meth][0], label=meth)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("x0")
    ax.set_ylabel("B_max at the largest C (½: none reaches ε)")
    ax.legend()
    for k, (x0, s) in enumerate(zip(x0s, ev.sweeps)):
        ax2.plot(s.etas[1], np.minimum(s.median_tail[-1, 1].min(axis=0), 1e3), "o-", color=f"C{k}",
                 label=f"x0={x0:g}")
        ax2.axvline(ev.heavy_ball_cap[k], color=f"C{k}", ls=":")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("η (MSGD); dotted: 2(1+β)/λ_max(w0)")
    ax2.set_ylabel("min over B of the median tail")
    ax2.legend(fontsize=7)
    _tail_heatmaps([ax3, ax4], last, cfg["sweep"]["eps"], fig)
    save(fig, path)


# ============================================================ sngm.no_lower_batch_limit
def no_lower(ev, verdict, cfg, path):
    fig, (ax,) = new_figure(verdict.claim_id, title=f"SNGM at B = 1 ({verdict.status})")
    etas, tail = ev.etas, ev.tail
    ax.plot(etas, np.median(tail, axis=-1), "o-", label="median over seeds")
    ax.plot(np.repeat(etas, tail.shape[1]), tail.ravel(), ".", color="gray", ms=2, label="seeds")
    ax.axhline(cfg["eps"], color="k", ls=":", label="ε")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("η")
    ax.set_ylabel("tail metric (mean ‖∇F‖ over the last 25% of iterates)")
    ax.legend()
    save(fig, path)
