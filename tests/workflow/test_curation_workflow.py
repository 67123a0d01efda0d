"""The workflow tier of test_curation and of the quality step's FD and KID: tests that run the real Snakemake
(the unit tests are in tests/unit/test_curation.py and test_quality_distances.py). One small run serves both:
clone `big` curated and compared with a real clone, clone `small` (uncurated, its class's images are big's
first ones) compared with an evaluation folder."""

import csv
import json
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, load_script, run_snakemake
from PIL import Image
from test_curation import CURATION, TARGETS  # noqa: F401 (fixtures among them)
from test_quality import DEFAULTS, TINY_CLIP
from test_rerun import BIG, SMALL, dry_run, edit_config, load_config, make_workdir, plan_of, write_sheet

from imagenet_sd.config import ConfigError
from imagenet_sd.planning import quality as QP
from imagenet_sd.quality.curation import kept_keys, measured_classes
from imagenet_sd.quality.distances import reference_measures
from imagenet_sd.quality.quality import ClassEmbeddings, class_rows
from imagenet_sd.report.report import TABLES, caption_text

REFERENCE = {"big": "realbig", "small": "real"}  # a real clone, an evaluation folder


def noise_images(folder: Path, count: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(folder / f"noise{i}.jpg")


@pytest.fixture(scope="module")
def curated_run(tmp_path_factory):
    """A completed small run (test_rerun's) whose clone `big` is curated, and whose clones `big` and `small`
    are measured by a tiny CLIP, each against real images."""
    workdir = make_workdir(tmp_path_factory.mktemp("curation") / "wf")
    for i, wnid in enumerate(BIG):
        noise_images(workdir / "ref-real" / wnid, 4, seed=i)  # the real clone packs 3 of them
    noise_images(workdir / "real-val" / SMALL[0], 2, seed=9)  # beside the evaluation folder's one image

    def curate(config):
        config["quality"] = {"tiny": TINY_CLIP, "duplicate_threshold": 0.999, "agreement_threshold": 0.0}
        config["quality"] |= {"clones": ["big", "small"], "reference": REFERENCE}
        config["clones"]["big"]["curation"] = CURATION
        config["clones"]["realbig"] = {"class_set": "big", "path": "ref-real", "images_per_class": 3}

    config = edit_config(workdir, curate)
    per_class, chunk_size = config["clones"]["big"]["images_per_class"], config["generators"]["tiny"]["chunk_size"]
    jobs, _ = dry_run(workdir, *TARGETS)
    assert jobs["generate"] == len(BIG) * 2 * per_class // chunk_size  # twice the images of an uncurated clone
    assert jobs["quality_embed"] == len(BIG) + len(SMALL)  # small's class: its own image count, chunks shared
    assert jobs["quality_embed_reference"] == len(BIG) + len(SMALL)  # per reference and class
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
    """The pack and the quality tables, which describe the images the clone keeps; no generate or embedding."""
    edit_config(work, lambda c: c["clones"]["big"]["curation"].update(duplicate_threshold=0.99999))
    assert dry_run(work, *TARGETS)[0] == Counter({"pack": 1, "quality_tables": 1})
    edit_config(work, lambda c: c["clones"]["big"]["curation"].update(keep="clip_score"))
    assert dry_run(work, *TARGETS)[0] == Counter({"pack": 1, "quality_tables": 1})


def test_quality_thresholds_recompute_the_tables_and_no_embedding(work):
    edit_config(work, lambda c: c["quality"].update(duplicate_threshold=0.9, agreement_threshold=0.5))
    assert dry_run(work, *TARGETS)[0] == Counter({"quality_tables": 1})


def test_a_name_override_re_embeds_only_that_class(work):
    write_sheet(work, "big", [(BIG[0], "American robin"), (BIG[1], "")])
    jobs, outputs = dry_run(work, *TARGETS)
    assert jobs["quality_embed"] == 1 and jobs["prompts"] == 1
    (embedding,) = outputs["quality_embed"]
    assert f"/{BIG[0]}-" in embedding  # the new class key: the wnid and a hash of the name


def table(workdir: Path, name: str) -> list[dict]:
    return list(csv.DictReader((workdir / f"results/tables/{name}.csv").read_text().splitlines()))


def embeddings(workdir: Path, clone: str) -> list[tuple[str, str]]:
    return [(w, str(workdir / p)) for w, p in QP.class_embeddings(load_config_filled(workdir), plan_of(workdir), clone)]


def load_config_filled(workdir: Path) -> dict:
    return plan_of(workdir).config


def test_a_curated_clone_is_measured_on_the_images_it_packs(curated_run):
    """big keeps 2 of its 4 generated images per class (the first two: random images are distinct); its rows
    count those, their keys are the packed ones, and its SMALL class's row equals small's, whose 2 generated
    images are the same files. Measured on all 4 images, the numbers differ."""
    per_class = load_config(curated_run)["clones"]["big"]["images_per_class"]
    rows = {(r["clone"], r["wnid"]): r for r in table(curated_run, "quality")}
    index = json.loads((curated_run / TARGETS[0]).read_text())
    for wnid in BIG:
        assert rows["big", wnid]["measured"] == "kept"
        assert int(rows["big", wnid]["images"]) == index["counts_per_class"][wnid] == per_class
    packed = set()
    for shard in index["shards"]:
        with tarfile.open(curated_run / "results/clones/big/train" / shard["name"]) as tar:
            packed |= {m.name.partition(".")[0] for m in tar if m.isfile()}
    files = dict(embeddings(curated_run, "big"))
    assert packed == kept_keys(files, per_class, CURATION)
    small = rows["small", SMALL[0]]
    assert small["measured"] == "generated" and small["images"] == str(per_class)
    for measure in ("clip_score", "pairwise_distance", "vendi"):
        assert float(rows["big", SMALL[0]][measure]) == pytest.approx(float(small[measure]), rel=1e-6)
    everything = class_rows("big", [ClassEmbeddings.load(w, p) for w, p in files.items()], DEFAULTS)
    for r in everything:
        assert r["images"] == 2 * per_class
        assert r["pairwise_distance"] != pytest.approx(float(rows["big", r["wnid"]]["pairwise_distance"]))
    (big,) = [r for r in table(curated_run, "quality_clones") if r["clone"] == "big"]
    assert big["measured"] == "kept" and int(big["images"]) == index["count"]


def test_fd_and_kid_against_the_reference_of_each_clone(curated_run):
    """Per clone the FD and KID against its reference, per class the KID: finite, and those of the reference
    embedding files the rule wrote (a real clone's packed 3 of 4 images, the folder's every image)."""
    clones = {r["clone"]: r for r in table(curated_run, "quality_clones")}
    assert {c: clones[c]["reference"] for c in REFERENCE} == REFERENCE
    config, plan = load_config_filled(curated_run), plan_of(curated_run)
    references = QP.references(config, plan)
    counts = {c: [len(np.load(curated_run / p)["images"]) for _, p in r["classes"]] for c, r in references.items()}
    assert counts == {"big": [3] * len(BIG), "small": [3]}
    settings = DEFAULTS | config["quality"]
    for clone, reference in references.items():
        loaded = [ClassEmbeddings.load(w, p) for w, p in embeddings(curated_run, clone)]
        loaded, _ = measured_classes(loaded, QP.curated(config, plan).get(clone))
        files = {"classes": [(w, curated_run / p) for w, p in reference["classes"]]}
        per_class, whole = reference_measures(loaded, files, settings)
        assert float(clones[clone]["fd"]) == pytest.approx(whole["fd"], rel=1e-6) and whole["fd"] > 0
        assert float(clones[clone]["kid"]) == pytest.approx(whole["kid"], rel=1e-6, abs=1e-12)
        for row in table(curated_run, "quality"):
            if row["clone"] == clone:
                assert float(row["kid"]) == pytest.approx(per_class[row["wnid"]], rel=1e-6, abs=1e-12)


def test_the_report_page_of_the_clones_shows_their_fd_and_kid(curated_run, tmp_path):
    config = load_config_filled(curated_run)
    caption = caption_text(REPO, TABLES["quality_clones"], config)
    page = tmp_path / "page.html"
    source = curated_run / TABLES["quality_clones"].source
    load_script("report_table").main(name="quality_clones", source=str(source), output=str(page), caption=caption)
    text = page.read_text()
    assert "FD in CLIP space" in text and "<th>fd</th>" in text and "realbig" in text
    big = next(r for r in table(curated_run, "quality_clones") if r["clone"] == "big")
    assert f"<td>{float(big['fd']):.4g}</td>" in text


def test_a_changed_reference_or_kid_setting_recomputes_the_tables_only(work):
    """small against the real clone: its class's real embedding is big's (same folder and images), so no
    embedding job."""
    edit_config(work, lambda c: c["quality"]["reference"].update(small="realbig"))
    assert dry_run(work, *TARGETS)[0] == Counter({"quality_tables": 1})
    edit_config(work, lambda c: c["quality"].update(kid_subsets=7))
    assert dry_run(work, *TARGETS)[0] == Counter({"quality_tables": 1})


@pytest.mark.parametrize(
    "reference, error",
    [
        ({"big": "nothing"}, "quality.reference.big: 'nothing' is neither a real clone"),
        ({"big": "small"}, "quality.reference.big: 'small' is neither a real clone"),
        ({"other": "real"}, "quality.reference: 'other' is not a generated clone the quality step measures"),
        ({"small": "held"}, "quality.reference.small: evalset 'held' must be an ImageFolder of real images"),
    ],
)
def test_a_bad_reference_is_an_error_naming_it(work, reference, error):
    def change(config):
        config["quality"]["reference"] = reference
        config["evalsets"]["held"] = {"path": "real-val", "layout": "corruptions"}

    edit_config(work, change)
    with pytest.raises(ConfigError, match=error):
        QP.references(load_config_filled(work), plan_of(work))
