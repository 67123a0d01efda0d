"""Plumbing shared by the workflow scripts: logging to the rule's log file, library versions, atomic writes."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import platform
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

LIBRARIES = (
    "torch",
    "torchvision",
    "diffusers",
    "transformers",
    "webdataset",
    "nltk",
    "numpy",
    "pillow",
    "scikit-learn",
    "snakemake",
)


def export_pythonpath(root: str) -> None:
    """Let child processes (Snakemake scripts, jobs inside SLURM) import imagenet_sd from the workflow root."""
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))


def export_cache_dirs() -> None:
    """Keep library caches in the user's cache directory (inherited by every job, SLURM ones included).

    PyTorch's compiler cache defaults to /tmp/torchinductor_<user>, which merely importing torchvision
    creates; on a shared login node that is a leftover per user and run outside the user's own space.
    """
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache / "torch" / "inductor"))


def setup_logging(log_path: str | os.PathLike | None) -> logging.Logger:
    """Human log lines (and Python warnings/tracebacks via stderr) go to the rule's log file."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers = [logging.FileHandler(log_path, mode="w")]
        sys.stderr = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the job
    logging.basicConfig(
        level=logging.INFO, handlers=handlers, force=True, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.captureWarnings(True)
    return logging.getLogger("imagenet_sd")


@contextlib.contextmanager
def one_line_errors(*kinds: type[BaseException]):
    """A job's expected failures (a damaged input, a full disk) end it with their one-line message in the log,
    which Snakemake shows, instead of a traceback that buries it."""
    try:
        yield
    except kinds as error:
        logging.getLogger("imagenet_sd").error("%s", error)
        raise SystemExit(1) from None


def versions() -> dict:
    """Versions of Python and the libraries that can change outputs, recorded in every output's metadata."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


# Write errors that mean "no room": the disk or the user's quota is full, or a file size limit is reached.
NO_ROOM = {
    errno.ENOSPC: "no space left on the device (the disk is full)",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file size limit is reached (ulimit -f)",
}


class DiskFull(RuntimeError):
    """A write that failed for lack of room; the message names the path and says so in one line."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"cannot write {path}: {reason}; nothing partial was kept: free space, then run the job again")


def no_room(error: BaseException | None) -> str | None:
    """NO_ROOM's words for an error or the errors it was raised from (a writer thread's error is wrapped)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno in NO_ROOM:
            return NO_ROOM[error.errno]
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


@contextlib.contextmanager
def naming_full_disk(path: str | os.PathLike):
    """Turn a write error for lack of room into DiskFull naming `path` (Python's own names no file)."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as error:
        reason = no_room(error)
        if reason is None:
            raise
        raise DiskFull(path, reason) from error


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it over `path` only if the block completes.

    A killed job therefore never leaves a file that looks complete under the final name; a full disk
    raises DiskFull naming `path`.
    """
    path = Path(path)
    with naming_full_disk(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are shared on cluster storage
        try:
            yield Path(tmp)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


@contextlib.contextmanager
def staged_dir(path: str | os.PathLike):
    """Yield an empty temporary directory beside `path`; it replaces `path` only if the block completes, so a
    failed job leaves the previous directory (or none), never a half-written one. A full disk raises
    DiskFull naming `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
        try:
            os.chmod(tmp, 0o777 & ~_umask())
            yield tmp
            shutil.rmtree(path, ignore_errors=True)
            os.replace(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except Exception as error:
        reason = no_room(error)
        if reason is None:
            raise
        raise DiskFull(path, reason) from error


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj) -> None:
    """Deterministic JSON (sorted keys), written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def add_tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """A regular file with fixed metadata (mtime 0, root-less owner), so a tar's bytes depend on names and
    contents only: equal chunks and shards are byte-identical between runs and machines."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def sha256_file(path: str | os.PathLike, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def pick_device(device=None):
    """`auto` (or None): the GPU if this process sees one, else the CPU; anything else as torch reads it.
    Here, not beside the models, because generation and training both pick one (torch imported only then)."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
