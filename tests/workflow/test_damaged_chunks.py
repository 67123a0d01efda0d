"""Damaged and missing chunks in a finished run, as a user on a shared filesystem meets them, with the real
Snakemake: the run stops with one line naming the chunk and the command that regenerates it, the clone's
shards are not lost where Snakemake allows it, the command regenerates that chunk alone, and the next run
packs shards byte-identical to the undamaged run's.

One small run (one clone of two classes, two chunks) is completed once with its own --configfile, so the
printed command must name it; each case works on a copy (mtimes and Snakemake's metadata included).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SNAKEMAKE, copy_workflow, run_snakemake, share_resources, toy_config, write_config

CONFIG = "small.yaml"
CLASSES = ["n01558993", "n02123045"]  # robin, tabby
TARGET = "results/clones/small/train.json"


def small_config() -> dict:
    demo = toy_config()
    return {
        "seed": 0,
        "class_sets": {"small": {"sheet": "config/sheets/small.tsv"}},
        "recipes": {"c_dc": {"family": "c, d_c"}},
        "pipelines": demo["pipelines"],
        "generators": {"tiny": {**demo["generators"]["tiny"], "steps": 2, "chunk_size": 2, "batch_size": 2}},
        "clones": {
            "small": {
                "class_set": "small",
                "recipe": "c_dc",
                "generator": "tiny",
                "images_per_class": 2,
                "shard_size": 3,
            }
        },
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory, built_resources) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("damaged") / "wf")
    share_resources(workdir, built_resources)
    (workdir / "config/sheets/small.tsv").write_text("wnid\n" + "\n".join(CLASSES) + "\n")
    write_config(workdir, small_config(), CONFIG)
    run_snakemake(workdir, TARGET, "--configfile", CONFIG)
    return workdir


@pytest.fixture
def work(finished, tmp_path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "wf", symlinks=True))


def chunks(workdir: Path) -> list[Path]:
    return sorted((workdir / "results/generated").rglob("*.tar"))


def shards(workdir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((workdir / "results/clones/small/train").glob("*.tar"))}


def snakemake(workdir: Path, *args: str, check: bool = True) -> str:
    proc = run_snakemake(workdir, *args, "--configfile", CONFIG, check=check)  # --configfile takes all after it
    return proc.stdout + proc.stderr


def the_line(output: str, tar: Path, workdir: Path) -> str:
    """The one line that names the chunk, and the command in it."""
    rel = str(tar.relative_to(workdir))
    lines = [line for line in output.splitlines() if f"{rel}: " in line and "regenerate it with `" in line]
    assert lines, output[-4000:]
    return lines[0].strip()


def run_the_command(line: str, workdir: Path) -> str:
    """The command the line gives, run as the user would type it (with this environment's snakemake)."""
    command = shlex.split(re.search(r"regenerate it with `([^`]+)`", line).group(1))
    assert command[0] == "snakemake" and "--configfile" in command and CONFIG in command
    proc = subprocess.run(
        [*SNAKEMAKE, *command[1:]], cwd=workdir, capture_output=True, text=True, timeout=600, env=dict(os.environ)
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def assert_regenerates_that_chunk_alone(line: str, tar: Path, original: bytes, workdir: Path) -> None:
    others = {p: p.stat().st_mtime_ns for p in chunks(workdir) if p != tar}
    prompts = {p: p.stat().st_mtime_ns for p in (workdir / "results/prompts").rglob("*.json")}
    output = run_the_command(line, workdir)
    assert re.search(r"^generate\s+1$", output, re.M) and re.search(r"^total\s+1$", output, re.M), output[-3000:]
    assert tar.read_bytes() == original  # generation is deterministic: the same bytes as before the damage
    assert {p: p.stat().st_mtime_ns for p in others} == others
    assert {p: p.stat().st_mtime_ns for p in prompts} == prompts


def status(workdir: Path, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "imagenet_sd.ops.status", "--configfile", CONFIG, *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, PYTHONPATH=str(workdir)),
    ).stdout


def test_a_truncated_chunk_stops_the_run_before_the_shards_go(work, finished):
    tar = chunks(work)[0]
    original = tar.read_bytes()
    tar.write_bytes(original[: len(original) // 2])  # a copy interrupted: the chunk is newer, pack would rerun
    output = snakemake(work, TARGET, check=False)
    line = the_line(output, tar, work)
    assert "bytes where its stats record says" in line
    assert shards(work) == shards(finished)  # Snakemake stopped while planning: the shards are still there
    assert the_line(status(work), tar, work) == line  # status says the same

    assert_regenerates_that_chunk_alone(line, tar, original, work)
    # Snakemake repacks a regenerated chunk (it is newer) unless it recorded the same checksum (files < 1 MB)
    snakemake(work, TARGET)
    assert shards(work) == shards(finished)


def test_a_chunk_with_other_bytes_fails_the_pack_and_its_command_restores_the_shards(work, finished):
    tar = chunks(work)[1]
    original = tar.read_bytes()
    damaged = bytearray(original)
    damaged[700] ^= 0xFF  # same size, other bytes: only its sha256 tells
    tar.write_bytes(bytes(damaged))
    assert "do not match" not in status(work)  # a size check cannot see it ...
    line = the_line(status(work, "--verify"), tar, work)  # ... the sha256 does
    assert "its sha256 differs from its stats record's" in line

    output = snakemake(work, TARGET, check=False)  # the pack job reads the chunk and stops
    assert the_line(output, tar, work).endswith(f"ERROR imagenet_sd: {line}")  # the log line Snakemake shows
    assert "Traceback" not in (work / "logs/pack/small.log").read_text()
    assert shards(work) == {}  # Snakemake removed the pack's outputs before the job started

    assert_regenerates_that_chunk_alone(line, tar, original, work)
    snakemake(work, TARGET)
    assert shards(work) == shards(finished)


def test_a_deleted_chunk_is_listed_by_status_and_its_command_brings_it_back(work):
    tar = chunks(work)[0]
    original = tar.read_bytes()
    tar.unlink()
    # The clone's shards exist and are newer than its inputs: Snakemake regenerates nothing on its own.
    assert "Nothing to be done" in snakemake(work, TARGET)
    report = json.loads(status(work, "--json"))
    assert [d["chunk"] for d in report["clones"][0]["damaged"]] == [str(tar.relative_to(work))]
    line = the_line(status(work), tar, work)
    assert line.startswith(f"{tar.relative_to(work)}: missing")
    assert_regenerates_that_chunk_alone(line, tar, original, work)
