"""Progress from the files on disk: the status command in the middle of a real run, and progress log lines."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import copy_workflow, run_snakemake, share_resources

from imagenet_sd.ops.status import load_config
from imagenet_sd.plan import build_plan
from imagenet_sd.progress import Progress, duration


def test_progress_logs_rate_and_eta_at_a_steady_interval(caplog):
    now = [0.0]
    progress = Progress(
        "pack train shards", 200, interval=10, clock=lambda: now[0], logger=logging.getLogger("test.progress")
    )
    with caplog.at_level(logging.INFO, logger="test.progress"):
        for _ in range(100):  # 2 images/s for 50 s
            now[0] += 0.5
            progress.update()
        progress.finish()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5 + 1  # one line every 10 s, then the final one
    assert lines[2] == "pack train shards: 60/200 images (30.0%), 2 images/s, elapsed 30s, ETA 1m10s"
    assert lines[-1].endswith("ETA 50s (done)")
    assert duration(7300) == "2h01m"


def count_images(tars: list[Path]) -> int:
    total = 0
    for path in tars:
        with tarfile.open(path) as tar:
            total += sum(1 for m in tar.getmembers() if m.name.endswith(".jpg"))
    return total


def status(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imagenet_sd.ops.status", *args],
        cwd=workdir,
        text=True,
        capture_output=True,
        check=True,
        env=dict(os.environ, PYTHONPATH=str(workdir)),
    )


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
