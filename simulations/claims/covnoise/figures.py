"""Figures of Wen et al.'s claims: theory as lines, Monte Carlo as markers or bands.

Bands and error bars are 95% Student-t intervals over seeds (the plotting convention).
"""
from __future__ import annotations

import numpy as np

from simulations.claims.covnoise.runs import STRUCTURES
from simulations.plotting import CI_LABEL, ci_halfwidth, new_figure, save

def exact_moments(ev, verdict, cfg, path):
    fig, (ax,) = new_figure(verdict.claim_id, width=6.5, height=4.2,
                            title="E f(x_k): closed form vs Monte Carlo")
    steps = ev.steps
    n = cfg["n_seeds"]
    for i, name in enumerate(STRUCTURES):
        color = f"C{i}"
        ax.plot(steps, ev.exact[i], color=color, lw=1.5, label=f"{name} (theory)")
        m, se = ev.mc_mean[i], ev.mc_se[i]
        ax.errorbar(steps, m, yerr=ci_halfwidth(se, n), fmt="o", ms=2, color=color, capsize=1.5, elinewidth=0.8,
                    label=f"{name} (MC, {CI_LABEL})")
    ax.set_yscale("log")
    ax.set_xscale("symlog", linthresh=20)
    ax.set_xlabel("step k (linear up to 20, then log)")
    ax.set_ylabel("E f(x_k) = E ½ xᵀAx")
    ax.legend(ncol=2, loc="upper right", fontsize=7)
    ax.set_title(verdict.status + ": " + f"max |z| = {verdict.measured['max_abs_z']:.2f}", fontsize=9)
    save(fig, path)


def frobenius(ev, verdict, cfg, path):
    fig, (ax, ax2) = new_figure(verdict.claim_id, 2, title="excess loss is ordered by ‖C‖_F")
    alphas = ev.alphas
    fine, trC = ev.alpha_fine, ev.s_trace_A
    st, m, se = (np.asarray(ev[k]) for k in ("stationary", "mc_tail_mean", "mc_tail_se"))
    for i, name in enumerate(ev.structures):
        c = f"C{i}"
        ax.plot(fine, (ev.stationary_fine[i] - fine * trC / 4) / fine ** 2, "-", color=c,
                label=f"{name}: ‖C‖_F = {ev.frob_C[i]:.3f}")
        ax.errorbar(alphas, (m[i] - alphas * trC / 4) / alphas ** 2, yerr=ci_halfwidth(se[i], int(ev.n_seeds)) / alphas ** 2,
                    fmt="o", color=c, ms=4, capsize=2)
        ax.axhline(ev.small_limits[i], color=c, ls=":", lw=1)
    ax.set_xlabel("step size α")
    ax.set_ylabel("(E f∞ − α tr C/4) / α²")
    ax.set_title(f"lines: closed form; markers: MC tail mean, {CI_LABEL}; dotted: ‖C‖²_F/(8s)", fontsize=8)
    ax.legend()
    k = ev.bound_k
    for i, name in enumerate(ev.structures):
        c = f"C{i}"
        ax2.plot(k, ev.bound[i], "--", color=c, lw=1)
        ax2.plot(k, ev.exact_k[i], "-", color=c, label=name)
        ax2.errorbar(k, ev.mc_k_mean[i], yerr=ci_halfwidth(ev.mc_k_se[i], int(ev.n_seeds)), fmt="o",
                     ms=2.5, color=c, capsize=1.5)
    ax2.set_yscale("log")
    ax2.set_xlabel("step k (x₀ = 0)")
    ax2.set_ylabel(f"E f(x_k)   (lines exact, markers MC, {CI_LABEL})")
    ax2.set_title(f"(iv): dashed bound α²k tr(AC)/2, α = {ev.bound_alpha:g}", fontsize=8)
    ax2.legend(loc="upper left", ncol=2)
    save(fig, path)


def negative_control(ev, verdict, cfg, path):
    fig, (ax,) = new_figure(verdict.claim_id,
                            title="equal tr C and ‖C‖_F, different loss")
    steps = ev.steps
    labels = ["C₁: noise aligned with large curvature", "C₂: noise aligned with small curvature"]
    for i in range(2):
        c = f"C{i}"
        ax.plot(steps, ev.exact[i], color=c, label=f"{labels[i]}, tr(AC) = {ev.tr_AC[i]:.3f}")
        m, se = ev.mc_mean[i], ev.mc_se[i]
        h = ci_halfwidth(se, int(ev.n_seeds))
        ax.fill_between(steps, m - h, m + h, color=c, alpha=0.25, lw=0)
    ax.set_xlabel("step k (x₀ = 0)")
    ax.set_ylabel("E f(x_k)")
    ax.set_title(f"lines: closed form; bands: MC {CI_LABEL}; tr C = {ev.trace[0]:.3f}, "
                 f"‖C‖_F = {ev.frob[0]:.3f} for both", fontsize=8)
    ax.set_ylim(0, 1.3 * max(np.max(ev.exact[0]), np.max(ev.exact[1])))
    ax.legend(loc="upper right", fontsize=7)
    save(fig, path)


def emulates_small_batch(ev, verdict, cfg, path):
    fig, (ax,) = new_figure(verdict.claim_id, width=8.5, height=4.4,
                            title="large batch + structured noise vs small-batch SGD")
    m, se, pred = (np.asarray(ev[k]) for k in ("excess_mean", "excess_se", "predicted_fixed_sigma"))
    x = np.arange(len(m))
    ax.bar(x, pred, color="lightgray", edgecolor="gray",
           label="quadratic theory with Σ frozen at ŵ (ignores state dependence)")
    ax.errorbar(x, m, yerr=ci_halfwidth(se, ev.n_valid), fmt="o", color="C3", capsize=3,
                label=f"MC tail mean, {CI_LABEL}")
    ax.axhline(m[0], color="C0", ls="--", lw=1, label="small-batch SGD (MC)")
    ax.set_xticks(x, [a.replace(", ", ",\n").replace(" + ", " +\n").replace(" noise", "\nnoise")
                      for a in ev.arms], fontsize=7)
    ax.set_ylabel("excess training loss L(w) − L(ŵ)")
    ax.set_title(f"{verdict.status}: ratio full Σ(w) noise / small batch = "
                 f"{verdict.measured['ratio_full_to_small']:.3f}; with Σ(ŵ): "
                 f"{verdict.measured['fixed_sigma_ratio']:.3f}", fontsize=9)
    ax.set_ylim(0, 1.35 * max(m.max(), pred.max()))
    ax.legend(fontsize=7, loc="upper center", ncol=3)
    save(fig, path)
