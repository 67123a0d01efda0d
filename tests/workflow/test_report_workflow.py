"""The workflow tier of test_report: its tests that run the real Snakemake (the unit tests are in
tests/unit/test_report.py)."""

from __future__ import annotations

import pytest
from browser import find_chromium
from conftest import copy_workflow, planned_jobs, run_snakemake, toy_config
from PIL import Image
from test_report import ARTIFACTS, IFRAME_HTML, IMAGE_SHOWN, LOADED, open_in_browser, show  # noqa: F401 (fixtures among them)


def test_full_scale_report_plans_a_sample_not_the_clone(tmp_path):
    """Planning the ImageNet-1K-SD report: its contact sheet needs 12 of the 1,000 first chunks."""
    workdir = copy_workflow(tmp_path / "wf")
    jobs = planned_jobs(
        workdir, "results/report/clones/in1k-sd/contact_sheet.jpg", "--configfile", "config/imagenet1k_sd.yaml"
    )
    assert jobs["contact_sheet"] == 1
    assert jobs["generate"] == 12 and jobs["prompts"] == 12


def test_clones_differing_in_recipe_get_a_side_by_side_sheet(tmp_path):
    config = toy_config()
    config["recipes"]["c"] = {"family": "c"}
    config["clones"]["demo-c"] = {**config["clones"]["demo"], "recipe": "c"}
    workdir = copy_workflow(tmp_path / "wf", config)
    jobs = planned_jobs(workdir, "results/report/compare/demo.jpg")
    assert jobs["comparison_sheet"] == 1
    assert jobs["generate"] == 2 * 6  # the first train chunk of each of the 6 classes, for each recipe
    assert planned_jobs(workdir)["comparison_sheet"] == 1  # and `rule all` asks for it


@pytest.mark.e2e
def test_report_opens_in_a_browser_with_sheets_tables_and_plots(demo_run, tmp_path):
    made = run_snakemake(demo_run, "--report", "results/report.html")
    # docutils reports markup it cannot read (an empty ``literal``, say) as "(WARNING/2)" and renders it raw
    assert "(WARNING/" not in made.stdout + made.stderr, made.stderr[-3000:]
    report = demo_run / "results" / "report.html"
    assert report.stat().st_size < 5 * 2**20
    assert "The paper's question in miniature" in report.read_text()  # the config's report.about, on the front page
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no chromium: `make test` installs Debian's chromium package (as root)")
    browser = open_in_browser(chromium, tmp_path, report.as_uri())
    shots = {}
    try:
        browser.wait_for(LOADED)
        assert browser.evaluate("Object.keys(results).length") >= 5
        show(browser, ["Clones", "demo"], "contact sheet")
        size = browser.evaluate(IMAGE_SHOWN)
        assert size and size[0] > 500 and size[1] > 300, size  # a decoded sheet, rows of thumbnails
        shots["contact_sheet"] = browser.screenshot(ARTIFACTS / "report-contact-sheet.png")

        show(browser, ["Result tables"], "evaluation")
        table = browser.evaluate(IFRAME_HTML)
        assert "<table" in table and "digits-heldout" in table and "top1" in table
        assert "held out of the real clone" in table  # the caption says what the numbers are
        shots["table"] = browser.screenshot(ARTIFACTS / "report-table.png")

        show(browser, ["Training"], "digits-sd")
        size = browser.evaluate(IMAGE_SHOWN)
        assert size and size[0] > 400, size
        shots["plot"] = browser.screenshot(ARTIFACTS / "report-training-curves.png")
    finally:
        browser.close()
    for name, path in shots.items():
        assert Image.open(path).size == (1600, 1200)
        print(f"report screenshot ({name}): {path}")
