"""The report's figures: matplotlib drawings of plain numbers, each returned as a PNG ``data:`` URI
so that the page needs no other file and no network.

Figures are made with ``matplotlib.figure.Figure`` (no pyplot): no global backend is chosen and no
figure is left open in a user's session."""

from __future__ import annotations

import base64
import io
import math
from typing import Mapping, Sequence

import numpy as np

DPI = 100
PANEL = (3.6, 2.6)  # inches per small-multiple panel
COLUMNS = 3  # small multiples per row
WIDTH = 11.4  # inches: the page's width at DPI
STYLE = {
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.labelsize": 8.5,
    "legend.fontsize": 7.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
LOSS, METRIC, BEST, NT = "tab:blue", "tab:orange", "0.45", "tab:red"


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})  # no tool name or URL inside
    return png_uri(buf.getvalue())


def _panels(n: int, panel: tuple[float, float] = PANEL, columns: int = COLUMNS):
    """A figure of ``n`` panels in rows of ``columns``: (figure, the n axes); spare cells hidden."""
    from matplotlib.figure import Figure

    cols = max(1, min(n, columns))
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(panel[0] * cols, panel[1] * rows), layout="constrained")
    grid = fig.subplots(rows, cols, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _draw(draw) -> str:
    """Run ``draw()`` (which returns a figure) under the report's style; the figure's PNG URI."""
    from matplotlib import rc_context

    with rc_context(STYLE):
        return _uri(draw())


def training_curves(
    epochs: Sequence[int],
    loss: Mapping[str, Sequence[float | None]],
    metric: Mapping[str, tuple[str, Sequence[float | None]]],
    best_epoch: int | None,
) -> str:
    """One panel per task: the train loss (left axis) and the validation metric (right axis) by
    epoch, the best epoch dashed."""

    def draw():
        tasks = list(dict.fromkeys([*loss, *metric]))
        fig, axes = _panels(len(tasks))
        for ax, task in zip(axes, tasks):
            ax.set_title(task)
            ax.set_xlabel("epoch")
            if task in loss:
                ax.plot(epochs, _nan(loss[task]), "o-", c=LOSS, ms=3, label="train loss")
                ax.set_ylabel("train loss", color=LOSS)
            if task in metric:
                name, values = metric[task]
                right = ax.twinx()
                right.grid(False)
                right.spines["right"].set_visible(True)
                right.plot(epochs, _nan(values), "s-", c=METRIC, ms=3, label=f"valid {name}")
                right.set_ylabel(f"valid {name}", color=METRIC)
            if best_epoch:
                ax.axvline(best_epoch, ls="--", c=BEST, lw=0.8)
            ax.xaxis.get_major_locator().set_params(integer=True)
        return fig

    return _draw(draw)


def lines(
    x: Sequence[float], series: Mapping[str, Sequence[float | None]], *, xlabel: str, ylabel: str, title: str = ""
) -> str:
    """One panel, one line per series (e.g. each task's weight by epoch)."""

    def draw():
        fig, (ax,) = _panels(1, panel=(7.5, 3.2))
        for name, values in series.items():
            ax.plot(x, _nan(values), "o-", ms=3, label=name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        return fig

    return _draw(draw)


def heatmaps(
    panels: Sequence[tuple[str, Sequence[str], Sequence[str], np.ndarray]],
    *,
    vmin: float,
    vmax: float,
    cmap: str,
    label: str,
    fmt: str = "{:.2f}",
) -> str:
    """Small multiples of annotated matrices, ``(title, row names, column names, [R, C])`` each,
    on one colour scale; NaN cells (undefined, or not part of that row) are left blank."""

    def draw():
        from matplotlib import colormaps
        from matplotlib.colors import Normalize

        rows = max(len(p[1]) for p in panels)
        cols = max(len(p[2]) for p in panels)
        side = (max(2.6, 0.4 * cols + 1.3), max(2.0, 0.27 * rows + 1.3))
        fig, axes = _panels(len(panels), panel=side, columns=max(1, min(len(panels), int(WIDTH // side[0]))))
        colours, norm = colormaps[cmap], Normalize(vmin, vmax)
        image = None
        for ax, (title, names, columns, matrix) in zip(axes, panels):
            m = np.ma.masked_invalid(np.asarray(matrix, dtype=np.float64))
            image = ax.imshow(m, norm=norm, cmap=colours, aspect="auto")
            ax.set_facecolor("0.88")  # a blank (NaN) cell shows grey, apart from any value's colour
            ax.set_title(title)
            ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
            ax.set_yticks(range(len(names)), names)
            ax.grid(False)
            for (i, j), v in np.ndenumerate(m.filled(np.nan)):
                if not math.isnan(v):
                    r, g, b, _ = colours(norm(v))
                    dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5  # white text on a dark cell
                    ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=6.5, c="white" if dark else "black")
        fig.colorbar(image, ax=axes, label=label, shrink=0.8)
        return fig

    return _draw(draw)


def reliability(curves: Mapping[str, Mapping[str, Sequence[float]]]) -> str:
    """One panel per binary task: the observed rate of positives against the mean prediction of
    each bin; a calibrated model lies on the diagonal."""

    def draw():
        fig, axes = _panels(len(curves), panel=(3.2, 3.0))
        for ax, (task, c) in zip(axes, curves.items()):
            top = max([*c["predicted"], *c["observed"], 1e-3]) * 1.08
            ax.plot([0, top], [0, top], ls="--", c=BEST, lw=0.8, label="calibrated")
            ax.plot(c["predicted"], c["observed"], "o-", c=LOSS, ms=3.5, label="model")
            ax.set_xlim(0, top)
            ax.set_ylim(0, top)
            ece = c.get("ece")
            ax.set_title(task + (f"  (ECE {ece:.4f})" if ece is not None else ""))
            ax.set_xlabel("mean predicted probability")
            ax.set_ylabel("observed rate")
        axes[0].legend(loc="upper left")
        return fig

    return _draw(draw)


def residuals(tasks: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]]) -> str:
    """Per regression task two panels: the histogram of the residuals (label - prediction), and
    the mean label against the mean prediction per prediction bin with the residuals' 10-90 %
    band around the prediction."""

    def draw():
        fig, axes = _panels(2 * len(tasks), panel=(4.2, 2.8), columns=2)
        for (task, r), hist_ax, bin_ax in zip(tasks.items(), axes[0::2], axes[1::2]):
            h = r["histogram"]
            if h["counts"]:
                edges = np.asarray(h["edges"])
                hist_ax.stairs(h["counts"], edges, fill=True, color=LOSS, alpha=0.7)
                hist_ax.axvline(0, c=BEST, ls="--", lw=0.8)
            outside = h["below"] + h["above"]
            hist_ax.set_title(f"{task}: residuals" + (f" ({outside} outside the range)" if outside else ""))
            hist_ax.set_xlabel("label - prediction")
            hist_ax.set_ylabel("rows")
            b = r["by_prediction"]
            pred = np.asarray(b["predicted"])
            if pred.size:
                bin_ax.fill_between(pred, pred + np.asarray(b["p10"]), pred + np.asarray(b["p90"]), color=LOSS,
                                    alpha=0.2, label="label, 10-90 %")  # fmt: skip
                bin_ax.plot(pred, b["actual"], "o-", c=LOSS, ms=3.5, label="mean label")
                bin_ax.plot([pred.min(), pred.max()], [pred.min(), pred.max()], ls="--", c=BEST, lw=0.8,
                            label="label = prediction")  # fmt: skip
                bin_ax.legend(loc="upper left")
            bin_ax.set_title(f"{task}: label by prediction")
            bin_ax.set_xlabel("mean prediction (bins of equal rows)")
            bin_ax.set_ylabel("label")
        return fig

    return _draw(draw)


def lift_bars(
    configurations: Sequence[str],
    tasks: Sequence[str],
    lift: np.ndarray,
    threshold: np.ndarray,
    negative: np.ndarray,
) -> str:
    """Grouped bars: the lift over single-task (%) of each configuration [C] on each task [T];
    whiskers ± the negative-transfer threshold (so a bar whose whisker stays below 0 is negative
    transfer, drawn red and hatched)."""

    def draw():
        from matplotlib.patches import Patch

        fig, (ax,) = _panels(1, panel=(max(6.0, 1.1 * len(tasks) * max(1, len(configurations)) ** 0.5 + 3), 3.6))
        width = 0.8 / max(1, len(configurations))
        x = np.arange(len(tasks))
        colours = [f"C{i % 10}" for i in range(len(configurations))]
        for i, name in enumerate(configurations):
            pos = x - 0.4 + width * (i + 0.5)
            bars = ax.bar(pos, np.nan_to_num(lift[i]), width, color=colours[i], label=name,
                          yerr=np.nan_to_num(threshold[i]), capsize=2, error_kw={"lw": 0.8})  # fmt: skip
            for bar, nt in zip(bars, negative[i]):
                if nt:
                    bar.set_edgecolor(NT)
                    bar.set_linewidth(1.5)
                    bar.set_hatch("///")
        ax.axhline(0, c="black", lw=0.8)
        ax.set_xticks(x, tasks, rotation=20, ha="right")
        ax.set_ylabel("lift over single-task (%)")
        handles, labels = ax.get_legend_handles_labels()
        if negative.any():
            handles.append(Patch(facecolor="white", edgecolor=NT, hatch="///", label="negative transfer"))
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        return fig

    return _draw(draw)


def _nan(values: Sequence[float | None]) -> list[float]:
    """JSON nulls (undefined metrics) as NaN: a gap in the line."""
    return [math.nan if v is None else float(v) for v in values]
