"""Shared test helpers: run the real workflow with the real Snakemake on a copy of the repository."""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import yaml

from imagenet_sd.ops.dry_run import parse_job_stats

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_PARTS = (
    "Snakefile",
    "rules",
    "workflow_scripts",
    "imagenet_sd",
    "schemas",
    "config",
    "data",
    "report",
    "config.yaml",
    "profiles",
    "envs",
)
SNAKEMAKE = [str(Path(sys.executable).with_name("snakemake"))]
# A `pipelines` config entry for tests: the smallest tiny pipeline (16x16 images) that still has SD's layout.
TINY_PIPELINE = {
    "seed": 0,
    "sample_size": 8,
    "unet_channels": [32, 64],
    "vae_channels": [32, 64],
    "text_hidden": 32,
    "text_layers": 1,
    "scheduler": "DDIM",
}


def copy_workflow(dest: Path, config: dict | None = None) -> Path:
    """A fresh copy of the workflow in `dest`, run with `config` as its config.yaml; None: the toy ImageNet
    config (config/toy_imagenet.yaml), the base of most workflow tests. `demo_run` runs the embedded demo."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / part)
    write_config(dest, toy_config() if config is None else config)
    return dest


def write_config(workdir: Path, config: dict, name: str = "config.yaml") -> Path:
    path = workdir / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def demo_config() -> dict:
    """The embedded demo (config.yaml): the miniature study on scikit-learn's digits."""
    return yaml.safe_load((REPO / "config.yaml").read_text())


def toy_config() -> dict:
    """The ImageNet-class path at toy scale (config/toy_imagenet.yaml): six ImageNet classes, a random pipeline,
    a synthetic and a real run, every rule; what most workflow tests run, change and break."""
    return yaml.safe_load((REPO / "config/toy_imagenet.yaml").read_text())


def run_snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [*SNAKEMAKE, "--cores", "2", *args], cwd=workdir, env=env, text=True, capture_output=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


def planned_jobs(workdir: Path, *args: str) -> Counter:
    """Jobs a dry run schedules, counted by rule name (from Snakemake's 'Job stats' table)."""
    proc = run_snakemake(workdir, "--dry-run", *args)
    return parse_job_stats(proc.stdout + proc.stderr)


def share_resources(workdir: Path, resources: Path) -> None:
    """Reuse WordNet, tokenizer and tiny pipeline built once per session (copies keep tests independent)."""
    shutil.copytree(resources, workdir / "resources", dirs_exist_ok=True)


@pytest.fixture(scope="session")
def built_resources(tmp_path_factory) -> Path:
    """resources/ (WordNet for NLTK, CLIP tokenizer, tiny pipeline) built once by the real rules."""
    workdir = copy_workflow(tmp_path_factory.mktemp("resources"))
    run_snakemake(
        workdir,
        "resources/nltk_data/corpora/wordnet/lexnames",
        "resources/clip-tokenizer/vocab.json",
        "resources/pipelines/tiny-sd/model_index.json",
    )
    return workdir / "resources"


USER_DEMO_CLONE = "imagenet-sd"


@pytest.fixture(scope="session")
def user_demo(ci_user) -> dict | None:
    """`make demo` run twice by the ordinary user (tests/ci_user.py) in its own fresh clone, as the README's
    quick start tells a cluster user to; None when this session cannot make such a user. The demo runs once
    per session: `demo_run` is a copy of this run's finished clone (a whole demo takes minutes)."""
    if ci_user is None:
        return None
    home_before = {p.name for p in ci_user.home.iterdir()}  # useradd's skeleton files
    clone = ci_user.clone(REPO, USER_DEMO_CLONE)
    first = ci_user.run(["make", "demo"], clone, timeout=2400)  # 6-9 minutes on 2 idle cores
    second = ci_user.run(["make", "demo"], clone, timeout=600)
    return dict(clone=clone, first=first, second=second, home_before=home_before)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, user_demo) -> Path:
    """The embedded demo run to the end once. Where the session can make an ordinary user, a copy of that
    user's finished `make demo` (copy2 keeps mtimes, so the copy is as complete as the run; the tests' own
    snakemake runs in the copy leave the user's clone as the user left it); otherwise snakemake run here in a
    fresh copy of the repository."""
    workdir = tmp_path_factory.mktemp("demo")
    if user_demo is None:
        copy_workflow(workdir)
        run_snakemake(workdir, timeout=1500)
        return workdir
    first = user_demo["first"]
    assert first.returncode == 0, f"the user's `make demo` failed:\n{first.stdout[-6000:]}"
    shutil.copytree(user_demo["clone"], workdir, symlinks=True, dirs_exist_ok=True)
    return workdir


SNAKEMAKE_RUNNERS = ("run_snakemake", "planned_jobs", "copy_workflow")
SNAKEMAKE_FIXTURES = ("built_resources", "demo_run", "user_demo", "ci_user")
TIERS = {"unit": REPO / "tests" / "unit", "workflow": REPO / "tests" / "workflow"}


def runs_workflow(item) -> bool:
    """Whether a test runs the real Snakemake: its module imports a runner, or it uses a fixture that runs one."""
    module = getattr(item, "module", None)
    uses_runner = any(name in vars(module) for name in SNAKEMAKE_RUNNERS) if module else False
    return uses_runner or bool(set(SNAKEMAKE_FIXTURES) & set(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(items):
    """The tier of a test is its folder: tests/unit (no Snakemake run; `make test-fast` runs them all) and
    tests/workflow (marked `workflow`). A test in tests/unit that runs Snakemake is an error that names it,
    so the fast tier never silently grows a workflow run."""
    for item in items:
        path = Path(str(item.path))
        if path.is_relative_to(TIERS["workflow"]):
            item.add_marker(pytest.mark.workflow)
        elif path.is_relative_to(TIERS["unit"]) and runs_workflow(item):
            raise pytest.UsageError(f"{item.nodeid} runs Snakemake: it belongs in tests/workflow/, not tests/unit/")


DEMO_FIXTURES = ("demo_run", "user_demo", "ci_user")


@functools.cache
def demo_modules() -> frozenset[str]:
    """The test modules (as pytest names them, from the repository root) that use the demo's fixtures."""
    return frozenset(
        str(path.relative_to(REPO))
        for path in sorted(TIERS["workflow"].glob("test_*.py"))
        if any(name in path.read_text() for name in DEMO_FIXTURES)
    )


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: `make test` runs the tests on xdist workers
def pytest_xdist_make_scheduler(config, log):
    """How `make test` shares the tests out to its workers: a test module goes whole to one worker, so its
    module fixtures are built once, and the modules that use the demo go together to one worker, so the
    ordinary user the session makes runs `make demo` once (the largest share goes out first). xdist's own
    `--dist loadgroup` would do this with markers, but it cannot rename the tests of pytest 9."""
    from xdist.scheduler import LoadScopeScheduling

    together = demo_modules()

    class ModulesAndTheDemo(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "the demo" if module in together else module

    return ModulesAndTheDemo(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """On xdist workers, the worker running other modules yields the CPU to the one running the demo modules:
    the user's `make demo` and the SLURM runs after it are the longest chain of the session, and the other
    worker's work fills the cores around it. Measured on 2 cores, it helps a little: the user's `make demo`
    took 330 s alone, 699 s beside an equal-priority worker and 671 s beside this one."""
    if os.environ.get("PYTEST_XDIST_WORKER") and str(Path(str(item.path)).relative_to(REPO)) not in demo_modules():
        _yield_cpu_once()


@functools.cache
def _yield_cpu_once() -> None:
    os.nice(10)


@pytest.fixture(scope="session")
def clip_tokenizer_dir(tmp_path_factory) -> Path:
    """CLIP's tokenizer, written once per session by the library (the rule's script calls the same function)."""
    from imagenet_sd.prompts.clip_tokenizer import build_clip_tokenizer

    return build_clip_tokenizer(tmp_path_factory.mktemp("clip-tokenizer"))


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory, clip_tokenizer_dir) -> Path:
    """The TINY_PIPELINE pipeline folder, built once per session (tests must not modify it)."""
    from imagenet_sd.generate.tiny_pipeline import build_tiny_pipeline

    return build_tiny_pipeline(TINY_PIPELINE, clip_tokenizer_dir, tmp_path_factory.mktemp("tiny") / "tiny-sd")


@pytest.fixture(scope="session")
def ci_user():
    """An ordinary user (tests/ci_user.py) who runs the workflow as on a cluster: no root, the administrator's
    Python. None when this session cannot make one (it is not root, or there is no useradd)."""
    from ci_user import unprivileged_user, why_unavailable

    if why_unavailable():
        yield None
        return
    with unprivileged_user() as user:
        yield user


def load_script(name: str):
    """A workflow script imported as a module (its Snakemake block does not run), so tests call its main()."""
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO / "workflow_scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record_chunk(tar: Path) -> Path:
    """The stats record the generate job writes beside a chunk tar (the fields pack checks), for chunk tars
    that tests write themselves."""
    from imagenet_sd.generate.chunk_check import stats_path, tar_record
    from imagenet_sd.runtime import write_json

    with tarfile.open(tar) as archive:
        images = sum(name.endswith(".jpg") for name in archive.getnames())
    write_json(stats_path(tar), {"images": images, **tar_record(tar)})
    return tar


def jpeg_bytes(image, quality: int = 75) -> bytes:
    """An RGB image (an array or a PIL image) as JPEG bytes (75: PIL's default quality)."""
    from PIL import Image

    buffer = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def write_chunk_tar(path: Path, wnid: str, images, *, start: int = 0, record: bool = True) -> Path:
    """A chunk tar in the generate job's layout, for tests that make their own: per image, in index order from
    `start`, {wnid}_{index:06d}.jpg and .json (`images`: pairs of JPEG bytes and metadata dict), then (`record`)
    the stats record the generate job leaves beside it, which pack and the sheets check."""
    from imagenet_sd.runtime import add_tar_member

    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for index, (jpeg, meta) in enumerate(images, start):
            add_tar_member(tar, f"{wnid}_{index:06d}.jpg", jpeg)
            add_tar_member(tar, f"{wnid}_{index:06d}.json", json.dumps(meta).encode())
    return record_chunk(path) if record else path


class SmallDisk:
    """A folder where writes fail for lack of room past `size` bytes, for code run by `run` in a child process.

    As root (here and in CI) it is a real tmpfs of that size: writes fail with ENOSPC, as on a full disk.
    Where mounting is not allowed, the child runs under a file size limit (RLIMIT_FSIZE) instead: writes of
    a file past `size` fail with EFBIG. `reason` is what the error message must say in each case."""

    def __init__(self, folder: Path, size: int):
        self.folder, self.size = folder, size
        folder.mkdir(parents=True, exist_ok=True)
        mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]
        self.mounted = os.geteuid() == 0 and subprocess.run(mount, capture_output=True).returncode == 0
        self.limited = not self.mounted
        self.reason = "the disk is full" if self.mounted else "the file size limit is reached"

    def _limit(self):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer instead of failing it
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.size, self.size))

    def run(self, code: str, *args: str) -> subprocess.CompletedProcess:
        """Python `code` (with sys.argv[1:] = args) in a child process that sees the small disk."""
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1"),
            preexec_fn=self._limit if self.limited else None,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def grow(self) -> None:
        """Room again (the user freed space): the next `run` writes everything."""
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,size=64m", str(self.folder)], check=True)
        self.limited = False

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", str(self.folder)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    """A SmallDisk of 16 KiB at tmp_path/disk, unmounted after the test."""
    disk = SmallDisk(tmp_path / "disk", 16 * 1024)
    yield disk
    disk.unmount()


def pack_clone(out: Path, *, classes, images_per_class, shard_size, train_tars=(), heldout_tars=(), seed=0, **extra):
    """The pack rule's script on chunk tars (or a real folder: `source=`), into `out`/{train, train.json, heldout}."""
    load_script("pack").main(
        train_tars=list(train_tars),
        heldout_tars=list(heldout_tars),
        shards_dir=out / "train",
        index=out / "train.json",
        heldout_dir=out / "heldout",
        classes=classes,
        images_per_class=images_per_class,
        shard_size=shard_size,
        seed=seed,
        **extra,
    )
    return out
