"""Stopping a training run and resuming it: the stop signals, the resume state, and its identity check.

A batch scheduler warns a job before its time limit with a signal (SLURM: `--signal=TERM@900`); the training
then saves a resume state after the step in flight (epoch and position within it included) and exits with
an error, so that Snakemake's retry starts the job again and it continues where it stopped. A state that
does not belong to the current training (other settings, data, loader streams or devices) is never deleted
or silently ignored: the job stops and says what differs and how to start over.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import torch

from imagenet_sd.runtime import atomic_path

log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


class TrainingStopped(RuntimeError):
    """Raised after the resume state is saved on a stop signal: the job must fail so that its retry resumes."""


class ResumeMismatch(RuntimeError):
    """A resume state exists but belongs to another training: kept on disk, and the job refuses to start."""


class StopSignals:
    """Records SIGUSR1/SIGTERM instead of dying; the training loop polls `received` after every step."""

    def __init__(self):
        self.received: str | None = None
        self.previous = {}

    def handle(self, signum, _frame) -> None:
        self.received = signal.Signals(signum).name
        log.warning("received %s: saving a resume state after the current step, then exiting", self.received)

    def __enter__(self) -> StopSignals:
        for sig in STOP_SIGNALS:
            self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def resume_path(checkpoint) -> Path:
    return Path(checkpoint).with_suffix(".resume.pt")


def save_resume(state: dict, checkpoint) -> None:
    """Written to a temporary file and renamed: a job killed while saving keeps the previous state intact."""
    with atomic_path(resume_path(checkpoint)) as tmp, open(tmp, "wb") as file:
        torch.save(state, file)  # a file object, not the path: the zip's folder name is then fixed


def identity_differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two identity dicts (nested dicts compared key by key)."""
    diffs = []
    for key in sorted(set(saved) | set(current), key=str):
        old, new = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(old, dict) and isinstance(new, dict):
            diffs += identity_differences(old, new, f"{prefix}{key}.")
        elif old != new:
            shown = [v if not isinstance(v, list) or len(v) <= 6 else f"[{len(v)} items]" for v in (old, new)]
            diffs.append(f"{prefix}{key}: {shown[0]!r} in the saved state, {shown[1]!r} now")
    return diffs


def load_resume(checkpoint, identity: dict) -> dict | None:
    """The state an interrupted run of the same training on the same data saved, or None if there is none."""
    path = resume_path(checkpoint)
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    diffs = identity_differences(state.get("identity", {}), identity)
    if diffs:
        raise ResumeMismatch(
            f"{path} holds the state of an interrupted training (step {state.get('step')}) that cannot be "
            f"resumed with the current settings: {'; '.join(diffs)}. It is kept. To resume it, restore those "
            f"settings; to start this training from scratch instead, move the file away "
            f"(mv {path} {path}.old) and run again."
        )
    log.info(
        "resuming from %s: epoch %d, batch %d of it (step %d)", path, state["epoch"], state["batch"], state["step"]
    )
    return state
