"""What the result tables share: the (real) label, the Markdown table and pivot, the radar chart and the writer
of a table's files."""

import math

import pandas as pd

from imagenet_sd.report.result_tables import (
    TRANSFER_RADAR,
    Radar,
    draw_radar,
    markdown_pivot,
    markdown_table,
    model_label,
    write_table,
)


def test_only_a_model_trained_on_real_images_is_marked_real():
    assert [model_label("m", kind) for kind in ("real", "synthetic", "external")] == ["m (real)", "m", "m"]


def test_a_markdown_table_has_a_header_a_separator_and_a_line_per_row():
    assert markdown_table(["model", "a"], [["x", "1.0"], ["y", ""]]) == [
        "| model | a |",
        "|---|---|",
        "| x | 1.0 |",
        "| y |  |",
    ]


def test_the_pivot_sorts_rows_keeps_column_order_and_leaves_missing_cells_blank():
    cells = [("syn", "val", "50.0"), ("ref (real)", "held", "1.0"), ("ref (real)", "val", "70.0")]
    assert markdown_pivot(cells, "model") == [
        "| model | val | held |",
        "|---|---|---|",
        "| ref (real) | 70.0 | 1.0 |",
        "| syn | 50.0 |  |",
    ]
    assert markdown_pivot(cells, "run", ["held", "val"])[0] == "| run | held | val |"


def test_a_missing_value_is_drawn_at_zero(tmp_path):
    axes = ["a", "b", "c"]
    for name, value in (("nan", math.nan), ("none", None), ("zero", 0.0)):
        draw_radar(Radar(axes, {"m": [50.0, value, 80.0]}, "t"), tmp_path / f"{name}.png")
    zero = (tmp_path / "zero.png").read_bytes()
    assert (tmp_path / "nan.png").read_bytes() == zero and (tmp_path / "none.png").read_bytes() == zero


def test_the_writer_saves_the_csv_the_markdown_and_the_chart_of_any_table(tmp_path):
    table = pd.DataFrame({"model": ["m"], "top1": [1 / 3]})
    out = tmp_path / "new" / "tables"
    files = {"csv": out / "t.csv", "markdown": out / "t.md", "png": out / "t.png"}
    radar = Radar(["a", "b", "c"], {"m": [10.0, 20.0, 30.0]}, "t", TRANSFER_RADAR)
    assert write_table(table, "# T\n", radar=radar, **files) is table
    assert files["csv"].read_text() == "model,top1\nm,0.333333\n" and files["markdown"].read_text() == "# T\n"
    assert files["png"].read_bytes()[:4] == b"\x89PNG"
    write_table(table, "# T\n", csv=out / "u.csv", markdown=out / "u.md")  # a table without a chart
    assert sorted(p.name for p in out.iterdir()) == ["t.csv", "t.md", "t.png", "u.csv", "u.md"]


def test_a_radar_without_axes_is_its_title_alone(tmp_path):
    draw_radar(Radar([], {}, "Linear-probe top-1 (%)", TRANSFER_RADAR), tmp_path / "empty.png")
    assert (tmp_path / "empty.png").read_bytes()[:4] == b"\x89PNG"
