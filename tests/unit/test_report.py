"""The report: contact sheets from a fixed small sample, generation statistics, training curves, result tables,
and the whole `snakemake --report` page opened in a real headless Chromium."""

from __future__ import annotations

import json
import os
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import Browser
from conftest import REPO, jpeg_bytes, write_chunk_tar
from PIL import Image

from imagenet_sd.generate.chunk_check import DamagedChunk
from imagenet_sd.quality.cards import licence
from imagenet_sd.report import contact_sheets as cs
from imagenet_sd.report.curves import training_curves
from imagenet_sd.report.report import generation_page, generation_tables, table_page

ARTIFACTS = Path(os.environ.get("REPORT_ARTIFACTS", REPO / "results" / "test-artifacts"))


def write_chunk(path: Path, wnid: str, n: int, colour: int, cut_after: int | None = None) -> Path:
    """A chunk tar in the generate job's layout, without its stats record, optionally cut short."""
    images = [
        (
            jpeg_bytes(np.full((64, 64, 3), (colour + 20 * i) % 256, np.uint8)),
            {
                "key": f"{wnid}_{i:06d}",
                "prompt": f"prompt {i} of {wnid}, a long definition " * 3,
                "failed": "black" if i == 1 else None,
            },
        )
        for i in range(n)
    ]
    write_chunk_tar(path, wnid, images, record=False)
    if cut_after is not None:  # the tar ends in the middle of image `cut_after`: only a full read notices
        with tarfile.open(path) as tar:
            cut = tar.getmember(f"{wnid}_{cut_after:06d}.jpg").offset_data + 10
        os.truncate(path, cut)
    return path


def test_sample_is_fixed_and_spans_the_class_list():
    assert cs.sample_indices(5, 12) == [0, 1, 2, 3, 4]
    sample = cs.sample_indices(1000, 12)
    assert len(sample) == 12 and sample[0] == 0 and sample[-1] == 999
    assert sample == cs.sample_indices(1000, 12)
    assert cs.sample_indices(1000, 1) == [0]


def test_sheet_reads_only_the_first_images_and_fits_its_budget(tmp_path):
    # Tars cut after the sampled images: a reader that went through a whole tar would fail on them.
    chunks = {
        w: str(write_chunk(tmp_path / f"{w}.tar", w, 6, c, cut_after=4))
        for w, c in (("n01440764", 0), ("n01443537", 90), ("n01484850", 180))
    }
    tiles = cs.read_tiles(chunks["n01440764"], 3, 48)
    assert [t.prompt.split(",")[0] for t in tiles] == [
        "prompt 0 of n01440764",
        "prompt 1 of n01440764",
        "prompt 2 of n01440764",
    ]
    assert [t.failed for t in tiles] == [False, True, False] and tiles[0].image.size == (48, 48)
    with pytest.raises(DamagedChunk, match=f"{chunks['n01440764']}: not a readable tar"):  # the cut is real
        cs.read_tiles(chunks["n01440764"], 99, 48)

    labels = {w: f"{i}. class {w}" for i, w in enumerate(chunks)}
    out = tmp_path / "sheet.jpg"
    size = cs.contact_sheet(chunks=chunks, labels=labels, title="t", output=out, size=cs.SheetSize(4, 96, 200 * 1024))
    sheet = Image.open(out)
    assert size == out.stat().st_size <= 200 * 1024
    assert sheet.width >= 4 * 96 and sheet.height >= 3 * 96  # 3 rows of 4 thumbnails
    # A tight budget lowers the quality, then the size, instead of overflowing.
    small = cs.contact_sheet(
        chunks=chunks, labels=labels, title="t", output=tmp_path / "s.jpg", size=cs.SheetSize(4, 96, 60 * 1024)
    )
    assert small <= 60 * 1024 < size or size <= 60 * 1024


def test_comparison_sheet_has_a_row_per_clone_and_shared_class(tmp_path):
    a = {w: str(write_chunk(tmp_path / "a" / f"{w}.tar", w, 2, 0)) for w in ("n01440764", "n01443537")}
    b = {"n01440764": str(write_chunk(tmp_path / "b" / "n01440764.tar", "n01440764", 2, 128))}
    out = tmp_path / "cmp.jpg"
    cs.comparison_sheet(
        clones={"a": a, "b": b},
        labels={w: w for w in a},
        captions={"a": "A", "b": "B"},
        title="a vs b",
        output=out,
        size=cs.SheetSize(2, 64, 300 * 1024),
    )
    single = tmp_path / "one.jpg"
    cs.contact_sheet(
        chunks={"n01440764": a["n01440764"]},
        labels={"n01440764": "x"},
        title="x",
        output=single,
        size=cs.SheetSize(2, 64, 300 * 1024),
    )
    # One shared class, two clones -> two rows: twice the height of a one-row sheet, less the title bar.
    assert Image.open(out).height > 1.8 * (Image.open(single).height - 28)
    with pytest.raises(ValueError, match="share no sampled class"):
        cs.comparison_sheet(
            clones={"a": {"n01443537": a["n01443537"]}, "b": b},
            labels={"n01443537": "y"},
            captions={"a": "A", "b": "B"},
            title="t",
            output=out,
            size=cs.SheetSize(1, 64, 10**6),
        )


def write_stats(path: Path, split: str, images: int, seconds: float, mfu, regenerated=0, unresolved=0) -> str:
    path.write_text(
        json.dumps(
            {
                "images": images,
                "start": 0,
                "stop": images,
                "split": split,
                "wnid": path.stem,
                "seconds": {"total": seconds},
                "images_per_second": images / seconds,
                "mfu": mfu,
                "regenerated": regenerated,
                "unresolved": unresolved,
                "device": "NVIDIA H100 80GB HBM3",
                "peak_memory_bytes": 2**30,
                "tar_bytes": 10**6,
            }
        )
    )
    return str(path)


def test_generation_statistics_aggregate_chunks(tmp_path):
    files = [
        write_stats(tmp_path / "n1.json", "train", 100, 10.0, 0.4, regenerated=2),
        write_stats(tmp_path / "n2.json", "train", 300, 30.0, 0.2, unresolved=1),
        write_stats(tmp_path / "n3.json", "heldout", 50, 5.0, None),
    ]
    chunks, total = generation_tables(files)
    assert len(chunks) == 3
    train = total[total.split == "train"].iloc[0]
    assert train.images == 400 and train.chunks == 2
    assert train.images_per_second == pytest.approx(10.0)
    assert train.mfu == pytest.approx((0.4 * 10 + 0.2 * 30) / 40)  # time-weighted
    assert (train.regenerated, train.unresolved) == (2, 1)
    assert train.gpu_hours == pytest.approx(40 / 3600)


def test_a_clones_generation_page_names_its_generators_licence_as_its_card_does(tmp_path):
    files = [write_stats(tmp_path / "n1.json", "train", 100, 10.0, 0.4)]
    made_of = {"generator": {"model": "black-forest-labs/FLUX.1-schnell"}, "pipeline": None}
    generator = {"generator": "flux-schnell", "model": "black-forest-labs/FLUX.1-schnell", "licence": licence(made_of)}
    generation_page(
        clone="c", stats_files=files, csv=tmp_path / "a.csv", output=tmp_path / "a.html", generator=generator
    )
    page = (tmp_path / "a.html").read_text()
    assert "<h2>Generator</h2>" in page and "Apache 2.0" in page
    assert page.index("Apache 2.0") < page.index("Per split and device")  # above the numbers
    # without a generator (as before), the CSV is the same bytes: only the page gains the section
    generation_page(clone="c", stats_files=files, csv=tmp_path / "b.csv", output=tmp_path / "b.html")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert "<h2>Generator</h2>" not in (tmp_path / "b.html").read_text()


def test_training_curves_show_top1_only_when_logged(tmp_path):
    lines = [{"event": "step", "step": s, "epoch": 0, "loss": 5 - s / 10, "lr": 0.1 * s / 4} for s in range(1, 5)]
    lines.append({"event": "epoch", "epoch": 0, "step": 4, "loss": 4.8, "seconds": 1.0})
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    assert training_curves(metrics, tmp_path / "a.png", "run") == ["loss", "lr"]
    metrics.write_text(
        metrics.read_text() + json.dumps({"event": "step", "step": 5, "loss": 4, "lr": 0.1, "train_top1": 12.5}) + "\n"
    )
    assert training_curves(metrics, tmp_path / "b.png", "run") == ["loss", "lr", "train_top1"]
    assert Image.open(tmp_path / "b.png").width > Image.open(tmp_path / "a.png").width


def test_prompt_table_page_sums_truncations(tmp_path):
    rows = pd.DataFrame(
        {
            "clone": ["a", "a", "b"],
            "class_index": [0, 1, 0],
            "wnid": ["n1", "n2", "n1"],
            "images": [10, 10, 5],
            "truncated": [3, 0, 1],
            "max_tokens_seen": [80, 20, 90],
            "example_1": ["x <b>", "y", "z"],
        }
    )
    rows.to_csv(tmp_path / "prompts.csv", index=False)
    table_page("prompts", tmp_path / "prompts.csv", tmp_path / "p.html")
    page = (tmp_path / "p.html").read_text()
    assert page.count("<table") == 2
    per_clone = page.split("<table")[1]
    # clone a: 2 classes, 20 images, 3 truncated prompts in 1 class, longest 80 tokens
    assert '<tr><td class="text">a</td><td>2</td><td>20</td><td>3</td><td>1</td><td>80</td></tr>' in per_clone
    assert "x &lt;b&gt;" in page  # cells are escaped


def open_in_browser(chromium: str, tmp_path, uri: str, tries: int = 3) -> Browser:
    """A headless Chromium showing `uri`. A browser that dies while starting (seen on a loaded CI machine: the
    pipe closed during Target.createTarget) is started again, with a fresh profile; what each failed browser
    printed is part of the error."""
    failures = []
    for attempt in range(tries):
        browser = None
        try:
            browser = Browser(chromium, tmp_path / f"profile-{attempt}", width=1600, height=1200)
            browser.open(uri)
            return browser
        except (RuntimeError, TimeoutError) as err:
            failures.append(f"try {attempt + 1}: {err}")
            if browser is not None:
                browser.close()
            time.sleep(2)
    raise RuntimeError("chromium did not start:\n" + "\n".join(failures))


# The report is a React page: menu items and result rows are links; a view button (the row's first link) shows
# the result in the content pane.
CLICK_MENU = """(() => {{
  const a = [...document.querySelectorAll('a')].find(x => x.textContent.trim() === {label});
  if (a) {{ a.click(); return true; }}
  const home = document.querySelector('nav ol li a');  // the breadcrumbs' first link: back to the menu
  if (home && {top}) home.click();
  return false; }})()"""
LOADED = """document.readyState === 'complete' && typeof results !== 'undefined'
  && [...document.querySelectorAll('a')].some(a => a.textContent.trim() === 'Workflow')"""
CLICK_ROW = """(() => {{
  const row = [...document.querySelectorAll('tr')].find(r => r.textContent.includes({label}) && r.querySelector('a'));
  if (!row) return false; row.querySelector('a').click(); return true; }})()"""
IMAGE_SHOWN = """(async () => {  // the largest image on the page (icons are images too)
  const imgs = [...document.querySelectorAll('img')].filter(i => i.src.startsWith('data:image/'));
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  const sizes = imgs.map(i => [i.naturalWidth, i.naturalHeight]).sort((a, b) => b[0] * b[1] - a[0] * a[1]);
  return sizes.length ? sizes[0] : null; })()"""
IFRAME_HTML = """(() => {
  const f = document.querySelector('iframe'); if (!f) return '';
  const [head, body] = f.src.split(',', 2);
  return head.endsWith(';base64') ? atob(body) : decodeURIComponent(body); })()"""


def show(browser: Browser, menu: list[str], row: str) -> None:
    """Click a category, then (if the report lists subcategories) the subcategory, then a result's view button."""
    browser.wait_for(CLICK_MENU.format(label=json.dumps(menu[0]), top="true"))
    for label in menu[1:]:  # a category with a single subcategory opens it directly
        browser.evaluate(CLICK_MENU.format(label=json.dumps(label), top="false"))
    browser.wait_for(CLICK_ROW.format(label=json.dumps(row)))
