"""Figure conventions: Agg backend, deterministic output, claim id in the title.

Theory is drawn as lines, simulations as markers with confidence-interval error bars or
bands. Use :func:`new_figure` and :func:`save` so every figure looks the same.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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


def new_figure(claim_id: str, ncols: int = 1, *, width: float = 5.0, height: float = 3.8,
               title: str = ""):
    """A figure with ``ncols`` axes and suptitle '<claim_id>: <title>'."""
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    fig.suptitle(f"{claim_id}: {title}" if title else claim_id, fontsize=11)
    return fig, list(axes[0])


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
