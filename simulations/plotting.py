"""Figure conventions and the shared drawing helpers.

Agg backend, deterministic output (no timestamps), the claim id in every title. Theory
is drawn as lines, simulations as markers with interval bands or error bars; every band
is a :data:`simulations.stats.FIGURE_CONFIDENCE` (95%) Student-t interval over the
stated units unless the figure draws the verdict's own interval and says so in a label.

    fig, axes = new_figure(verdict.claim_id, 2, title="...")
    mean_band(ax, steps, per_seed_values, color="C0", label="label noise")   # mean ± 95% CI
    band(ax, x, mean, low, high, color="C1", label="...")                    # given interval
    step_axis(ax); mark_step(ax, anneal_step, "anneal")
    heatmap(ax, values, rows=..., cols=..., fig=fig, label="...")
    save(fig, path)
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from simulations import stats  # noqa: E402

_STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "svg.hashsalt": "sgd-theory-check",
}
#: the words figures use for their bands.
CI_LABEL = f"{stats.FIGURE_CONFIDENCE:.0%} CI"


def new_figure(claim_id: str, ncols: int = 1, *, width: float = 5.0, height: float = 3.8,
               title: str = "", nrows: int = 1):
    """A figure with nrows × ncols axes (a flat list) and suptitle '<claim_id>: <title>'."""
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    fig.suptitle(f"{claim_id}: {title}" if title else claim_id, fontsize=11)
    return fig, list(axes.ravel())


def save(fig, path) -> Path:
    """Save atomically as PNG (no timestamps in metadata) and close the figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    with plt.rc_context(_STYLE):
        fig.tight_layout()
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
    os.replace(tmp, path)
    return path


def band(ax, x, mean, low, high, *, color, label=None, marker="o", ms=2.5, lw=0.8, alpha=0.2):
    """A simulated mean as markers on a thin line, its interval [low, high] as a band."""
    x = np.asarray(x)
    ax.fill_between(x, low, high, color=color, alpha=alpha, lw=0)
    ax.plot(x, mean, marker=marker, ms=ms, lw=lw, color=color, label=label)


def mean_band(ax, x, samples, *, color, label=None, axis: int = 0, **kw):
    """Mean over the sample ``axis`` (seeds, data draws) with its 95% Student-t band."""
    m, lo, hi = stats.mean_ci(samples, stats.FIGURE_CONFIDENCE, axis=axis)
    band(ax, x, m, lo, hi, color=color, label=label, **kw)
    return m, lo, hi


def errorbars(ax, x, mean, low, high, *, color, label=None, fmt="o", ms=4, capsize=3):
    """Point estimates with asymmetric interval error bars [low, high]."""
    mean, low, high = (np.asarray(a, np.float64) for a in (mean, low, high))
    ax.errorbar(x, mean, yerr=[mean - low, high - mean], fmt=fmt, ms=ms, color=color,
                capsize=capsize, label=label)


def ci_halfwidth(se, n):
    """Half-width of the 95% Student-t interval from a standard error of n samples."""
    from scipy import stats as sps

    return sps.t.ppf(0.5 + stats.FIGURE_CONFIDENCE / 2, np.asarray(n) - 1) * np.asarray(se)


def step_axis(ax, label: str = "step"):
    """x = step with scientific tick labels, so long runs do not print overlapping numbers."""
    ax.set_xlabel(label)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 4))


def mark_step(ax, step, label: str | None = None, **kw):
    """A step of interest (an anneal, a switch) as a dashed vertical line."""
    ax.axvline(step, color=kw.pop("color", "k"), ls=kw.pop("ls", "--"), lw=kw.pop("lw", 1),
               label=label, **kw)


def heatmap(ax, values, *, rows, cols, fig, label: str, row_name: str = "", col_name: str = "",
            vmin=None, vmax=None, contour=None, max_ticks: int = 5, cmap="viridis"):
    """values[i, j] over (rows[i], cols[j]) as an image with labelled ticks and a colour
    bar; ``contour`` draws one white level line (e.g. the threshold ε)."""
    values = np.asarray(values, np.float64)
    im = ax.imshow(values, aspect="auto", origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
    if contour is not None and np.nanmin(values) < contour < np.nanmax(values):
        ax.contour(values, levels=[contour], colors="w", linewidths=1.2)
    step_r = max(1, len(rows) // max_ticks)
    step_c = max(1, len(cols) // max_ticks)
    ax.set_yticks(range(0, len(rows), step_r), [_tick(r) for r in rows[::step_r]])
    ax.set_xticks(range(0, len(cols), step_c), [_tick(c) for c in cols[::step_c]], fontsize=7)
    ax.set_xlabel(col_name)
    ax.set_ylabel(row_name)
    ax.grid(False)
    fig.colorbar(im, ax=ax, label=label)
    return im


def _tick(v) -> str:
    if isinstance(v, str):
        return v
    v = float(v)
    if v == int(v) and abs(v) < 1e5:
        return str(int(v))
    return f"{v:.0e}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.3g}"


def log2_axes(ax, x: bool = True, y: bool = True):
    """Base-2 log axes (batch sizes, budgets)."""
    if x:
        ax.set_xscale("log", base=2)
    if y:
        ax.set_yscale("log", base=2)
