"""What goes into `snakemake --report`: the registry of result tables and figures, HTML tables, and the
generation statistics of a clone aggregated from its chunks' stats JSONs.

Adding a table or a figure to the report is one entry in TABLES or FIGURES (plus its caption under report/):
the `report_table` / `report_figure` rules turn any registered file into a report page.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from imagenet_sd.config import schema
from imagenet_sd.report.evaluation_tables import run_budgets, training_budget


@dataclass(frozen=True)
class Entry:
    source: str  # the workflow's own output the report shows
    category: str  # report category (left-hand menu)
    caption: str  # reStructuredText caption, relative to the workflow root


# name -> entry. A name is listed in the report only if the current config produces its source
# (see `report_outputs` in imagenet_sd/planning/report.py).
TABLES: dict[str, Entry] = {
    "evaluation": Entry("results/tables/evaluation.csv", "Result tables", "report/evaluation.rst"),
    "prompts": Entry("results/tables/prompts.csv", "Prompts", "report/prompts.rst"),
    "transfer": Entry("results/tables/transfer.csv", "Result tables", "report/transfer.rst"),
    "robustness": Entry("results/tables/robustness.csv", "Result tables", "report/robustness.rst"),
    "representation": Entry("results/tables/representation.csv", "Result tables", "report/representation.rst"),
    "quality": Entry("results/tables/quality.csv", "Clones", "report/quality.rst"),
    "quality_clones": Entry("results/tables/quality_clones.csv", "Clones", "report/quality_clones.rst"),
    "quality_worst": Entry("results/tables/quality_worst.csv", "Clones", "report/quality_worst.rst"),
}
FIGURES: dict[str, Entry] = {
    "transfer": Entry("results/tables/transfer.png", "Plots", "report/transfer_spider.rst"),
    "robustness": Entry("results/tables/robustness.png", "Plots", "report/robustness_spider.rst"),
    "representation": Entry("results/tables/representation.png", "Plots", "report/representation_spider.rst"),
}


def caption_text(root: str | Path, entry: Entry, config: dict) -> str:
    """The entry's caption, its Jinja fields (``{{ config[...] }}``, ``{{ training_budget }}``: whether the runs
    share their epochs or their images seen) filled from the config."""
    import jinja2

    budget = training_budget(run_budgets(config))
    return jinja2.Template((Path(root) / entry.caption).read_text()).render(config=config, training_budget=budget)


# ---- HTML tables ---------------------------------------------------------------------------------------
STYLE = """<style>
body{font-family:system-ui,sans-serif;font-size:13px;margin:12px;color:#111}
h1{font-size:17px;margin:4px 0 8px}h2{font-size:15px;margin:16px 0 6px}p{max-width:70em}
table{border-collapse:collapse;margin:4px 0 12px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f0f0f0}td.text{text-align:left;max-width:40em}tr:nth-child(even){background:#fafafa}
</style>"""


def _cell(value) -> str:
    if isinstance(value, float):
        return f"<td>{value:.4g}</td>" if pd.notna(value) else "<td></td>"
    if isinstance(value, (bool, int)) or value is None:
        return f"<td>{'' if value is None else value}</td>"
    return f'<td class="text">{html.escape(str(value))}</td>'


def html_table(frame: pd.DataFrame, table_id: str) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "\n".join(
        "<tr>" + "".join(_cell(v) for v in row) + "</tr>"
        for row in frame.astype(object).where(frame.notna(), None).itertuples(index=False)
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'


def rst_html(text: str) -> str:
    """A reStructuredText caption as an HTML fragment (the report's own captions are rst too)."""
    from docutils.core import publish_parts

    return publish_parts(text, writer_name="html", settings_overrides={"report_level": 4})["body"]


def html_page(title: str, sections: list[tuple[str, str, pd.DataFrame]], caption: str = "") -> str:
    """sections: (heading, explanation, table); caption: rst shown above them."""
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{STYLE}</head>",
        f"<body><h1>{html.escape(title)}</h1>",
        rst_html(caption) if caption else "",
    ]
    for n, (heading, text, frame) in enumerate(sections):
        if heading:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
        if text:
            parts.append(f"<p>{html.escape(text)}</p>")
        parts.append(html_table(frame, f"table-{n}") if len(frame) else "<p><em>No rows.</em></p>")
    return "\n".join(parts + ["</body></html>\n"])


def prompt_sections(table: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """The prompt table with, first, how many prompts of each clone the text encoder truncates."""
    per_clone = (
        table.groupby("clone")
        .agg(
            classes=("wnid", "size"),
            images=("images", "sum"),
            truncated=("truncated", "sum"),
            classes_truncated=("truncated", lambda s: int((s > 0).sum())),
            max_tokens_seen=("max_tokens_seen", "max"),
        )
        .reset_index()
    )
    return [
        (
            "Truncation per clone",
            "Train prompts longer than the text encoder's token limit are cut (or "
            "handled as the recipe's `overflow` says); counts are over every train image of the clone.",
            per_clone,
        ),
        ("Per class", "Three example train prompts per class.", table),
    ]


def table_page(name: str, csv_path: str | Path, output: str | Path, caption: str = "") -> None:
    """A registered table as an HTML page, its caption (what the numbers are) above it."""
    table = pd.read_csv(csv_path, keep_default_na=False, na_values=[""])
    sections = prompt_sections(table) if name == "prompts" else [("", "", table)]
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(html_page(f"{name} ({Path(csv_path).name})", sections, caption))


# ---- generation statistics -----------------------------------------------------------------------------
CHUNK_COLUMNS = [
    "split",
    "wnid",
    "start",
    "stop",
    "images",
    "seconds",
    "images_per_second",
    "steady_images_per_second",
    "mfu",
    "achieved_tflops",
    "regenerated",
    "unresolved",
    "failed_checks",
    "device",
    "peak_memory_gb",
    "tar_mb",
]


def _count(failures) -> int:
    """Images that failed a check on any attempt (the stats JSON counts them per kind: black, NaN, NSFW)."""
    return sum(failures.values()) if isinstance(failures, dict) else int(failures or 0)


def chunk_row(path: str | Path) -> dict:
    stats = json.loads(Path(path).read_text())
    return {
        "split": stats.get("split"),
        "wnid": stats.get("wnid"),
        "start": stats.get("start"),
        "stop": stats.get("stop"),
        "images": stats.get("images"),
        "seconds": stats["seconds"]["total"],
        "images_per_second": stats.get("images_per_second"),
        "steady_images_per_second": stats.get("steady_images_per_second"),
        "mfu": stats.get("mfu"),
        "achieved_tflops": stats.get("achieved_tflops"),
        "regenerated": stats.get("regenerated", 0),
        "unresolved": stats.get("unresolved", 0),
        "failed_checks": _count(stats.get("failures")),
        "device": stats.get("device"),
        "peak_memory_gb": (stats.get("peak_memory_bytes") or 0) / 2**30,
        "tar_mb": (stats.get("tar_bytes") or 0) / 1e6,
    }


def generation_tables(stats_files: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per chunk, per split and device): images/s of an aggregate is images over summed job seconds,
    i.e. the throughput of one GPU; MFU is the mean over chunks weighted by their seconds."""
    chunks = pd.DataFrame([chunk_row(p) for p in stats_files], columns=CHUNK_COLUMNS)
    if chunks.empty:
        return chunks, chunks
    weighted = chunks.assign(mfu_seconds=chunks.mfu.astype(float) * chunks.seconds)
    total = (
        weighted.groupby(["split", "device"])
        .agg(
            chunks=("images", "size"),
            images=("images", "sum"),
            gpu_hours=("seconds", lambda s: s.sum() / 3600),
            mfu_seconds=("mfu_seconds", lambda s: s.sum(min_count=1)),
            seconds=("seconds", "sum"),
            regenerated=("regenerated", "sum"),
            unresolved=("unresolved", "sum"),
        )
        .reset_index()
    )
    total.insert(4, "images_per_second", total.images / total.seconds)
    total["mfu"] = total.mfu_seconds / total.seconds
    return chunks, total.drop(columns=["mfu_seconds", "seconds"])


def generation_page(
    *, clone: str, stats_files: list[str], csv: str | Path, output: str | Path, generator: dict | None = None
) -> pd.DataFrame:
    """The clone's generation page; `generator` (name, model, licence) heads it: the licence of the weights
    that made the clone stands beside its numbers (some forbid uses of their outputs)."""
    chunks, total = generation_tables(stats_files)
    Path(csv).parent.mkdir(parents=True, exist_ok=True)
    chunks.to_csv(csv, index=False, float_format="%.6g")
    note = "The model that made the clone and its licence (as on the dataset card)."
    sections = [("Generator", note, pd.DataFrame([generator]))] if generator else []
    sections += [
        (
            "Per split and device",
            "Images/s: images over the summed wall time of the chunk jobs (one job, "
            "one GPU); MFU: model FLOPs utilisation, time-weighted over chunks (empty on CPU or float32); "
            "re-drawn: images rendered again after a failed check; unresolved: still failed after the last "
            "re-draw (kept, marked in their JSON).",
            total,
        ),
        ("Per chunk", "", chunks),
    ]
    Path(output).write_text(html_page(f"Generation of clone {clone}", sections))
    return total


# ---- settings ------------------------------------------------------------------------------------------
def report_settings(config: dict) -> dict:
    """The config's `report` section over the schema's defaults (the one place they are written), less
    `about`: the front page's text, which the report template reads itself (no sheet job reruns for it)."""
    props = schema()["properties"]["report"]["properties"]
    settings = {**{k: spec.get("default") for k, spec in props.items()}, **(config.get("report") or {})}
    settings.pop("about", None)
    return settings


def class_label(index: int, record: dict) -> str:
    """`12. clothes iron (n03584829)`: the class name the prompts use, from the class's prompt file."""
    fields = record.get("recipes", {}).get(record.get("recipe"), {}).get("fields") or {}
    name = record.get("name_override") or fields.get("c") or record.get("synset", {}).get("name") or ""
    return f"{index}. {name} ({record['wnid']})"
