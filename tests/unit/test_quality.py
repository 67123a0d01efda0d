"""The quality step: measures on known embeddings, a real tiny CLIP on real chunk tars, a planted copied class
flagged, and the plan (one embedding job per class, keyed like its chunks)."""

import copy
import csv
import json

import numpy as np
import pytest
from conftest import jpeg_bytes, load_script, toy_config, write_chunk_tar
from PIL import Image

from imagenet_sd.config import ConfigError, schema
from imagenet_sd.planning.clones import build_plan
from imagenet_sd.planning.quality import measured_clones
from imagenet_sd.quality import quality as Q
from imagenet_sd.quality.clip_embed import build_tiny_clip, embed_class

TINY_CLIP = {"seed": 0, "hidden": 32, "layers": 1, "image_size": 32, "patch_size": 8}
DEFAULTS = {k: v.get("default") for k, v in schema()["properties"]["quality"]["properties"].items()}


def unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_diversity_of_identical_and_orthogonal_images():
    same, orthogonal = unit(np.ones((5, 4))), np.eye(4, dtype=np.float32)
    assert Q.vendi_score(same) == pytest.approx(1.0, abs=1e-4)
    assert Q.vendi_score(orthogonal) == pytest.approx(4.0, abs=1e-4)
    assert Q.mean_pairwise_distance(same) == pytest.approx(0.0, abs=1e-6)
    assert Q.mean_pairwise_distance(orthogonal) == pytest.approx(1.0, abs=1e-6)
    assert Q.duplicate_pairs(same, 0.99) == 10 and Q.duplicate_pairs(orthogonal, 0.99) == 0


def chunk(path, wnid, pixels):
    """A chunk tar as `generate` writes it, each image's JSON with its prompt, and its stats record."""
    images = [
        (jpeg_bytes(image, quality=90), {"prompt": f"a photo of class {wnid}", "index": i})
        for i, image in enumerate(pixels)
    ]
    return write_chunk_tar(path, wnid, images)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory, clip_tokenizer_dir):
    return build_tiny_clip(TINY_CLIP, clip_tokenizer_dir, tmp_path_factory.mktemp("clip") / "tiny")


def test_a_class_of_copies_of_another_class_is_flagged(tmp_path, tiny_clip):
    """Class n3's images are n1's images (the same pixels under n3's keys): the copy check names n1 for it,
    and no class of distinct random images is flagged. A random CLIP's agreement is noise, so it flags nothing
    here (agreement_threshold 0), as in the demo."""
    rng = np.random.default_rng(0)
    images = {w: (rng.random((6, 48, 48, 3)) * 255).astype(np.uint8) for w in ("n1", "n2")}
    images["n3"] = images["n1"]
    classes = []
    for wnid, pixels in images.items():
        prompts = tmp_path / f"{wnid}.prompts.json"  # {wnid}.json is the chunk's stats record
        prompts.write_text(json.dumps({"recipes": {"c": {"fields": {"c": f"thing {wnid}"}}}}))
        out = tmp_path / f"{wnid}.npz"
        embed_class(
            model_dir=tiny_clip, tars=[chunk(tmp_path / f"{wnid}.tar", wnid, pixels)], prompt_file=prompts, out=out
        )
        classes.append((wnid, str(out)))
    outputs = {name: tmp_path / f"{name}.out" for name in ("classes", "clones", "worst")}
    outputs |= {f"{name}_md": tmp_path / f"{name}.md" for name in ("classes", "clones", "worst")}
    settings = DEFAULTS | {"duplicate_threshold": 0.999, "agreement_threshold": 0.0}
    rows = load_script("quality_tables").main(clones={"demo": classes}, settings=settings, outputs=outputs)
    flagged = {r["wnid"]: r for r in rows if r["flags"]}
    assert set(flagged) == {"n1", "n3"}  # a copy is found from both sides
    assert flagged["n3"]["copied"] == 6 and flagged["n3"]["copied_from"] == "n1"
    assert "copies: 6 images also in n1" in flagged["n3"]["flags"]
    assert all(r["duplicate_pairs"] == 0 and r["images"] == 6 for r in rows)  # random images are distinct
    assert "copies: 6 images also in n1" in outputs["classes_md"].read_text()
    (clone,) = csv.DictReader(outputs["clones"].read_text().splitlines())
    assert clone["flagged"] == "2" and clone["measured"] == "generated" and clone["fd"] == ""  # no reference
    # the report's sheet of the worst classes shows the flagged ones first
    report = {k: v.get("default") for k, v in schema()["properties"]["report"]["properties"].items()}
    shown = load_script("quality_sheet").main(
        table=str(outputs["classes"]),
        clone="demo",
        chunks={w: str(tmp_path / f"{w}.tar") for w in images},
        settings=report,
        output=str(tmp_path / "sheet.jpg"),
    )
    assert set(shown[:2]) == {"n1", "n3"} and shown[2] == "n2"
    assert Image.open(tmp_path / "sheet.jpg").format == "JPEG"


def test_a_copied_class_is_flagged_by_agreement_and_duplicates_where_clip_sees_the_classes():
    """The embeddings a working CLIP gives: each class's images near its own name, except n3, whose images are
    n1's (a prompt that drew the wrong thing). Agreement assigns n3's images to n1 and flags it, and the copy
    check names n1; the two classes that agree with their names pass the agreement check."""
    rng = np.random.default_rng(0)
    names = np.eye(8, dtype=np.float32)[:3]  # three orthogonal class-name embeddings

    def near(axis: int) -> np.ndarray:
        return Q.unit_rows(names[axis] + 0.1 * rng.standard_normal((6, 8)).astype(np.float32))

    pictures = {"n1": near(0), "n2": near(1)}
    pictures["n3"] = pictures["n1"]
    classes = [
        Q.ClassEmbeddings(wnid, f"thing {wnid}", images, images @ names[i], names[i])
        for i, (wnid, images) in enumerate(pictures.items())
    ]
    rows = {r["wnid"]: r for r in Q.class_rows("c", classes, DEFAULTS | {"duplicate_threshold": 0.999})}
    assert rows["n3"]["zero_shot"] == 0 and rows["n3"]["assigned_to"] == "n1"
    assert "agreement: CLIP assigns its images to n1" in rows["n3"]["flags"]
    assert rows["n3"]["copied"] == 6 and rows["n3"]["copied_from"] == "n1"
    assert rows["n1"]["zero_shot"] == rows["n2"]["zero_shot"] == 1
    assert "agreement" not in rows["n1"]["flags"] + rows["n2"]["flags"]


def test_repeated_images_are_near_duplicates_within_a_class(tmp_path, tiny_clip):
    """Half of a class's images repeated: the duplicate measure counts the pairs, diversity falls."""
    rng = np.random.default_rng(1)
    distinct = (rng.random((6, 48, 48, 3)) * 255).astype(np.uint8)
    repeated = np.concatenate([distinct[:3], distinct[:3]])
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"recipes": {"c": {"fields": {"c": "thing"}}}}))
    loaded = []
    for wnid, pixels in (("n1", distinct), ("n2", repeated)):
        embed_class(
            model_dir=tiny_clip,
            tars=[chunk(tmp_path / f"{wnid}.tar", wnid, pixels)],
            prompt_file=prompts,
            out=tmp_path / f"{wnid}.npz",
        )
        loaded.append(Q.ClassEmbeddings.load(wnid, tmp_path / f"{wnid}.npz"))
    rows = Q.class_rows("c", loaded, DEFAULTS | {"duplicate_threshold": 0.999, "agreement_threshold": 0.0})
    assert rows[0]["duplicate_pairs"] == 0 and rows[1]["duplicate_pairs"] == 3
    assert rows[1]["vendi"] < rows[0]["vendi"]
    assert "duplicates: 3 near-identical pairs" in rows[1]["flags"]


def test_quality_settings_are_checked():
    config = copy.deepcopy(toy_config())
    config["quality"] = {"model": "openai/clip-vit-base-patch32", "tiny": TINY_CLIP}
    with pytest.raises(ConfigError, match="not both"):
        measured_clones(config, build_plan(config, check_wnids=False))
    config["quality"] = {"tiny": TINY_CLIP, "clones": ["digits"]}
    with pytest.raises(ConfigError, match="'digits' is a real clone"):
        measured_clones(config, build_plan(config, check_wnids=False))
