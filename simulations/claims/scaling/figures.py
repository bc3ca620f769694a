"""Figures of the batch-size frame: theory (closed form) as lines, Monte Carlo as markers
with the stated intervals, steps to target vs batch size on log-log axes."""
from __future__ import annotations

import numpy as np

from simulations.claims.scaling.runs import REG_LABELS
from simulations.claims.scaling.runs_nqm import LABELS
from simulations.plotting import errorbars, log2_axes, new_figure, save
from theory import scaling as th

COLORS = {"sgd": "C0", "momentum": "C1", "msgd": "C1", "preconditioned": "C2", "ema": "C4", "sngm": "C3",
          "label_noise": "C5", "covnoise": "C7", "lamb": "C2"}


def _finite(x):
    x = np.asarray(x, np.float64)
    return np.where(np.isfinite(x), x, np.nan)


def _bcrit_mark(ax, iv, y, color):
    """B_crit's estimate (▲) and bootstrap interval (bar) at height y."""
    est, lo, hi = (2.0 ** np.clip(np.asarray(iv, np.float64), -30, 30))
    if np.isfinite(est):
        ax.plot([est], [y], "^", color=color, ms=7, mec="k", zorder=6)
        ax.plot([lo, hi], [y, y], "-", color=color, lw=2.5, alpha=0.6)


# ======================================================== scaling.estimators_unbiased
def estimators(ev, verdict, cfg, path):
    fig, (ax, ax2) = new_figure(verdict.claim_id, 2, width=5.2, title=f"two-batch estimators ({verdict.status})")
    names = ["|G|²", "tr Σ", "GᵀHG", "tr(HΣ)"]
    for k, name in enumerate(ev.testbeds):
        t = ev[name]
        z = (t.mean - t.exact) / t.se
        ax.bar(np.arange(4) + 0.35 * k, z, width=0.35, color=f"C{k}", label=name)
        comb = t.combination_mean / t.combination_se
        ax.bar(np.arange(4, 6) + 0.35 * k, comb, width=0.35, color=f"C{k}", hatch="//")
    ax.axhline(ev.critical, color="C3", ls="--", label=f"± t = {ev.critical:.2f} (family-wise)")
    ax.axhline(-ev.critical, color="C3", ls="--")
    ax.set_xticks(np.arange(6) + 0.17, names + ["B_simple", "B_noise"])
    ax.set_ylabel("(mean of estimates − exact)/SE")
    ax.set_title(f"{ev.n_pairs} pairs, B_small = {ev.b_small}, B_big = {ev.b_big} (hatched: B from the means)",
                 fontsize=8)
    ax.set_ylim(-1.6 * ev.critical, 1.6 * ev.critical)
    ax.legend(fontsize=7, loc="lower left", ncol=3)
    for k, name in enumerate(ev.testbeds):
        t = ev[name]
        ax2.plot([0, 1], t.ratio_exact, "_", ms=30, mew=2, color=f"C{k}", label=f"{name}: exact")
        ax2.plot([0, 1], t.ratio_mean, "o", color=f"C{k}", label=f"{name}: from the estimates")
    ax2.set_xticks([0, 1], ["B_simple = tr Σ/|G|²", "B_noise = tr(HΣ)/GᵀHG"])
    ax2.set_yscale("log")
    ax2.set_xlim(-0.5, 1.5)
    ax2.set_ylabel("noise scale (examples)")
    ax2.legend(fontsize=7)
    save(fig, path)


# ============================================================ scaling.nqm_closed_form
def nqm_closed_form(ev, verdict, cfg, path):
    n = ev.nqm
    bs = n.batch_sizes
    fig, (ax, ax2) = new_figure(verdict.claim_id, 2, width=5.4,
                                title=f"NQM: exact recursion vs engine Monte Carlo ({verdict.status})")
    picks = [0, len(bs) // 2, len(bs) - 1]
    for i, v in enumerate(n.variants):
        for j, ls in zip(picks, ("-", "--", ":")):
            ax.plot(n.curve_steps + 1, n.curve_exact[i, j], ls, color=COLORS[v], lw=1,
                    label=f"{LABELS[v]}" if j == picks[0] else None)
            ax.plot(n.curve_steps + 1, n.curve_mean[i, j], ".", color=COLORS[v], ms=2.5)
    ax.axhline(n.target, color="k", lw=0.8, label="target")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step t + 1")
    ax.set_ylabel("E L(θ_t) (lines exact, dots MC mean)")
    ax.set_title(f"B = {bs[picks[0]]:g} (solid), {bs[picks[1]]:g} (dashed), {bs[picks[2]]:g} (dotted)", fontsize=8)
    ax.legend(fontsize=7)
    for i, v in enumerate(n.variants):
        ax2.plot(bs, _finite(n.cf_steps[i]), "-", color=COLORS[v], label=f"{LABELS[v]} (exact)")
        lo = _finite(n.mc_steps_early[i])
        hi = np.where(np.isfinite(n.mc_steps_late[i]), n.mc_steps_late[i], n.n_steps * 1.5)
        errorbars(ax2, bs * (1 + 0.05 * (i - 1.5)), _finite(n.mc_steps[i]), lo, hi, color=COLORS[v])
    log2_axes(ax2)
    ax2.set_xlabel("batch size B")
    ax2.set_ylabel("steps to target S(B)")
    ax2.set_title("markers: MC steps with the theorem's interval (open top: off the axis)", fontsize=8)
    ax2.legend(fontsize=7)
    save(fig, path)


# ============================================================== scaling.tradeoff_curve
def tradeoff(ev, verdict, cfg, path):
    n = ev.nqm
    bs = n.batch_sizes
    fig, (ax, ax2, ax3) = new_figure(verdict.claim_id, 3, width=4.6,
                                     title=f"S = S_min(1 + B_crit/B) ({verdict.status})")
    mc = _finite(n.mc_steps[0])
    fit = th.fit_tradeoff(bs, n.mc_steps[0])
    grid = np.geomspace(bs[0], bs[-1], 100)
    ax.plot(bs, mc, "o", color="C0", label="SGD, MC (optimal η per B)")
    ax.plot(bs, _finite(n.cf_steps[0]), "-", color="C0", lw=0.8, alpha=0.6, label="closed form")
    ax.plot(grid, fit["s_min"] + fit["e_min"] / grid, "k--", lw=1, label="fit S_min + E_min/B")
    _bcrit_mark(ax, n.b_crit_log2[0], fit["s_min"] * 0.8, "C0")
    ax.axvline(n.noise_scale_avg, color="C3", ls=":", label=f"trajectory-averaged B_noise = {n.noise_scale_avg:.0f}")
    log2_axes(ax)
    ax.set_xlabel("batch size B")
    ax.set_ylabel("steps to target S")
    ax.set_title("NQM (▲ B_crit with its bootstrap interval)", fontsize=8)
    ax.legend(fontsize=7)
    # the hyperbola (S/S_min − 1)(E/E_min − 1) = 1
    x = np.geomspace(1e-2, 1e2, 100)
    ax2.plot(x, 1 / x, "k-", lw=1, label="(S/S_min − 1)(E/E_min − 1) = 1")
    ok = np.isfinite(mc)
    ax2.plot(mc[ok] / fit["s_min"] - 1, bs[ok] * mc[ok] / fit["e_min"] - 1, "o", color="C0", label="NQM SGD (MC)")
    d = ev.digits_fit
    med = _finite(ev.digits_sgd["median_steps"])
    dbs = ev.digits.batch_sizes.astype(float)
    if np.isfinite(d["s_min"]) and d["s_min"] > 0:
        ok = np.isfinite(med)
        ax2.plot(med[ok] / d["s_min"] - 1, dbs[ok] * med[ok] / d["e_min"] - 1, "s", color="C1", label="digits SGD")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("S/S_min − 1")
    ax2.set_ylabel("E/E_min − 1")
    ax2.set_title("the trade-off curve (points at or below 0 are off the axes)", fontsize=8)
    ax2.legend(fontsize=7)
    steps = ev.digits.steps[:, list(ev.digits.methods).index("sgd")]
    for s in steps:
        ax3.plot(dbs, _finite(s), ".", color="0.6", ms=4)
    ax3.plot(dbs, med, "s-", color="C1", label="SGD, median over splits")
    if np.isfinite(d["s_min"]):
        g = np.geomspace(dbs[0], dbs[-1], 100)
        ax3.plot(g, d["s_min"] + d["e_min"] / g, "k--", lw=1, label="fit")
    _digits_steps_axes(ax3, ev, cfg, "digits network (grey: splits; missing: not reached)")
    save(fig, path)


def _digits_steps_axes(ax, ev, cfg, title):
    """The digits steps-to-target panel's budget markers, axes, labels and legend."""
    dbs = ev.digits.batch_sizes.astype(float)
    ax.plot(dbs, ev.digits.optimizer_steps, "v", color="0.4", label="budget T")
    log2_axes(ax)
    ax.set_xticks(dbs, [str(int(b)) for b in dbs])
    ax.set_xlabel("batch size B")
    ax.set_ylabel(f"steps to {100 * cfg['digits']['target_accuracy']:g}% validation accuracy")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7)


# ============================================================= scaling.nqm_predictions
def predictions(ev, verdict, cfg, path):
    n = ev.nqm
    bs = n.batch_sizes
    fig, (ax, ax2) = new_figure(verdict.claim_id, 2, width=5.4,
                                title=f"which choices matter at which batch size ({verdict.status})")
    for i, v in enumerate(n.variants):
        ax.plot(bs, _finite(n.cf_steps[i]), "-", color=COLORS[v], label=f"{LABELS[v]} (closed form)")
        ax.plot(bs, _finite(n.mc_steps[i]), "o", color=COLORS[v], ms=3.5)
        _bcrit_mark(ax, [np.log2(n.cf_fit[v]["b_crit"])] * 3, 3 + i, COLORS[v])
    log2_axes(ax)
    ax.set_xlabel("batch size B")
    ax.set_ylabel("steps to target (η, β, γ tuned per B)")
    ax.set_title("NQM: lines closed form, dots MC; ▲ closed-form B_crit", fontsize=8)
    ax.legend(fontsize=7)
    dbs = ev.digits.batch_sizes.astype(float)
    for m in ev.digits_methods:
        e = ev.digits_fits[m]
        c = COLORS.get(m, "C0")
        ax2.plot(dbs, _finite(e["median_steps"]), "o-", color=c, label=m.upper())
        s = ev.digits.steps[:, list(ev.digits.methods).index(m)]
        ax2.plot(np.repeat(dbs[None], s.shape[0], 0).ravel(), _finite(s).ravel(), ".", color=c, ms=3, alpha=0.5)
    _digits_steps_axes(ax2, ev, cfg, "digits: median over splits (dots: splits; missing: not reached)")
    save(fig, path)


# ====================================================== scaling.optimizers_on_one_plot
def one_plot(ev, verdict, cfg, path):
    n, r = ev.nqm, ev.regression
    fig, (ax, ax2) = new_figure(verdict.claim_id, 2, width=5.8, height=4.4,
                                title=f"every optimizer's steps to target vs batch size ({verdict.status})")
    bs = n.batch_sizes
    names = list(n.variants) + ["sngm"]
    for i, v in enumerate(n.variants):
        ax.plot(bs, _finite(n.cf_steps[i]), "-", color=COLORS[v], lw=1.2, label=f"{LABELS[v]}: exact")
        ax.plot(bs, _finite(n.mc_steps[i]), "o", color=COLORS[v], ms=3.5)
    ax.plot(bs, _finite(np.min(n.sngm_steps, axis=-1)), "s--", color=COLORS["sngm"], ms=4, lw=0.8,
            label="SNGM: MC only (best η of its grid)")
    ymin = np.nanmin(_finite(n.cf_steps))
    for i, v in enumerate(names):
        _bcrit_mark(ax, n.b_crit_log2[i], ymin * 0.75 ** (i + 1), COLORS[v])
    log2_axes(ax)
    ax.set_xlabel("batch size B")
    ax.set_ylabel("steps to target S(B)")
    ax.set_title("NQM: lines closed form, markers MC; ▲ B_crit, bar: its bootstrap interval over seeds",
                 fontsize=8)
    ax.legend(fontsize=7, loc="upper right")
    rb = r.batch_sizes
    for i, m in enumerate(r.methods):
        c = COLORS[m]
        ax2.plot(rb, _finite(r.steps_tuned[i]), "o-", color=c, label=REG_LABELS[m])
    ymin = np.nanmin(_finite(r.steps_tuned))
    for i, m in enumerate(r.methods):
        if m != "covnoise":
            _bcrit_mark(ax2, r.b_crit_log2[i], ymin * 0.75 ** (i + 1), COLORS[m])
    ax2.axvline(r.emulated_batch, color=COLORS["covnoise"], ls=":", lw=1, label=f"emulated B_s = {int(r.emulated_batch)}")
    log2_axes(ax2)
    ax2.set_xlabel("batch size B")
    ax2.set_ylabel("steps to target S(B)")
    ax2.set_title(f"linear regression (MC, η tuned per B, {r.n_seeds} seeds); ▲ B_crit, bar: bootstrap", fontsize=8)
    ax2.legend(fontsize=7, loc="upper right")
    save(fig, path)
