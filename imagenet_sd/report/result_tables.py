"""What every result table (evaluation, robustness, representation, transfer, references) shares: how a model
trained on real images is labelled, the Markdown table and pivot, the radar chart, and how a table's CSV,
Markdown and chart are written. Each table module keeps only its own rows and text."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


def model_label(model: str, train_data: str) -> str:
    """A model's name in a table or legend, marked `(real)` when it was trained on real images."""
    return f"{model} (real)" if train_data == "real" else model


def markdown_row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_table(columns: list[str], rows) -> list[str]:
    """A Markdown table's lines: the header, the separator and one line per row (a list of cell texts)."""
    return [markdown_row(columns), "|" + "---|" * len(columns), *map(markdown_row, rows)]


def markdown_pivot(cells, corner: str, columns: list[str] | None = None) -> list[str]:
    """(row, column, text) cells as a Markdown table: one row per row name (sorted), one column per column name
    (in `columns` order; by default in order of first appearance), a blank where a row has no such column;
    `corner` heads the row names."""
    cells = list(cells)
    names = list(dict.fromkeys(c for _, c, _ in cells)) if columns is None else columns
    found = {(r, c): text for r, c, text in cells}
    rows = [[row, *(found.get((row, name), "") for name in names)] for row in sorted({r for r, _, _ in cells})]
    return markdown_table([corner, *names], rows)


@dataclass(frozen=True)
class RadarStyle:
    """How a radar chart is drawn. The defaults are the robustness and representation charts'; the transfer
    chart keeps its own look (TRANSFER_RADAR), so that the PNG of neither changes."""

    fill_alpha: float | None = 0.1  # None: outlines only
    label_size: float | str | None = 8  # None: matplotlib's default size
    title_size: float | str | None = 10
    legend: dict = field(default_factory=lambda: {"loc": "upper right", "bbox_to_anchor": (1.3, 1.1), "fontsize": 8})
    radial_limits: tuple[float, float] | None = None  # None: from the data
    crop: bool = False  # True: cropped to what is drawn (bbox_inches="tight"), else tight_layout


TRANSFER_RADAR = RadarStyle(
    fill_alpha=None,
    label_size=None,
    title_size=None,
    legend={"loc": "lower right", "bbox_to_anchor": (1.25, -0.1), "fontsize": "small"},
    radial_limits=(0, 100),
    crop=True,
)


@dataclass(frozen=True)
class Radar:
    """A radar chart: one closed line per series over `axes`, a missing value (None, NaN) drawn at 0."""

    axes: list[str]
    series: dict[str, list[float]]
    title: str
    style: RadarStyle = RadarStyle()


def _size(size) -> dict:
    return {} if size is None else {"fontsize": size}


def draw_radar(radar: Radar, path) -> None:
    """The chart as a PNG at `path` (without axes: the title alone)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on cluster nodes
    import matplotlib.pyplot as plt

    style = radar.style
    fig, ax = plt.subplots(figsize=(6, 6), subplot_kw={"polar": True})
    if radar.axes:
        angles = [2 * math.pi * i / len(radar.axes) for i in range(len(radar.axes))]
        for name, values in radar.series.items():
            values = [0.0 if v is None or math.isnan(v) else v for v in values]
            ax.plot(angles + angles[:1], values + values[:1], marker="o", label=name)
            if style.fill_alpha is not None:
                ax.fill(angles + angles[:1], values + values[:1], alpha=style.fill_alpha)
        ax.set_xticks(angles)
        ax.set_xticklabels(radar.axes, **_size(style.label_size))
        if style.radial_limits:
            ax.set_ylim(*style.radial_limits)
        ax.legend(**style.legend)
    ax.set_title(radar.title, **_size(style.title_size))
    if not style.crop:
        fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100, **({"bbox_inches": "tight"} if style.crop else {}))
    plt.close(fig)


def write_table(table: pd.DataFrame, markdown_text: str, *, csv, markdown, png=None, radar: Radar | None = None):
    """A result table's files: the long CSV (floats to 6 decimals), its Markdown text and, when given, its
    radar chart at `png`. Returns the table."""
    Path(csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv, index=False, float_format="%.6f")
    Path(markdown).write_text(markdown_text)
    if radar is not None:
        draw_radar(radar, png)
    return table
