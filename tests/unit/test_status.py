"""Progress from the files on disk: the status command in the middle of a real run, and progress log lines."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tarfile
from pathlib import Path

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
