"""Progress lines for long jobs: done / total, rate and ETA, written to the job's log at a steady interval.

A job calls `update(n)` as often as it likes (per image, per batch, per shard); a line is logged only when
`interval` seconds have passed since the last one, and once more at `finish()`. `tail -f` on a log file then
says how far a job has come and when it will end, on a laptop or inside a SLURM job alike.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

DEFAULT_INTERVAL = float(os.environ.get("IMAGENET_SD_PROGRESS_SECONDS", "60"))


def duration(seconds: float) -> str:
    """12s, 3m05s, 2h07m: short and sortable by eye."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    def __init__(
        self,
        what: str,
        total: int | None,
        *,
        unit: str = "images",
        interval: float | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.what, self.total, self.unit = what, total, unit
        self.interval = DEFAULT_INTERVAL if interval is None else interval
        self.log = logger or logging.getLogger("imagenet_sd.progress")
        self.clock = clock
        self.done = 0
        self.started = self.last = clock()
        self.lines = 0

    def rate(self) -> float:
        elapsed = self.clock() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        elapsed = self.clock() - self.started
        rate = self.rate()
        parts = [f"{self.what}: {self.done}"]
        if self.total:
            parts[0] += f"/{self.total} {self.unit} ({100 * self.done / self.total:.1f}%)"
        else:
            parts[0] += f" {self.unit}"
        parts.append(f"{rate:.3g} {self.unit}/s")
        parts.append(f"elapsed {duration(elapsed)}")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {duration((self.total - self.done) / rate)}")
        return ", ".join(parts)

    def update(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self.lines += 1
            self.log.info(self.line())

    def finish(self) -> None:
        self.lines += 1
        self.log.info(self.line() + " (done)")
