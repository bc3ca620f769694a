"""Figures of the Stochastic Normalization claims: theory as lines, measurements as
markers; intervals are 95% (Student-t over seeds, Wilson for frequencies)."""
from __future__ import annotations

import numpy as np

from simulations import stats
from simulations.plotting import CI_LABEL, errorbars, new_figure, save


def layer(ev, verdict, cfg, path):
    fig, (ax, ax2, ax3) = new_figure(verdict.claim_id, 3, width=4.6, height=4.0,
                                     title="the layer on one batch: training, evaluation, masks")
    order = np.argsort(ev.x0)
    x = ev.x0[order]
    ax.plot(x, ev.bn_ref0[order], "-", color="C0", label="batch norm, training (float64)")
    ax.plot(x, ev.eval_ref0[order], "-", color="C1", label="batch norm, evaluation (float64)")
    ax.plot(x, ev.batch_branch0[order], "o", color="C0", ms=5, mfc="none", label="StochNorm, s = 1")
    ax.plot(x, ev.moving_branch0[order], "s", color="C1", ms=5, mfc="none", label="StochNorm, s = 0")
    ax.plot(x, ev.eval0[order], "x", color="k", ms=5, label="StochNorm, evaluation (any p)")
    half = ev.moments[[float(m.p) for m in ev.moments].index(0.5)] if 0.5 in list(ev.ps) else ev.moments[0]
    ax.plot(x, half.mean_closed[order], "--", color="C2", lw=1,
            label=f"E y over s, p = {float(half.p):g} (closed form)")
    ax.set_xlabel("input x_i (channel 1, one batch)")
    ax.set_ylabel("output y_i")
    ax.set_title("training uses x̂_batch (s = 1) or x̂_moving (s = 0)", fontsize=8)
    ax.legend(fontsize=6.5, loc="upper left")
    for i, m in enumerate(ev.moments):
        vc, ve = np.asarray(m.var_all_closed), np.asarray(m.var_all_enumerated)
        keep = vc > 0
        ax2.loglog(vc[keep], ve[keep], "o", ms=3.5, color=f"C{i}", mfc="none",
                   label=f"p = {float(m.p):g}")
    lims = ax2.get_xlim()
    ax2.plot(lims, lims, "-", color="gray", lw=1, label="equality")
    ax2.set_xlabel("p(1 − p)γ²(x̂_batch − x̂_moving)²  (closed form)")
    ax2.set_ylabel(f"Var y over all {int(ev.n_masks)} masks (enumerated)")
    ax2.set_title(f"every (example, channel); max error {verdict.measured['mask_var_error']:.1e}", fontsize=8)
    ax2.legend(fontsize=7, loc="upper left")
    R, p = int(ev.n_draws), float(ev.draw_p)
    ch = np.arange(1, int(ev.channels) + 1)
    wil = np.array([stats.wilson_interval(int(k), R) for k in ev.ones_per_channel])
    errorbars(ax3, ch, wil[:, 0], wil[:, 1], wil[:, 2], color="C3", label=f"drawn, {CI_LABEL} (Wilson)")
    ax3.axhline(p, color="k", lw=1, label=f"p = {p:g}")
    ax3.set_xlabel("channel c")
    ax3.set_ylabel(f"fraction of {R} passes with s_c = 1")
    shared = "shared by all" if ev.shared_by_examples else "NOT shared by all"
    ax3.set_title(f"{verdict.status}: in every pass, s is {shared} {int(ev.batch)} examples", fontsize=8)
    ax3.set_ylim(p - 0.06, p + 0.06)
    ax3.legend(fontsize=7, loc="upper right")
    save(fig, path)


def _ci(d):
    m, lo, hi = stats.mean_ci(d, stats.FIGURE_CONFIDENCE, axis=-1)
    return m, lo, hi


def few_shot(ev, verdict, cfg, path):
    fig, (ax, ax2, ax3) = new_figure(verdict.claim_id, 3, width=4.7, height=4.2,
                                     title=f"few-shot fine-tuning, digits with x ↦ x^γ, γ = {cfg['gamma']:g}: {verdict.status}")
    names, n = list(ev.arms), np.asarray(ev.shots, float)
    acc = ev.test_at_best  # (arm, n, seed)
    styles = {"BN": ("C0", "o"), "scratch": ("gray", "s"), "control BN": ("C4", "v")}
    main, ctrl = f"StochNorm({cfg['p_main']:g})", f"control StochNorm({cfg['p_main']:g})"
    sn = [a for a in names if a.startswith("StochNorm(")]
    others = iter(["C1", "C2", "C5", "C6", "C8"])
    for a in sn:
        styles[a] = ("C3", "D") if a == main else (next(others), "^")
    styles[ctrl] = ("C9", "P")
    jitter = np.linspace(-0.06, 0.06, len(names))
    for i, a in enumerate(names):
        c, mk = styles[a]
        m, lo, hi = _ci(acc[i])
        errorbars(ax, n * (1 + jitter[i]), 100 * m, 100 * lo, 100 * hi, color=c, fmt=mk + "-", ms=3.5,
                  capsize=2, label=a)
    ax.set_xscale("log")
    ax.set_xlabel("n, labelled target images per class")
    ax.set_ylabel(f"test accuracy at tuned η (%), {CI_LABEL}")
    hidden = np.max(np.abs(ev.test_mean[names.index("control BN")] - ev.test_mean[names.index("BN")]))
    if hidden < 0.005:
        ax.set_title(f"control BN lies under BN (max gap {100 * hidden:.2f} pp)", fontsize=8)
    ax.legend(fontsize=6.5, loc="lower right")
    tau = 100 * cfg["threshold"]
    for k, a in enumerate(sn + [ctrl]):
        base = "control BN" if a == ctrl else "BN"
        d = acc[names.index(a)] - acc[names.index(base)]
        m, lo, hi = _ci(d)
        c, mk = styles[a]
        errorbars(ax2, n * (1 + jitter[k]), 100 * m, 100 * lo, 100 * hi, color=c, fmt=mk + "-", ms=3.5,
                  capsize=2, label=f"{a} − {base}")
    ax2.axhline(0, color="k", lw=1)
    ax2.axhline(tau, color="C3", ls=":", lw=1, label=f"band: {tau:g} pp")
    ax2.axvspan(n[0] * 0.8, cfg["small_max"] * 1.1, color="C3", alpha=0.06, lw=0)
    ax2.set_xscale("log")
    ax2.set_xlabel("n (shaded: the small-n range of the verdict)")
    ax2.set_ylabel(f"gain in test accuracy (pp), paired, {CI_LABEL}")
    lo, hi = ax2.get_ylim()
    ax2.set_ylim(lo, hi + 0.55 * (hi - lo))  # room for the legend above the data
    ax2.legend(fontsize=6.5, loc="upper center", ncol=2)
    d = acc[names.index("BN")] - acc[names.index("scratch")]
    m, lo, hi = _ci(d)
    errorbars(ax3, n, 100 * m, 100 * lo, 100 * hi, color="C0", fmt="o-", ms=4, capsize=2,
              label="BN fine-tuning − scratch")
    ax3.axhline(0, color="k", lw=1)
    ax3.set_xscale("log")
    ax3.set_xlabel("n, labelled target images per class")
    ax3.set_ylabel(f"transfer gain (pp), paired, {CI_LABEL}")
    g = verdict.measured["gate"]
    ax3.set_title(f"gate (n <= {cfg['small_max']}): {100 * g[0]:+.1f} pp [{100 * g[1]:+.1f}, {100 * g[2]:+.1f}]",
                  fontsize=8)
    ax3.legend(fontsize=7, loc="upper right")
    save(fig, path)
