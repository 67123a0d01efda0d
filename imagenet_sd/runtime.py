"""Plumbing shared by the workflow scripts: logging to the rule's log file, library versions, atomic writes."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import platform
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


def versions() -> dict:
    """Versions of Python and the libraries that can change outputs, recorded in every output's metadata."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it over `path` only if the block completes.

    A killed job therefore never leaves a file that looks complete under the final name.
    """
    path = Path(path)
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
