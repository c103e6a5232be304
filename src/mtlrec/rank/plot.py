"""The frontier plot (PNG): one panel per objective against the maximised one, both as ratios to
the baseline (ranking by pCTR alone); Pareto-optimal settings coloured, the others grey, the
baseline and the chosen setting marked, ``keep`` thresholds dashed."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from mtlrec.artifacts import atomic_path
from mtlrec.rank.frontier import pareto_mask


def plot_frontier(
    path: str | Path,
    labels: Sequence[str],
    values: np.ndarray,
    pareto: np.ndarray,
    baseline: np.ndarray,
    chosen: int,
    maximize: int,
    thresholds: dict[int, float] | None = None,
    title: str = "",
    baseline_label: str = "pCTR only",
) -> None:
    """``values`` [n, m] every setting tried, ``pareto`` [n] bool, ``baseline`` [m], ``chosen`` and
    ``maximize`` indices, ``thresholds`` {objective index: ratio}; writes a PNG atomically. The
    line in each panel joins that pair's own frontier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.asarray(values, dtype=np.float64) / np.asarray(baseline, dtype=np.float64)
    others = [j for j in range(len(labels)) if j != maximize] or [maximize]
    fig, axes = plt.subplots(1, len(others), figsize=(5.2 * len(others), 4.4), squeeze=False)
    y = ratio[:, maximize]
    for ax, j in zip(axes[0], others):
        x = ratio[:, j]
        ax.scatter(x[~pareto], y[~pareto], s=12, c="0.75", label="other settings")
        front = np.flatnonzero(pareto_mask(np.column_stack([x, y])))  # this pair's own frontier
        front = front[np.argsort(x[front])]
        ax.plot(x[front], y[front], c="tab:blue", lw=0.8, alpha=0.5)
        ax.scatter(x[pareto], y[pareto], s=28, c="tab:blue", label="Pareto-optimal")
        ax.scatter([1.0], [1.0], s=140, marker="*", c="black", label=f"baseline ({baseline_label})", zorder=3)
        ax.scatter([x[chosen]], [y[chosen]], s=160, facecolors="none", edgecolors="tab:red", linewidths=2,
                   label="chosen", zorder=4)  # fmt: skip
        if thresholds and j in thresholds:
            ax.axvline(thresholds[j], ls="--", c="tab:red", lw=0.8, label=f"keep >= {thresholds[j]:g}")
        ax.set_xlabel(f"{labels[j]} / baseline")
        ax.set_ylabel(f"{labels[maximize]} / baseline")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
