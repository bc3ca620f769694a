"""Figures of the self-distillation claims: fits per round, c_t and r_t with their bounds,
B_t per round, the collapse round against r₀, and test error per round.

Theory (closed form, bounds) as lines, measured values as markers; the U-shape figure
draws 95% Student-t bands over seeds and the verdict's own Wilson intervals (labelled).
"""
from __future__ import annotations

import numpy as np

from simulations.claims.self_distillation.rules import (
    CLAIM_TOL,
    closed_form_cells,
    u_shape_intervals,
)
from simulations.plotting import errorbars, mean_band, new_figure, plt, save


def _kernel_mask(fam, kernel):
    return np.asarray(fam.kernel) == kernel


def _toy_row(fam):
    """Index of the figure case: the toy, Laplace kernel, smallest ε of the grid."""
    sel = np.flatnonzero((np.asarray(fam.dataset) == "toy") & _kernel_mask(fam, "laplace")
                         & (fam.collapse_case == 0))
    return int(sel[np.argmin(fam.eps[sel])])


def closed_form(ev, verdict, cfg, path):
    fam, toy = ev.family, ev.family.toy
    fig, (ax, ax2) = new_figure(verdict.claim_id, 2, title="closed form = iterated kernel ridge fits")
    xt, pc, pi = toy.x_test, toy.pred_closed, toy.pred_iter
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(pc)))
    ax.plot(toy.x, toy.y, "ko", label="labels y₀")
    ax.plot(xt, np.sin(2 * np.pi * xt), "k:", lw=1, label="sin 2πx")
    for t, (p, col) in enumerate(zip(pc, colors)):
        last = t == len(pc) - 1
        lab = f"f_{t} closed form" + (" (collapsed: ≡ 0)" if last and not np.any(p) else "")
        ax.plot(xt, p, color=col, lw=1.3, label=lab if t == 0 or last else None)
        ax.plot(xt[::20], pi[t][::20], "x", color=col, ms=4, label="iterated fit" if t == 0 else None)
    ax.set(xlabel="x", ylabel="f_t(x)",
           title=f"toy, Laplace kernel, ε = {toy.eps:g}: round t = 0…{len(pc) - 1}")
    ax.legend(loc="lower left")
    diff, tol, kernel = closed_form_cells(fam)
    floor = 1e-18  # exact agreement (|Δ| = 0) drawn at the floor of the log axis
    for kern, mk in (("laplace", "o"), ("gaussian", "s")):
        sel = kernel == kern
        if sel.any():
            ax2.loglog(tol[sel], np.maximum(diff[sel], floor), mk, mfc="none", ms=3, label=kern)
    lims = np.array([tol.min(), tol.max()])
    ax2.plot(lims, lims, "k-", lw=1, label="|Δ| = tolerance (2× round-off bound)")
    ax2.axhline(CLAIM_TOL, color="r", ls="--", lw=1, label=f"{CLAIM_TOL:g}")
    ax2.set(xlabel="tolerance per (instance, round)", ylabel="max |closed − iterated|",
            title=f"{verdict.status}: every point below the diagonal holds")
    ax2.legend(fontsize=7)
    save(fig, path)


def amplification(ev, verdict, cfg, path):
    fam = ev.family
    a = fam.amplification
    fig, (ax, ax2) = new_figure(verdict.claim_id, 2, title="c_t grows; bounds on c_t and r_{t+1}")
    j = _toy_row(fam)
    T, kap = int(fam.T[j]), fam.kappa[j]
    c, r = a.c[j, :T], a.r[j]
    rt = r[:T]
    t = np.arange(T)
    ax.semilogy(t, c, "o", label="c_t (root of h(c) = ε)")
    ax.fill_between(t, a.c_lower[j, :T], a.c_upper[j, :T], alpha=0.2,
                    label="d_min/(r_t−1) … d_max/(r_t−1)")
    ax.set(xlabel="round t", ylabel="c_t", title=f"toy, Laplace, ε = {fam.eps[j]:g}, κ = {kap:.3g}")
    ax.legend()
    ax2.plot(t + 1, r[1:T + 1], "ko", label="r_{t+1} measured")
    ax2.plot(t + 1, a.r_next_lower_paper[j, :T], "b-", label="paper bounds from r_t")
    ax2.plot(t + 1, a.r_next_upper_paper[j, :T], "b-")
    ax2.plot(t + 1, rt - 1, "g--", label="derived: r_t − 1, √(r_t² − 1)")
    ax2.plot(t + 1, np.sqrt(rt ** 2 - 1), "g--")
    ax2.axhline(1, color="r", lw=1, ls=":", label="collapse level r = 1")
    ax2.set(xlabel="round t + 1", ylabel="r = ‖y‖/√(Kε)", title=verdict.status)
    ax2.legend()
    save(fig, path)


def sparsification(ev, verdict, cfg, path):
    fam, toy = ev.family, ev.family.toy
    fig, (ax, ax2) = new_figure(verdict.claim_id, 2, title="B_t sparsifies the basis")
    d, B = toy.d, toy.B
    order = np.argsort(d)[::-1]
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(B)))
    for t, (b, col) in enumerate(zip(B, colors)):
        ax.semilogy(np.arange(1, d.size + 1), b[order], "o-", color=col, ms=3, lw=1,
                    label=f"t = {t}" if t in (0, 1, len(B) - 1) else None)
    ax.set(xlabel="eigen-index k (d_k decreasing)", ylabel="B_t[k]",
           title=f"toy, Laplace kernel, ε = {toy.eps:g}")
    ax.legend()
    base = fam.collapse_case == 0
    counts, K = fam.basis_counts[base][:, 1], fam.K[base]  # τ = 1e-2
    for kval, col in ((K.max(), "C0"), (K.min(), "C1")):
        for row in counts[K == kval]:
            ax2.plot(np.arange(row.size), row, "-", color=col, alpha=0.25, lw=0.8)
        ax2.plot([], [], "-", color=col, label=f"K = {int(kval)} instances")
    ax2.set(xlabel="round t", ylabel="#{k : B_t[k]/max B_t > 1e-2}", title=verdict.status)
    ax2.legend()
    save(fig, path)


def collapse(ev, verdict, cfg, path):
    fam = ev.family
    fig, (ax,) = new_figure(verdict.claim_id, 1, width=6.5, title="number of non-trivial rounds T vs r₀")
    T, r0, kap = fam.T, fam.collapse.r0, fam.kappa
    nt = T > 0
    for kern, mk in (("laplace", "o"), ("gaussian", "s")):
        sel = nt & _kernel_mask(fam, kern)
        ax.plot(r0[sel], T[sel], mk, mfc="none", label=f"T measured ({kern})")
    rr = np.linspace(1.001, r0.max() * 1.05, 200)
    ax.plot(rr, np.ceil(rr - 1), "g-", label="derived ⌈r₀−1⌉, ⌈r₀²−1⌉")
    ax.plot(rr, np.ceil(rr ** 2 - 1), "g-")
    for k, ls in ((kap[nt].min(), "--"), (kap[nt].max(), ":")):
        ax.plot(rr, (rr - 1) / k, "b" + ls, lw=1, label=f"paper bounds, κ = {k:.2g}")
        ax.plot(rr, k * (rr - 1) + 1, "b" + ls, lw=1)
    ax.set_yscale("log")
    ax.set_ylim(0.3 * (r0[nt].min() - 1) / kap[nt].max(), 3 * kap[nt].max() * r0.max())
    ax.set(xlabel="r₀ = ‖y₀‖/√(Kε)", ylabel="T (non-trivial rounds)", title=verdict.status)
    ax.legend(fontsize=7)
    save(fig, path)


def u_shape(ev, verdict, cfg, path):
    fig, (ax, ax2) = new_figure(verdict.claim_id, 2, title="test error vs self-distillation round")
    risk, eps = ev.risk, ev.eps
    n_show = min(risk.shape[2], int(np.percentile(ev.n_nontrivial, 90)) + 2)
    t = np.arange(n_show)
    for e in range(len(eps)):
        mean_band(ax, t, risk[e, :, :n_show], color=f"C{e}", label=f"ε = {eps[e]:.3g}", axis=0)
    ax.set_yscale("log")
    ax.set(xlabel="round t (0 = teacher)", ylabel="excess test risk E(f_t − f*)²",
           title="mean over seeds, 95% CI bands (Student-t)")
    ax.legend()
    _, _, conf, wil_u, wil_0, *_ = u_shape_intervals(ev, cfg)
    ratio = ev.eps_over_noise_var
    for w, lab, mk, dx, col in ((wil_u, "P(U-shaped)", "o", -0.02, "C3"),
                                (wil_0, "P(teacher best)", "s", 0.02, "C2")):
        p = w[:, 0]  # the interval holds p̂ up to round-off at p̂ = 0, 1
        errorbars(ax2, ratio * (1 + dx), p, np.minimum(w[:, 1], p), np.maximum(w[:, 2], p),
                  color=col, label=lab, fmt=mk)
    ax2.axhline(0.5, color="k", lw=1, ls=":")
    ax2.axvspan(ratio.min() * 0.8, cfg["overfit_max"] * 1.05, color="C3", alpha=0.08,
                label="over-fitting regime")
    ax2.axvspan(cfg["not_overfit_min"] * 0.95, ratio.max() * 1.2, color="C2", alpha=0.08,
                label="non-over-fitting regime")
    ax2.set_xscale("log")
    ax2.set(xlabel="ε / σ²", ylabel="fraction of seeds", ylim=(-0.05, 1.05),
            title=f"{verdict.status} (the verdict's Wilson {conf:.1%} intervals)")
    ax2.legend(fontsize=7)
    save(fig, path)
