"""The workflow tier of test_models: its tests that run the real Snakemake (the unit tests are in
tests/unit/test_models.py)."""

from __future__ import annotations

from conftest import copy_workflow, planned_jobs, run_snakemake, write_config
from test_models import CLASSES, images, model_config, released_format  # noqa: F401 (fixtures among them)


def test_a_bad_checkpoint_fails_on_the_login_node_before_any_gpu_job(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "five.tsv").write_text("wnid\n" + "\n".join(CLASSES) + "\n")
    released_format(workdir / "wrong.pth", num_classes=7)
    for split in ("train", "test"):
        images(workdir / "few" / split)
    write_config(workdir, model_config("wrong.pth"))
    jobs = planned_jobs(workdir)
    assert jobs["check_model"] == 1 and jobs["features"] == 2 and jobs["probe"] == 3  # the default split seeds
    proc = run_snakemake(workdir, check=False)
    log = (workdir / "logs/check_model/ext.log").read_text()
    assert proc.returncode != 0
    assert "wrong.pth does not fit a torchvision resnet18 with 5 classes" in log and "fc.weight" in log
    assert not list(workdir.glob("logs/features/**/*.log"))  # no GPU job started


def test_a_missing_local_checkpoint_and_a_name_shared_with_a_run_are_config_errors(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "five.tsv").write_text("wnid\n" + "\n".join(CLASSES) + "\n")
    write_config(workdir, model_config("nope.pth"))
    proc = run_snakemake(workdir, "-n", check=False)
    assert proc.returncode != 0 and "models.ext.checkpoint: file nope.pth not found" in proc.stdout + proc.stderr
    config = model_config("https://example.org/m.pth")
    demo = __import__("conftest").toy_config()
    config = {
        **demo,
        "class_sets": {**demo["class_sets"], **config["class_sets"]},
        "models": {"demo": config["models"]["ext"]},
    }
    write_config(workdir, config)
    proc = run_snakemake(workdir, "-n", check=False)
    assert proc.returncode != 0 and "models.demo and runs.demo share a name" in proc.stdout + proc.stderr
