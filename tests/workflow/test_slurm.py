"""The demo through `--profile slurm` against a real Slurm (started by `make slurm` / .ci/slurm-setup.sh).

One fresh copy of the repository runs part of the demo (TARGETS below) twice through the SLURM profile,
started by an ordinary user when the test session can make one (tests/ci_user.py: a root session, as in CI),
so the jobs run as that user.
In the first run the test cancels the first `generate` job as soon as Slurm runs it (scancel), so that run
fails; the second run must finish the work. While snakemake runs, the test reads Slurm's own job records from
the controller (`scontrol show job`, which keeps finished jobs for MinJobAge=300 s; polled every 2 s so none
is missed) and checks them against the completion log of jobcomp/filetxt.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SNAKEMAKE, WORKFLOW_PARTS, copy_workflow, toy_config, write_config

from imagenet_sd.generate.chunk_check import DamagedChunk, scan_chunk

pytestmark = pytest.mark.slurm

GPU_RULES = ("generate", "train", "evaluate", "features", "attack")
# CPU rules whose full-scale requests (cpus, memory) exceed the 2-core CI node
HEAVY_CPU_RULES = ("pack", "probe", "probe_linear", "analyze")
JOBCOMP_LOG = Path("/var/log/slurm/jobcomp.log")
# What the SLURM runs do: the toy ImageNet config's synthetic model (config/toy_imagenet.yaml): its evaluation,
# attacks and representation statistics (every GPU rule: generate, train, evaluate, attack, features), on two
# of its six classes (one with a name override). Their prompt files and train chunk tars are those of the same
# classes in the local demo, whose `demo` clone generates the same classes with the same generator. On a 2-core
# node each Slurm job costs seconds of its own; the tables, transfer probe and report pages are local rules anyway.
CLASSES = ("n01558993", "n03584829")
TARGETS = (
    "results/models/demo/eval/demo-heldout.json",
    "results/models/demo/attack/demo-heldout/fgsm/eps1.json",
    "results/models/demo/attack/demo-heldout/pgd/eps1.json",
    "results/models/demo/representation/demo-heldout.json",
)


def _slurm_problem() -> str | None:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "Slurm client tools are not installed (run `make slurm` as root to start a local Slurm)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=10)
        parts = subprocess.run(["sinfo", "-h", "-o", "%P %a %G"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"Slurm does not answer: {err}"
    if ping.returncode != 0 or "UP" not in ping.stdout:
        return "slurmctld is not running (run `make slurm` as root to start a local Slurm)"
    names = {line.split()[0].rstrip("*") for line in parts.stdout.splitlines() if line.strip()}
    if not {"cpu", "gpu"} <= names or "gpu:" not in parts.stdout:
        return f"this Slurm lacks the cpu/gpu partitions or gpu gres of .ci/slurm-setup.sh: {parts.stdout!r}"
    return None


_PROBLEM = _slurm_problem()
if _PROBLEM:
    pytestmark = [pytest.mark.slurm, pytest.mark.skip(reason=_PROBLEM)]


# --- Slurm's records ---------------------------------------------------------------------------------


def _scontrol_records() -> dict[str, dict[str, str]]:
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, timeout=30).stdout
    records = {}
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            records[fields["JobId"]] = fields
    return records


def _jobcomp_records() -> dict[str, dict[str, str]]:
    if not JOBCOMP_LOG.exists():
        return {}
    records = {}
    for line in JOBCOMP_LOG.read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            records[fields["JobId"]] = fields
    return records


def _rule_of(record: dict[str, str]) -> str:
    """The plugin writes `--comment rule_<rule>_wildcards_...` (group jobs: rule_<group>_<rules>); the
    profile names every group after its rule."""
    comment = record.get("Comment", "")
    assert comment.startswith("rule_"), f"job {record['JobId']} has no snakemake comment: {comment!r}"
    rule = comment[len("rule_") :]
    return next((name for name in sorted(RULE_NAMES, key=len, reverse=True) if rule.startswith(name)), rule)


RULE_NAMES = (
    "generate",
    "train",
    "evaluate",
    "prompts",
    "prompt_summary",
    "pack",
    "tables",
    "references",
    "wordnet",
    "clip_tokenizer",
    "tiny_pipeline",
    "prefetch_weights",
    "features",
    "probe",
    "probe_linear",
    "check_model",
    "fetch_model",
    "prepare_transfer_set",
    "index_dataset",
    "transfer_tables",
    "attack",
    "analyze",
    "sklearn_digits",
    "robustness_tables",
    "representation_tables",
    "contact_sheet",
    "comparison_sheet",
    "generation_report",
    "training_curves",
    "report_table",
    "report_figure",
)


def _requests_gpu(record: dict[str, str]) -> bool:
    return any("gpu" in record.get(key, "") for key in ("TresPerJob", "TresPerNode", "TresPerTask", "TRES"))


# --- running snakemake ---------------------------------------------------------------------------------


class SlurmRun:
    """snakemake with the SLURM profile in `workdir`, recording Slurm's view of every job it submits."""

    def __init__(self, workdir: Path, profiles: list[str], extra: list[str], user=None):
        self.workdir, self.records = workdir, {}
        args = [a for p in profiles for a in ("--profile", p)] + extra
        self.log = open(workdir / f"snakemake-{len(list(workdir.glob('snakemake-*.txt')))}.txt", "w")  # noqa: SIM115
        if user is None:
            self.proc = subprocess.Popen(
                [*SNAKEMAKE, *args],
                cwd=workdir,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
                text=True,
            )
        else:  # the user's own snakemake process: it submits, so Slurm runs the jobs as that user
            self.proc = user.popen(
                [*user.snakemake, *args], workdir, stdout=self.log, stderr=subprocess.STDOUT, text=True
            )

    def poll(self) -> dict[str, dict[str, str]]:
        for job_id, rec in _scontrol_records().items():
            if Path(rec.get("WorkDir", "/nonexistent")) == self.workdir:
                self.records[job_id] = rec
        return self.records

    def wait(self, timeout: float, until=None) -> bool:
        """Poll Slurm every 2 s until snakemake exits (True) or `until(records)` holds (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if self.proc.poll() is not None:
                return True
            if until is not None and until(self.records):
                return False
            time.sleep(2)
        self.stop()
        raise AssertionError(f"snakemake did not finish in {timeout:.0f} s:\n{self.output()[-4000:]}")

    def stop(self) -> None:
        """SIGINT makes the plugin scancel its jobs; then kill whatever of ours is left."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for job_id, rec in self.poll().items():
            if rec.get("JobState") in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
                subprocess.run(["scancel", job_id], check=False)
        self.log.close()

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text()


def _fit_profile(workdir: Path) -> str:
    """The rules declare full-scale memory (32-64 GB); a 2-core, 24 GB CI node refuses those requests
    (EnforcePartLimits=ALL). This extra profile keeps profiles/slurm's set-resources (partitions, GPU
    requests, group slots) and only shrinks memory, cpus and runtime so the jobs fit the node."""
    slurm = yaml.safe_load((workdir / "profiles/slurm/config.yaml").read_text())
    set_resources = {rule: dict(values) for rule, values in slurm["set-resources"].items()}
    for rule in GPU_RULES + HEAVY_CPU_RULES:
        set_resources.setdefault(rule, {}).update(mem_mb=2000, cpus_per_task=1, runtime=30)
    path = workdir / "ci-fit.yaml"
    path.write_text(yaml.safe_dump({"set-resources": set_resources}))
    return str(path)


def _two_classes(workdir: Path) -> str:
    """A config overlay: the demo class set cut to CLASSES (the sheet's rows, name overrides kept)."""
    sheet = workdir / "config/sheets/demo.tsv"
    header, *rows = sheet.read_text().splitlines()
    kept = [row for row in rows if row.split("\t")[0] in CLASSES]
    assert len(kept) == len(CLASSES), f"{sheet} lacks some of {CLASSES}"
    (workdir / "ci-classes.tsv").write_text("\n".join([header, *kept]) + "\n")
    (workdir / "ci-classes.yaml").write_text(yaml.safe_dump({"class_sets": {"demo": {"sheet": "ci-classes.tsv"}}}))
    return "ci-classes.yaml"


def _tree(root: Path, pattern: str) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob(pattern)) if p.is_file()}


@dataclass(frozen=True)
class SlurmRuns:
    """The module's two SLURM runs: the first, whose running generate job was cancelled (`cancelled`, its Slurm
    id; `after_kill`, the generated and run files it left), then the same command again; `user`, the CI user
    who ran them, or None when this session ran them itself."""

    workdir: Path
    overlay: list[str]
    first: SlurmRun
    second: SlurmRun
    cancelled: str | None
    after_kill: dict[str, bytes]
    user: object


@pytest.fixture(scope="module")
def slurm_runs(tmp_path_factory, demo_run, ci_user):
    dest = tmp_path_factory.mktemp("slurm") if ci_user is None else ci_user.home / "slurm-demo"
    dest.mkdir(exist_ok=True)
    workdir = _copy_with_link(dest, source=demo_run)
    write_config(workdir, toy_config())
    profiles = ["slurm", "profiles/ci", _fit_profile(workdir)]
    overlay = ["--configfile", "config.yaml", _two_classes(workdir)]  # last: --configfile takes every name after it
    if ci_user is not None:
        ci_user.give(workdir)

    # Run 1: cancel the first generate job once Slurm runs it; --retries 0 so the failure is final.
    first = SlurmRun(workdir, profiles, ["--retries", "0", *TARGETS, *overlay], user=ci_user)
    cancelled = None
    try:

        def generate_running(records):
            return any(_rule_of(r) == "generate" and r.get("JobState") == "RUNNING" for r in records.values())

        if not first.wait(900, until=generate_running):
            cancelled = next(
                j for j, r in first.records.items() if _rule_of(r) == "generate" and r.get("JobState") == "RUNNING"
            )
            time.sleep(3)  # let it write something
            subprocess.run(["scancel", cancelled], check=True)
            first.wait(900)
    finally:
        first.stop()
    after_kill = {**_tree(workdir, "results/generated/**/*"), **_tree(workdir, "results/runs/**/*")}

    # Run 2: the same command again must finish the work.
    second = SlurmRun(workdir, profiles, [*TARGETS, *overlay], user=ci_user)
    try:
        second.wait(1500)
    finally:
        second.stop()
    return SlurmRuns(workdir, overlay, first, second, cancelled, after_kill, ci_user)


def _copy_with_link(dest: Path, source: Path | None = None) -> Path:
    """A copy of the workflow with the repository's top-level `slurm` link to profiles/slurm. With
    `source` (the local demo run), the workflow is copied from there: the same snapshot as the reference."""
    if source is None:
        workdir = copy_workflow(dest).resolve()
    else:
        workdir = dest.resolve()
        for part in dict.fromkeys(WORKFLOW_PARTS + ("envs",)):  # (conftest may list envs already)
            if (source / part).is_dir():
                shutil.copytree(source / part, workdir / part, ignore=shutil.ignore_patterns("__pycache__"))
            elif (source / part).exists():
                shutil.copy2(source / part, workdir / part)
    if (REPO / "envs").is_dir() and not (workdir / "envs").exists():  # rules name envs/*.yaml (software-env)
        shutil.copytree(REPO / "envs", workdir / "envs")
    shutil.copy2(REPO / "slurm", workdir / "slurm", follow_symlinks=False)
    return workdir


def test_profile_name_resolves_from_the_repository_root(tmp_path):
    """`--profile slurm` is looked up as ./slurm (never as profiles/slurm), so the repository root holds a
    link; the implicit workflow profile profiles/default is still applied on top of it."""
    assert (REPO / "slurm").is_symlink() and (REPO / "slurm").resolve() == (REPO / "profiles/slurm").resolve()
    proc = subprocess.run(
        [*SNAKEMAKE, "--profile", "slurm", "--dry-run"],
        cwd=_copy_with_link(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert "Using profiles slurm and workflow specific profile profiles/default" in text
    assert "slurm_partition=gpu" in text and "gpu=1" in text


def test_a_job_killed_by_slurm_leaves_nothing_complete_looking_and_a_rerun_finishes(slurm_runs, demo_run):
    first, second = slurm_runs.first, slurm_runs.second
    assert slurm_runs.cancelled, f"no generate job was seen running:\n{first.output()[-4000:]}"
    assert first.records[slurm_runs.cancelled]["JobState"] == "CANCELLED"
    assert first.proc.returncode != 0, "the run with a cancelled job should fail"
    # Whatever the killed run left under results/ must be a finished file: a chunk tar whole by its stats record
    # (and byte-identical to the local run's where the local demo wrote it: its train chunks), JSON that parses.
    for name, data in slurm_runs.after_kill.items():
        if name.endswith(".tar"):
            try:
                scan_chunk(slurm_runs.workdir / name)
            except DamagedChunk as error:
                raise AssertionError(f"killed run left an incomplete {name}: {error}") from None
            if (demo_run / name).exists():
                assert data == (demo_run / name).read_bytes(), f"killed run left {name} unlike the local run's"
        elif name.endswith(".json"):
            json.loads(data)  # stats differ in timings, but must parse
    assert second.proc.returncode == 0, second.output()[-6000:]
    missing = [t for t in TARGETS if not (slurm_runs.workdir / t).exists()]
    assert not missing, f"the finished SLURM run lacks {missing}"
    dry_run = ["--profile", "slurm", "--profile", "profiles/ci", "--dry-run", *TARGETS, *slurm_runs.overlay]
    if slurm_runs.user is None:
        dry = subprocess.run(
            [*SNAKEMAKE, *dry_run], cwd=slurm_runs.workdir, capture_output=True, text=True, timeout=300
        )
        text = dry.stdout + dry.stderr
    else:
        text = slurm_runs.user.run([*slurm_runs.user.snakemake, *dry_run], slurm_runs.workdir, 300).stdout
    assert "Nothing to be done" in text, text[-3000:]


def test_jobs_ran_as_the_user_who_started_snakemake(slurm_runs):
    """Slurm's UserId=<name>(<uid>) of every job: the user whose snakemake submitted it."""
    user = slurm_runs.user.name if slurm_runs.user else pwd.getpwuid(os.getuid()).pw_name
    records = {**slurm_runs.first.records, **slurm_runs.second.records}
    assert records and {r["UserId"].split("(")[0] for r in records.values()} == {user}


def test_gpu_rules_ran_on_the_gpu_partition_with_a_gpu_and_light_rules_took_none(slurm_runs):
    records = {**slurm_runs.first.records, **slurm_runs.second.records}
    assert records, "no Slurm job of this run was recorded"
    by_rule: dict[str, list[dict[str, str]]] = {}
    for rec in records.values():
        by_rule.setdefault(_rule_of(rec), []).append(rec)
    assert set(GPU_RULES) <= set(by_rule), f"GPU rules missing from Slurm's records: {sorted(by_rule)}"
    for rule, recs in by_rule.items():
        for rec in recs:
            assert rec.get("BatchFlag") == "1", f"{rule} job {rec['JobId']} was not submitted through sbatch"
            if rule in GPU_RULES:
                assert rec["Partition"] == "gpu", f"{rule} job {rec['JobId']} ran on {rec['Partition']}"
                assert _requests_gpu(rec), f"{rule} job {rec['JobId']} asked for no GPU: {rec}"
            else:
                assert rec["Partition"] == "cpu", f"{rule} job {rec['JobId']} ran on {rec['Partition']}"
                assert not _requests_gpu(rec), f"light rule {rule} (job {rec['JobId']}) took a GPU: {rec}"
    # The controller's completion log (jobcomp/filetxt) agrees on partition and final state.
    jobcomp = _jobcomp_records()
    for job_id, rec in records.items():
        if job_id in jobcomp:
            assert jobcomp[job_id]["Partition"] == rec["Partition"]
    finished = [j for j, r in records.items() if r.get("JobState") == "COMPLETED"]
    assert all(j in jobcomp for j in finished), "finished jobs missing from /var/log/slurm/jobcomp.log"


def test_slurm_outputs_equal_the_local_run(slurm_runs, demo_run):
    workdir = slurm_runs.workdir
    for pattern in ("results/prompts/**/*", "results/generated/*/*/train/**/*.tar"):  # the demo holds out none
        local, remote = _tree(demo_run, pattern), _tree(workdir, pattern)
        assert local, f"the local run wrote nothing matching {pattern}"
        # The two classes' files, and none of the other four's.
        ours = {name for name in local if any(f"/{wnid}" in name for wnid in CLASSES)}
        assert ours and remote.keys() == ours, f"{pattern}: {sorted(remote.keys() ^ ours)}"
        differing = [name for name in remote if _content(name, local[name]) != _content(name, remote[name])]
        assert not differing, f"SLURM and local runs differ in {differing}"


def _content(name: str, data: bytes):
    """What must be identical between two runs: a tar's bytes; a prompt file's content less the `versions`
    it records (the cluster user may run another build of the same Python, and the file says so)."""
    if not name.endswith(".json"):
        return data
    record = json.loads(data)
    record.pop("versions", None)
    return record
