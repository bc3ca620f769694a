"""Figures of the label-noise claims: theory as lines, simulations as markers or bands
(95% Student-t intervals over seeds, the plotting convention)."""
from __future__ import annotations

import numpy as np

from simulations.claims.label_noise.runs import ARMS
from simulations.plotting import (CI_LABEL, ci_halfwidth, mark_step, mean_band, new_figure, save,
                                  step_axis)
from theory import label_noise as th


def sparse_recovery(ev, verdict, cfg, path):
    sp = ev.sparse
    fig, (ax0, ax1, ax2) = new_figure(verdict.claim_id, 3, width=3.8,
                                      title="support S vs off-support coordinates, per arm")
    t = sp.window_steps
    for i, a in enumerate(ARMS):
        ax0.plot(t, sp[a].support_mean, "-", color=f"C{i}", lw=1, label=a)
        ax1.plot(t, sp[a].off_support_abs, "-", color=f"C{i}", lw=1, label=a)
    ax0.axhline(1.0, color="k", ls=":", lw=0.8, label="w*_j = 1")
    step_axis(ax0)
    ax0.set_ylabel("mean of w̄_j over j ∈ S (seed mean)")
    ax0.legend(fontsize=6)
    ax1.set_yscale("log")
    step_axis(ax1)
    ax1.set_ylabel("mean of |w̄_j| over j ∉ S (seed mean)")
    j = np.arange(len(sp.w_lasso))
    ax2.plot(j, sp.w_lasso, "k-", lw=1, label=f"weighted Lasso, λ = {sp.lam:.3g}")
    for i, a in enumerate(ARMS):
        ax2.plot(j, sp[a].tail_mean, "o", color=f"C{i}", ms=2.5, label=f"{a} (tail, seed mean)")
    ax2.set_xlabel("coordinate j")
    ax2.set_ylabel("w_j")
    lo, hi = verdict.measured["label_noise_ci"]
    ax2.set_title(f"{verdict.status}: ‖w − w_Lasso‖ label noise [{lo:.3f}, {hi:.3f}]", fontsize=8)
    ax2.legend(fontsize=6)
    save(fig, path)


def lambda_only(ev, verdict, cfg, path):
    fig, (ax, ax2) = new_figure(verdict.claim_id, 2, title=f"same λ = {ev.lam:.3g}")
    steps, curves = ev.window_steps, ev.dist_curves
    for i, (eta, B) in enumerate(ev.configs):
        sigma = np.sqrt(ev.lam * B / eta)
        ax.plot(steps * eta * ev.lam, curves[i], "-", color=f"C{i}",
                label=f"η = {eta:g}, σ = {sigma:.3g}, B = {int(B)}")
        t = np.asarray(ev.t_reach[i], np.float64)
        if np.any(np.isfinite(t)):
            mark_step(ax, np.nanmean(t) * eta * ev.lam, color=f"C{i}", lw=0.8, ls=":")
    ax.axhline(cfg["reach"], color="k", ls=":", lw=0.8, label=f"reach = {cfg['reach']}")
    ax.set_yscale("log")
    ax.set_xlabel("η²σ²t/B  (= ηλ t); dotted: seed-mean first-reach time")
    ax.set_ylabel("‖w̄(t) − w_Lasso‖ (seed mean)")
    ax.legend(fontsize=6)
    lo, hi = verdict.measured["scaled_time_spread_ci"]
    ax.set_title(f"scaled-time spread {verdict.measured['scaled_time_spread']:.3f} [{lo:.3f}, {hi:.3f}]",
                 fontsize=8)
    ref = ev.w_lasso
    for i, (eta, B) in enumerate(ev.configs):
        ax2.errorbar(np.arange(len(ref)) + 0.15 * i, ev.tail_mean[i] - ref,
                     yerr=ci_halfwidth(ev.tail_se[i], ev.n_valid[i]), fmt="o", ms=2, color=f"C{i}",
                     elinewidth=0.6, label=f"η = {eta:g}, B = {int(B)}")
    ax2.set_xlabel("coordinate j")
    ax2.set_ylabel(f"tail w̄_j − w_Lasso,j (seed mean, {CI_LABEL})")
    ax2.legend(fontsize=6)
    ax2.set_title(verdict.status, fontsize=9)
    save(fig, path)


def beyond_linear(ev, verdict, cfg, path):
    toy = ev.toy
    fig, (ax, ax2) = new_figure(verdict.claim_id, 2, title="toy: q = a² vs q*(η)")
    small = toy.levels[1]
    steps = small.steps
    w_steps = (steps[:-1] + steps[1:]) / 2
    for i, (e, qs) in enumerate(zip(toy.etas, toy.q_star)):
        ax.plot(w_steps, small.q_t[i], "-", color=f"C{i}", lw=1, label=f"η = {e:g} (label noise)")
        ax.axhline(qs, color=f"C{i}", ls="--", lw=0.8)
    ax.axhline(1.0, color="k", ls=":", lw=0.8, label="trace regularizer: q = 1")
    step_axis(ax, f"step (ηλ = {small.eta_lambda:g})")
    ax.set_ylabel("seed-mean q (dashed: q*(η) from R_η)")
    ax.set_ylim(0.95, None)
    ax.legend(fontsize=6)
    for li, lv in enumerate(toy.levels):
        ax2.errorbar(toy.etas + 0.01 * (li - 0.5), lv.q_mean, yerr=ci_halfwidth(lv.q_se, lv.n_valid), fmt="o",
                     ms=3, label=f"label noise, ηλ = {lv.eta_lambda:g} ({CI_LABEL})")
    q_ext = np.asarray(verdict.measured["q_extrapolated"])
    ci = np.asarray(verdict.measured["q_extrapolated_ci"])
    ax2.errorbar(toy.etas + 0.02, q_ext, yerr=[q_ext - ci[:, 0], ci[:, 1] - q_ext], fmt="s", ms=3, color="k",
                 label="extrapolated to λ → 0 (the verdict's interval)")
    grid = np.linspace(0.05, 1.35, 100)
    ax2.plot(grid, [th.toy_q_star(e) for e in grid], "-", color="C3", lw=1, label="q*(η) from R_η")
    ax2.axhline(1.0, color="k", ls=":", lw=0.8, label="¼ tr ∇²L: q = 1")
    ax2.set_xlabel("η")
    ax2.set_ylabel("tail-averaged q")
    ax2.set_title(verdict.status, fontsize=9)
    ax2.legend(fontsize=6)
    save(fig, path)


def tracks_flow(ev, verdict, cfg, path):
    toy = ev.toy
    fig, axes = new_figure(verdict.claim_id, len(toy.etas), width=3.6,
                           title=f"distance of the seed-mean iterate to reference flows ({verdict.status})")
    lv = toy.levels[1]
    styles = {"R_eta": ("C0", "GD on L + λR_η"), "trace": ("C1", "GD on L + λ¼tr∇²L"), "none": ("C2", "GD on L")}
    for i, (ax, e) in enumerate(zip(axes, toy.etas)):
        for kind, (c, lab) in styles.items():
            ax.plot(lv.steps, lv.dist[kind][i], "-", color=c, lw=1, label=lab)
        ax.plot(lv.steps, lv.noise_floor[i], ":", color="grey", lw=0.8, label="MC noise floor √(Σ SE²)")
        ax.set_ylim(1e-4, 2.0)
        ax.axhline(cfg["constant"] * np.sqrt(lv.lam[i]), color="k", ls="--", lw=0.8, label="c·√λ")
        ax.set_yscale("log")
        step_axis(ax)
        ax.set_title(f"η = {e:g}, λ = {lv.lam[i]:.2g}", fontsize=8)
    axes[0].set_ylabel("‖θ̄(t) − θ_flow(t)‖")
    axes[0].legend(fontsize=6)
    save(fig, path)


def flatness(ev, verdict, cfg, path):
    fig, axes = new_figure(verdict.claim_id, 4, width=3.3, title=f"sharpness along each arm ({verdict.status})")
    for k, name in enumerate(("sparse", "mlp")):
        tb = ev[name]
        ref = verdict.measured[name]["fit_record"]
        for j, m in enumerate(("trace", "lambda_max")):
            ax = axes[2 * k + j]
            for i, a in enumerate(("label noise", "GD")):
                mean_band(ax, tb.steps, tb[a][m], color=f"C{i}", label=f"{a} ({CI_LABEL})", marker="")
            if ref >= 0:
                mark_step(ax, tb.steps[ref], "reference (both arms fit)", lw=0.8)
            ax.set_yscale("log")
            step_axis(ax)
            ax.set_title(f"{'sparse u⊙u − v⊙v' if name == 'sparse' else 'two-layer tanh net'}: "
                         f"{'tr ∇²L' if m == 'trace' else 'λ_max(∇²L)'}", fontsize=8)
    axes[0].legend(fontsize=6)
    save(fig, path)
