"""How far a run has come, from the files on disk alone: `python -m imagenet_sd.ops.status --configfile FILE`.

It asks neither Snakemake nor SLURM, so it works from any shell while a cluster run goes on (and does not
touch Snakemake's lock). Per clone: generated chunks done / total, images, the aggregate images/s of the last
hour, the time generation still needs at that rate, re-drawn and failed images; then per run the pack, the
training epoch and the evaluations done.

A chunk counts as done when its stats JSON exists: the generate job writes it after renaming its tar into
place, so a chunk still being written (a hidden `.<name>.*.partial` beside it) is counted as running.
A chunk whose tar is missing (its record is there, or its clone was packed) or whose size differs from its
record's (with `--verify`: its sha256 or image count) is listed with the command that regenerates it:
Snakemake does not regenerate a missing or damaged chunk on its own while the outputs made from it exist.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from imagenet_sd import paths
from imagenet_sd.generate.chunk_check import DamagedChunk, scan_chunk, size_problem, stats_path
from imagenet_sd.planning.clones import build_plan
from imagenet_sd.progress import duration

WINDOW = 3600.0  # seconds over which the aggregate rate is measured


@dataclass
class CloneStatus:
    clone: str
    chunks_total: int
    chunks_done: int = 0
    chunks_running: int = 0
    images_total: int = 0
    images_done: int = 0
    regenerated: int = 0
    unresolved: int = 0
    images_last_window: int = 0
    window_seconds: float = 0.0
    images_per_second: float | None = None
    eta_seconds: float | None = None
    damaged: list[dict] = field(default_factory=list)  # chunks missing or unlike their record, see chunk_problem


@dataclass
class Damage:
    chunk: str
    problem: str
    command: str  # regenerates that chunk alone
    message: str


def damage(tar: Path, problem: str, configfiles: list[str] | None) -> Damage:
    error = DamagedChunk(tar, problem, configfiles)
    return Damage(str(tar), problem, error.command, str(error))


@dataclass
class RunStatus:
    run: str
    packed: bool
    epochs: int
    epoch: int | None = None
    step: int | None = None
    loss: float | None = None
    trained: bool = False
    evaluations_done: list[str] = field(default_factory=list)
    evaluations_total: int = 0


def load_config(configfile: str | Path) -> dict:
    """The config with the schema's defaults filled in, as Snakemake sees it."""
    from snakemake.utils import validate

    from imagenet_sd.config import SCHEMA

    config = yaml.safe_load(Path(configfile).read_text()) or {}
    validate(config, str(SCHEMA))
    return config


def chunk_running(tar: Path) -> bool:
    return any(tar.parent.glob(f".{tar.name}.*.partial")) if tar.parent.is_dir() else False


def chunk_problem(tar: Path, packed: bool, verify: bool) -> str | None:
    """What is wrong with a chunk: `missing` (its stats record is there, or its clone was packed, yet the tar
    is not), a size (or with `verify`, a sha256 or an image count) other than its record's; None when it is
    fine or not generated yet."""
    if not tar.is_file():
        return "missing" if packed or stats_path(tar).is_file() else None
    if not stats_path(tar).is_file():
        return None  # being written, or its job died before the record: Snakemake reruns that job itself
    if not verify:
        return size_problem(tar)
    try:
        scan_chunk(tar)
    except DamagedChunk as error:
        return error.problem
    return None


def clone_status(plan, clone: str, now: float, verify: bool = False, configfiles: list[str] | None = None):
    status = CloneStatus(clone, chunks_total=0)
    packed = Path(paths.SHARD_INDEX.format(clone=clone)).is_file()
    recent_starts = []
    for split in ("train", "heldout"):
        for tar in map(Path, plan.clone_chunks(clone, split)):
            start, stop = (int(x) for x in tar.stem.split("-"))
            status.chunks_total += 1
            status.images_total += stop - start
            problem = chunk_problem(tar, packed, verify)
            if problem:
                status.damaged.append(asdict(damage(tar, problem, configfiles)))
                continue
            stats_file = stats_path(tar)
            if not stats_file.is_file():
                status.chunks_running += chunk_running(tar)
                continue
            stats = json.loads(stats_file.read_text())
            status.chunks_done += 1
            status.images_done += stats["images"]
            status.regenerated += stats.get("regenerated", 0)
            status.unresolved += stats.get("unresolved", 0)
            finished = stats_file.stat().st_mtime
            if now - finished <= WINDOW:
                status.images_last_window += stats["images"]
                recent_starts.append(finished - stats["seconds"]["total"])
    if recent_starts:
        # A run younger than the window is measured from its first chunk's start, not over a full hour.
        status.window_seconds = max(min(WINDOW, now - min(recent_starts)), 1e-9)
        status.images_per_second = status.images_last_window / status.window_seconds
        remaining = status.images_total - status.images_done
        status.eta_seconds = remaining / status.images_per_second if status.images_per_second else None
    return status


def last_metrics(path: Path) -> dict | None:
    """The last complete line of a metrics.jsonl that is being written."""
    if not path.is_file():
        return None
    for line in reversed(path.read_text().splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    return None


def run_status(config: dict, run: str) -> RunStatus:
    spec = config["runs"][run]
    training = config["trainings"][spec["training"]]
    from imagenet_sd.config import schema_defaults

    epochs = training.get("epochs", schema_defaults("trainings").get("epochs"))
    root = Path("results/runs") / run
    status = RunStatus(
        run,
        packed=Path(f"results/clones/{spec['clone']}/train.json").is_file(),
        epochs=epochs,
        evaluations_total=len(spec.get("evaluate", [])),
    )
    last = last_metrics(root / "metrics.jsonl")
    if last:
        status.epoch, status.step, status.loss = last.get("epoch"), last.get("step"), last.get("loss")
    status.trained = (root / "checkpoint.pt").is_file() and (root / "metrics.jsonl").is_file()
    status.evaluations_done = [ev for ev in spec.get("evaluate", []) if (root / "eval" / f"{ev}.json").is_file()]
    return status


def collect(config: dict, now: float | None = None, verify: bool = False, configfiles: list[str] | None = None):
    """Clones and runs; `verify` hashes every chunk (reads them all), else chunks are checked by size."""
    plan = build_plan(config, check_wnids=False)
    now = time.time() if now is None else now
    return {
        "clones": [asdict(clone_status(plan, name, now, verify, configfiles)) for name in plan.clones],
        "runs": [asdict(run_status(config, name)) for name in config.get("runs", {})],
    }


def format_clone(s: dict) -> str:
    rate = (
        f"{s['images_per_second']:.3g} images/s over the last {duration(s['window_seconds'])}"
        if s["images_per_second"]
        else "no chunk finished in the last hour"
    )
    eta = (
        "done"
        if s["images_done"] >= s["images_total"]
        else (f"ETA {duration(s['eta_seconds'])}" if s["eta_seconds"] else "ETA unknown")
    )
    return (
        f"clone {s['clone']}: chunks {s['chunks_done']}/{s['chunks_total']} done"
        f" ({s['chunks_running']} being written), images {s['images_done']}/{s['images_total']}"
        f" ({100 * s['images_done'] / max(s['images_total'], 1):.1f}%), {rate}, {eta};"
        f" re-drawn {s['regenerated']}, failed {s['unresolved']}"
    )


def format_damage(s: dict, shown: int = 10) -> list[str]:
    """The clone's chunks that are missing or unlike their record, each with the command that regenerates it."""
    damaged = s["damaged"]
    if not damaged:
        return []
    lines = [f"  {len(damaged)} chunks of clone {s['clone']} are missing or do not match their stats record:"]
    lines += [f"  {d['message']}" for d in damaged[:shown]]
    if len(damaged) > shown:
        lines.append(f"  ... and {len(damaged) - shown} more (--json lists them all)")
    return lines


def format_run(s: dict) -> str:
    if s["trained"]:
        training = "trained"
    elif s["epoch"] is not None:
        training = f"training epoch {s['epoch'] + 1}/{s['epochs']} (step {s['step']}, loss {s['loss']:.4g})"
    else:
        training = "packed, training not started" if s["packed"] else "waiting for pack"
    return f"run {s['run']}: {training}; evaluations {len(s['evaluations_done'])}/{s['evaluations_total']} done" + (
        f" ({', '.join(s['evaluations_done'])})" if s["evaluations_done"] else ""
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagenet_sd.ops.status", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", default="config.yaml", help="the config the run uses (default: config.yaml)")
    parser.add_argument("--directory", "-d", default=".", help="the workflow's working directory (default: .)")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check every chunk's sha256 and image count against its stats record (reads every chunk; "
        "without it a chunk is checked by its size)",
    )
    args = parser.parse_args(argv)
    configfile = Path(args.configfile).resolve()
    os.chdir(args.directory)
    report = collect(load_config(configfile), verify=args.verify, configfiles=[str(configfile)])
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
        return 0
    for clone in report["clones"]:
        for line in [format_clone(clone), *format_damage(clone)]:
            print(line)
    for run in report["runs"]:
        print(format_run(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
