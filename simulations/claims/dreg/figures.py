"""Figures of DReg's claims: the float rule as lines, measured differences as markers;
for the hypothesis, means over data splits with 95% Student-t bands (the plotting
convention) and the map of per-cell outcomes."""
from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap

from simulations import stats
from simulations.claims.dreg.rules import ACC_MARGIN, _arm
from simulations.claims.dreg.runs_sweep import read_off
from simulations.plotting import CI_LABEL, band, errorbars, log2_axes, new_figure, save

_FLOOR = 1e-18  # exact zeros are drawn here on log axes (and said so in the legend)


def _ratio_bars(ax, names, values, *, title, ylabel="max error / tolerance"):
    x = np.arange(len(names))
    v = np.maximum(np.asarray(values, np.float64), _FLOOR)
    colors = ["C2" if (big and val > 1) or (not big and val <= 1) else "C3"
              for val, big in ((val, n.startswith("resolved")) for val, n in zip(v, names))]
    ax.bar(x, v, color=colors)
    ax.axhline(1.0, color="k", ls="--", lw=1, label="tolerance (ratio 1)")
    ax.set_yscale("log")
    ax.set_ylim(1e-3, max(10.0, 10 * v.max()))
    ax.set_xticks(x, names, rotation=25, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=7)


def reparametrization(ev, verdict, cfg, path):
    ex = ev.exact
    fig, (ax, ax2) = new_figure(verdict.claim_id, 2, width=5.6,
                                title="λ = 0 DReg is the plain network with layer LR × 2/κ²")
    beta, rho = max(ex.momenta), max(ex.offsets)
    for i, (kappa, c) in enumerate(ex.curves.control.items()):
        color = f"C{i}"
        ax.plot(ex.steps, c.tol, "-", color=color, lw=1.2,
                label=f"κ = {kappa}: tolerance {ex.ulps:g}(t+1)uS")
        ax.plot(ex.steps, np.maximum(c.err, _FLOOR), "o", ms=3, color=color,
                label=f"κ = {kappa}: |DReg(λ=0) − control| (zeros at 1e-18)")
        ax.plot(ex.steps, np.maximum(c.wrong, _FLOOR), "x", ms=3, color=color,
                label=f"κ = {kappa}: |DReg(λ=0) − plain net at layer LR × 1|")
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel("max |W_eff − W| over parameters and seeds")
    ax.set_title(f"float64, β = {beta:g}, ρ = {rho:g}, η = {cfg['exact']['learning_rate']:g}", fontsize=9)
    ax.legend(fontsize=6.5, loc="center right")
    m = verdict.measured
    _ratio_bars(ax2, ["control = DReg(λ=0)", "plain = DReg(factor κ²/2)", "control = DReg(margin R)",
                      "W − W′ constant (λ=0)", "resolved: plain ≠ DReg(λ=0)"],
                [m["control_ratio"], m["baseline_ratio"], m["margin_ratio"], m["delta_const_ratio"],
                 m["wrong_factor_min_ratio"]],
                title=f"{verdict.status}: worst case over κ, ρ, β (last bar: smallest)")
    save(fig, path)


def inert_at_copy(ev, verdict, cfg, path):
    ex = ev.exact
    fig, (ax, ax2) = new_figure(verdict.claim_id, 2, width=5.6,
                                title="an exact copy stays a copy; a perturbed one separates")
    kappa = ex.kappas[0]
    for i, (rho, c) in enumerate(ex.curves.copy_change.items()):
        color = f"C{i}"
        change = np.asarray(c.change)
        label = f"ρ = {rho}: max |Δ(t) − Δ(0)|" + (" (= 0 exactly, drawn at 1e-18)" if not change.any() else "")
        ax.plot(ex.steps, np.maximum(change, _FLOOR), "o-", ms=3, lw=0.8, color=color, label=label)
        ax.plot(ex.steps, c.tol, ":", color=color, lw=1, label=f"ρ = {rho}: tolerance")
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel("change of Δ = W − W′ (cosine R, λ = %g)" % cfg["exact"]["lam"])
    ax.set_title(f"float64, κ = {kappa:g}, β = 0", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    m = verdict.measured
    _ratio_bars(ax2, ["ρ=0: W − W′", "ρ=0: W_eff(λ) − W_eff(0)", "1st step vs closed form",
                      "resolved: 1st step (ρ>0)"],
                [m["exact_copy_gap_ratio"], m["exact_copy_weff_ratio"], m["first_step_error_ratio"],
                 m["first_step_size_min_ratio"]],
                title=f"{verdict.status}: worst case over κ, β, R (last bar: smallest)")
    save(fig, path)


# ===================================================================== large batch
_STATUS_CMAP = ListedColormap(["#d9534f", "#cccccc", "#5cb85c"])  # contradicted, open, supported


def _map_panel(ax, cells, fig):
    cols = ["steps vs baseline", "steps vs control", "acc. vs baseline", "acc. vs control"]
    status = np.zeros((len(cells), 4))
    for r, c in enumerate(cells):
        for k, (other, what) in enumerate((("baseline", "speed"), ("control", "speed"),
                                          ("baseline", "gain"), ("control", "gain"))):
            ok = c[other]["faster" if what == "speed" else "better"]
            status[r, k] = {True: 2, None: 1, False: 0}[ok]
            m = c[other][what][0]
            text = f"{np.exp(-m):.2f}×" if what == "speed" else f"{100 * m:+.1f}"
            ax.text(k, r, text, ha="center", va="center", fontsize=6)
    ax.imshow(status, cmap=_STATUS_CMAP, vmin=0, vmax=2, aspect="auto")
    ax.set_xticks(range(4), cols, rotation=20, ha="right", fontsize=7)
    ax.set_yticks(range(len(cells)), [c["arm"].replace("DReg (", "").replace(")", "")
                                      .replace("cosine", "cos") + f", B={c['batch_size']}"
                                      for c in cells], fontsize=6)
    ax.grid(False)
    ax.set_title("map (per-cell 95% CI): green DReg better by the margin, red not, grey open;\n"
                 "text: steps ratio DReg/other, test-accuracy difference in points", fontsize=7)


def large_batch(ev, verdict, cfg, path):
    sw, names = ev.sweep, list(ev.sweep.testbeds)
    large, p = cfg["sweep"]["large_batch"], cfg["primary"]
    fig, axes = new_figure(verdict.claim_id, 3, nrows=len(names), width=5.6, height=4.4,
                           title="DReg vs the baseline and the learning-rate control")
    for row, name in enumerate(names):
        ax, ax2, ax3 = axes[3 * row:3 * row + 3]
        block = sw[name][f"B{large}"]
        base = _arm(block, kind="baseline", beta=0.0)
        arms = [("baseline", base, "C0"),
                ("LR control", _arm(block, kind="control", layer=p["layer"], beta=0.0), "C1"),
                ("DReg", _arm(block, kind="dreg", layer=p["layer"], reg=p["reg"], lam=p["lam"], beta=0.0), "C3")]
        r = read_off(block, baseline=base)
        for label, a, color in arms:
            m, lo, hi = stats.mean_ci(np.log(r["curves"][a]), stats.FIGURE_CONFIDENCE, axis=0)
            band(ax, block.steps, np.exp(m), np.exp(lo), np.exp(hi), color=color, label=block.arms[a])
        ax.axhline(float(np.exp(np.mean(np.log(r["target"])))), color="k", ls="--", lw=1,
                   label="target (baseline, half budget)")
        ax.set_yscale("log")
        ax.set_xlabel(f"step t (B = {large}, {cfg['sweep']['epochs']:g} epochs)")
        ax.set_ylabel("training loss L_task(W_eff)")
        ax.set_title(f"{name}: geometric mean over {r['target'].size} splits at tuned η, {CI_LABEL}",
                     fontsize=8)
        ax.legend(fontsize=6.5, loc="upper right")
        for label, _, color in arms:
            xs, ms, lo, hi = [], [], [], []
            for B in sw.batch_sizes:
                blk = sw[name][f"B{int(B)}"]
                b0 = _arm(blk, kind="baseline", beta=0.0)
                a = {"baseline": b0,
                     "LR control": _arm(blk, kind="control", layer=p["layer"], beta=0.0),
                     "DReg": _arm(blk, kind="dreg", layer=p["layer"], reg=p["reg"], lam=p["lam"], beta=0.0)}[label]
                acc = read_off(blk, baseline=b0)["test"][a]
                m, l, h = stats.mean_ci(acc, stats.FIGURE_CONFIDENCE)
                xs.append(float(B)), ms.append(m), lo.append(l), hi.append(h)
            shift = {"baseline": 0.94, "LR control": 1.0, "DReg": 1.06}[label]
            errorbars(ax2, np.array(xs) * shift, ms, lo, hi, color=color, label=label)
            ax2.plot(np.array(xs) * shift, ms, "-", color=color, lw=0.8)
        log2_axes(ax2, y=False)
        ax2.set_xlabel("batch size B (log₂; full batch = n)")
        ax2.set_ylabel("test accuracy at tuned η")
        gate = verdict.measured[name]["gate"]
        ax2.set_title(f"{name}: {CI_LABEL} over splits; margin {100 * ACC_MARGIN:g} pp\n{gate}", fontsize=7)
        ax2.legend(fontsize=7, loc="lower left")
        _map_panel(ax3, verdict.measured[name]["map"], fig)
    fig.text(0.5, 0.005, verdict.summary.split(" — ")[-1][:200] + " …", ha="center", fontsize=7)
    save(fig, path)
