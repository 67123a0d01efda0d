"""The workflow tier of test_curation: its tests that run the real Snakemake (the unit tests are in
tests/unit/test_curation.py)."""

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from conftest import run_snakemake
from test_curation import CURATION, TARGETS  # noqa: F401 (fixtures among them)
from test_quality import TINY_CLIP
from test_rerun import BIG, dry_run, edit_config, load_config, make_workdir, write_sheet


@pytest.fixture(scope="module")
def curated_run(tmp_path_factory):
    """A completed small run (test_rerun's) whose clone `big` is curated and measured by a tiny CLIP."""
    workdir = make_workdir(tmp_path_factory.mktemp("curation") / "wf")

    def curate(config):
        config["quality"] = {"tiny": TINY_CLIP, "duplicate_threshold": 0.999, "agreement_threshold": 0.0}
        config["quality"]["clones"] = ["big"]
        config["clones"]["big"]["curation"] = CURATION

    config = edit_config(workdir, curate)
    per_class, chunk_size = config["clones"]["big"]["images_per_class"], config["generators"]["tiny"]["chunk_size"]
    jobs, _ = dry_run(workdir, *TARGETS)
    assert jobs["generate"] == len(BIG) * 2 * per_class // chunk_size  # twice the images of an uncurated clone
    assert jobs["quality_embed"] == len(BIG)
    run_snakemake(workdir, *TARGETS)
    return workdir


@pytest.fixture
def work(curated_run, tmp_path):
    return Path(shutil.copytree(curated_run, tmp_path / "wf", symlinks=True))


def test_a_curated_clone_packs_images_per_class_and_records_its_curation(curated_run):
    config = load_config(curated_run)
    index = json.loads((curated_run / TARGETS[0]).read_text())
    assert index["counts_per_class"] == {w: config["clones"]["big"]["images_per_class"] for w in BIG}
    assert index["source"] == {"kind": "synthetic", "curation": CURATION}


def test_a_changed_curation_setting_repacks_without_regenerating(work):
    edit_config(work, lambda c: c["clones"]["big"]["curation"].update(duplicate_threshold=0.99999))
    assert dry_run(work, *TARGETS)[0] == Counter({"pack": 1})
    edit_config(work, lambda c: c["clones"]["big"]["curation"].update(keep="clip_score"))
    assert dry_run(work, *TARGETS)[0] == Counter({"pack": 1})


def test_quality_thresholds_recompute_the_tables_and_no_embedding(work):
    edit_config(work, lambda c: c["quality"].update(duplicate_threshold=0.9, agreement_threshold=0.5))
    assert dry_run(work, *TARGETS)[0] == Counter({"quality_tables": 1})


def test_a_name_override_re_embeds_only_that_class(work):
    write_sheet(work, "big", [(BIG[0], "American robin"), (BIG[1], "")])
    jobs, outputs = dry_run(work, *TARGETS)
    assert jobs["quality_embed"] == 1 and jobs["prompts"] == 1
    (embedding,) = outputs["quality_embed"]
    assert f"/{BIG[0]}-" in embedding  # the new class key: the wnid and a hash of the name
