"""The workflow tier of test_quality: its tests that run the real Snakemake (the unit tests are in
tests/unit/test_quality.py)."""

import copy

from conftest import copy_workflow, planned_jobs, toy_config, write_config


def test_one_embedding_job_per_class_and_none_without_a_clip(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    jobs = planned_jobs(workdir)
    classes = len((workdir / "config/sheets/demo.tsv").read_text().splitlines()) - 1
    assert jobs["quality_embed"] == classes and jobs["quality_tables"] == 1 and jobs["tiny_clip"] == 1
    assert jobs["quality_sheet"] == 1  # the demo clone's worst classes; the digits clone is real
    config = copy.deepcopy(toy_config())
    del config["quality"]
    write_config(workdir, config)
    jobs = planned_jobs(workdir)
    assert not {"quality_embed", "quality_tables", "quality_sheet", "tiny_clip"} & set(jobs)
