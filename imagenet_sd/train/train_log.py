"""What a training run reports: metrics.jsonl, and the running sums behind its lines."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from imagenet_sd.train.distributed import mean_over_ranks

log = logging.getLogger("imagenet_sd.train.training")


class MetricsLog:
    """metrics.jsonl: one JSON line per logged step and per epoch, flushed as written (runs are watched live).

    `path` None: nothing is written (ranks other than 0).
    """

    def __init__(self, path, lines=()):
        self.lines, self.file = list(lines), None
        if path is None:
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "w")  # noqa: SIM115 - closed in close()
        self.file.writelines(json.dumps(line) + "\n" for line in self.lines)
        self.file.flush()

    def write(self, **record):
        self.lines.append(record)
        if self.file is None:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        log.info(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))

    def close(self):
        if self.file is not None:
            self.file.close()


@dataclass
class Tally:
    """Sums since the last reset, kept on the device (no host sync per step)."""

    loss: torch.Tensor
    correct: torch.Tensor
    batches: int = 0
    images: int = 0
    since: float = field(default_factory=time.perf_counter)

    @classmethod
    def zero(cls, device) -> Tally:
        return cls(torch.zeros((), device=device), torch.zeros((), device=device))

    def add(self, loss: torch.Tensor, correct: torch.Tensor, images: int) -> None:
        self.loss += loss.detach()
        self.correct += correct
        self.batches, self.images = self.batches + 1, self.images + images

    def summary(self, ranks: int) -> dict:
        """Mean loss and global-crop top-1 (%) over the ranks, images/s of all ranks; stops on a non-finite loss."""
        loss = mean_over_ranks(self.loss / max(self.batches, 1)).item()
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"the training loss is {loss}: stopping instead of training on. Lower the "
                "learning rate (or check the data); the last resume state is kept."
            )
        top1 = 100 * mean_over_ranks(self.correct / max(self.images, 1)).item()
        return {"loss": loss, "top1": top1, "img_per_s": self.images * ranks / (time.perf_counter() - self.since)}
