"""A generated chunk checked against its stats record: the JSON the generate job writes beside the tar, last,
with the tar's size, sha256 and image count.

Shared filesystems damage files: a copy interrupted, a quota hit mid-write, a file restored from an old
backup. Snakemake does not notice (the tar still exists) and regenerates nothing on its own, so:

- pack streams each tar once, hashing it as it lists its members (`scan_chunk`), and a chunk that does not
  match its record stops the job with one line naming it and the command that regenerates it, before the
  job writes anything (the contact sheets, which read only a chunk's first images, check its size);
- the input functions of the rules that read chunks compare each chunk's size with its record while
  Snakemake plans (`size_problem`: a stat and a small JSON), so a truncated chunk stops the run before
  Snakemake removes the outputs the job would replace (it removes them before it starts a job);
- `python -m imagenet_sd.ops.status` lists the chunks that are missing or damaged, with the same command.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import tarfile
from pathlib import Path

from imagenet_sd.runtime import sha256_file

# The configs the workflow runs with, exported by the Snakefile for its jobs: the command a job prints must
# name them (a chunk of another config is unknown to the demo config).
CONFIGFILES_ENV = "IMAGENET_SD_CONFIGFILES"
DEFAULT_CONFIG = "config.yaml"


class DamagedChunk(ValueError):
    """A chunk that is missing, unreadable or different from its stats record; the message is one line."""

    def __init__(self, tar: str | os.PathLike, problem: str, configfiles: list[str] | None = None):
        self.tar, self.problem = str(tar), problem
        self.command = regenerate_command(tar, configfiles)
        super().__init__(f"{tar}: {problem}; regenerate it with `{self.command}`, then run the workflow again")


def shown_path(path: str | os.PathLike) -> str:
    """`path` relative to the working directory when it lies below it (what a user types), else as it is."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def regenerate_command(tar: str | os.PathLike, configfiles: list[str] | None = None) -> str:
    """The Snakemake command that regenerates this chunk (its tar and stats JSON) and nothing else: `--force`
    reruns the job of the target alone, not its inputs' jobs nor the jobs that read the chunk."""
    if configfiles is None:
        configfiles = [f for f in os.environ.get(CONFIGFILES_ENV, "").split(os.pathsep) if f]
    command = ["snakemake", "--cores", "1", "--force", str(tar)]
    configs = [shown_path(f) for f in configfiles]
    if configs and configs != [DEFAULT_CONFIG]:
        command += ["--configfile", *configs]
    return shlex.join(command)


def stats_path(tar: str | os.PathLike) -> Path:
    return Path(tar).with_suffix(".json")


def tar_record(tar: str | os.PathLike) -> dict:
    """What a chunk's stats record says of its tar (beside `images`): written by the generate job."""
    return {"tar_sha256": sha256_file(tar), "tar_bytes": os.stat(tar).st_size}


def read_record(tar: str | os.PathLike) -> dict:
    """The chunk's stats record; DamagedChunk when it is missing or unreadable."""
    path = stats_path(tar)
    try:
        record = json.loads(path.read_text())
        return {"images": int(record["images"]), "bytes": int(record["tar_bytes"]), "sha256": record["tar_sha256"]}
    except FileNotFoundError:
        raise DamagedChunk(tar, f"no stats record {path} beside it (the job that wrote it did not finish)") from None
    except (ValueError, KeyError, TypeError) as error:
        raise DamagedChunk(tar, f"its stats record {path} is unreadable ({error})") from None


def size_mismatch(tar: str | os.PathLike, size: int, record: dict) -> str | None:
    if size == record["bytes"]:
        return None
    return f"{size:,} bytes where its stats record says {record['bytes']:,} (truncated or overwritten)"


def size_problem(tar: str | os.PathLike) -> str | None:
    """What is wrong with a chunk that a stat shows (its size differs from its record's); None when the tar or
    its record is absent (not generated yet, or being written: the record is written last)."""
    try:
        size = os.stat(tar).st_size
    except FileNotFoundError:
        return None
    if not stats_path(tar).is_file():
        return None
    try:
        return size_mismatch(tar, size, read_record(tar))
    except DamagedChunk as error:
        return error.problem


class HashingReader:
    """A binary file read front to back, hashed as it is read."""

    def __init__(self, f):
        self.f, self.sha256, self.bytes = f, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.sha256.update(data)
        self.bytes += len(data)
        return data

    def drain(self, block: int = 1 << 20) -> None:
        while self.read(block):
            pass


def scan_chunk(tar: str | os.PathLike) -> list[tarfile.TarInfo]:
    """The regular-file members of a chunk tar (with their data offsets), read in one streaming pass that also
    hashes the file; DamagedChunk unless its size, sha256 and image count are those of its stats record."""
    record = read_record(tar)
    try:
        size = os.stat(tar).st_size
    except FileNotFoundError:
        raise DamagedChunk(tar, "missing (its stats record is there)") from None
    problem = size_mismatch(tar, size, record)
    if problem:
        raise DamagedChunk(tar, problem)
    with open(tar, "rb") as f:
        reader = HashingReader(f)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as archive:
                members = [info for info in archive if info.isfile()]
        except (tarfile.TarError, EOFError) as error:
            raise DamagedChunk(tar, f"not a readable tar ({error})") from None
        reader.drain()  # the end-of-archive blocks the tar reader stops before
    if reader.sha256.hexdigest() != record["sha256"]:
        raise DamagedChunk(tar, "its sha256 differs from its stats record's (the bytes changed)")
    images = sum(info.name.endswith(".jpg") for info in members)
    if images != record["images"]:
        raise DamagedChunk(tar, f"{images} images where its stats record says {record['images']}")
    return members
