"""The workflow tier of test_status: its tests that run the real Snakemake (the unit tests are in
tests/unit/test_status.py)."""

from __future__ import annotations

import json
import os

import pytest
from conftest import copy_workflow, run_snakemake, share_resources
from test_status import count_images, status  # noqa: F401 (fixtures among them)

from imagenet_sd.ops.status import load_config
from imagenet_sd.planning.clones import build_plan


def test_status_of_a_run_stopped_half_way_counts_the_files_on_disk(built_resources, tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    share_resources(workdir, built_resources)
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        plan = build_plan(load_config("config.yaml"), check_wnids=False)  # schema defaults filled, as Snakemake does
    finally:
        os.chdir(cwd)
    train, heldout = plan.clone_chunks("demo", "train"), plan.clone_chunks("demo", "heldout")
    run_snakemake(workdir, *train[:2], heldout[0])  # the run stops here: 3 of 12 chunks
    # A chunk the generate job is writing right now (atomic_path's temporary name beside the final one).
    writing = workdir / train[3]
    writing.parent.mkdir(parents=True, exist_ok=True)
    (writing.parent / f".{writing.name}.x1y2.partial").write_bytes(b"")

    report = json.loads(status(workdir, "--json").stdout)
    clone = report["clones"][0]
    tars = sorted(workdir.glob("results/generated/**/*.tar"))
    assert clone["chunks_done"] == len(tars) == 3
    assert clone["chunks_total"] == len(train) + len(heldout) == 12
    assert clone["images_done"] == count_images(tars) == 16 + 16 + 8
    assert clone["images_total"] == 6 * (16 + 8)
    assert clone["chunks_running"] == 1
    assert clone["images_per_second"] > 0
    assert clone["eta_seconds"] == pytest.approx((144 - 40) / clone["images_per_second"])
    stats = [json.loads(p.with_suffix(".json").read_text()) for p in tars]
    assert clone["regenerated"] == sum(s["regenerated"] for s in stats)
    run = report["runs"][0]
    assert (run["packed"], run["trained"], run["epoch"], run["evaluations_done"]) == (False, False, None, [])

    text = status(workdir, "--configfile", "config.yaml").stdout
    assert "clone demo: chunks 3/12 done (1 being written), images 40/144" in text
    assert "run demo: waiting for pack; evaluations 0/1 done" in text
