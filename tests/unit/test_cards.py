"""Dataset cards: one per clone, synthetic and real, beside its shards; the provenance it describes is read
back from the shards exactly as the card says."""

import json

import numpy as np
import webdataset as wds
from conftest import load_script, pack_clone
from test_quality import chunk
from test_realdata import CLASSES, real_folder

from imagenet_sd.quality.cards import LICENCES

SD14 = "CompVis/stable-diffusion-v1-4"


def stats(split, images, regenerated, unresolved):
    """A chunk's stats JSON, the fields the card reads as `generate` writes them."""
    return {"split": split, "images": images, "regenerated": regenerated, "unresolved": unresolved}


def write_card(tmp_path, clone, made_of, stats_records=(), quality_table=None):
    stats_files = []
    for i, record in enumerate(stats_records):
        stats_files.append(tmp_path / f"stats{i}.json")
        stats_files[-1].write_text(json.dumps(record))
    out = tmp_path / clone
    card = load_script("dataset_card").main(
        clone=clone,
        made_of=made_of,
        index=out / "train.json",
        stats=stats_files,
        quality_table=quality_table,
        json_out=out / "card.json",
        markdown_out=out / "card.md",
    )
    assert json.loads((out / "card.json").read_text()) == json.loads(json.dumps(card))
    return card, (out / "card.md").read_text()


def test_synthetic_card_counts_redraws_names_the_licence_and_its_provenance_reads_back(tmp_path):
    rng = np.random.default_rng(0)
    pixels = {w: (rng.random((3, 16, 16, 3)) * 255).astype(np.uint8) for w in CLASSES}
    tars = [chunk(tmp_path / f"{w}.tar", w, pixels[w]) for w in CLASSES]
    pack_clone(tmp_path / "sd", classes=CLASSES, images_per_class=3, shard_size=4, train_tars=tars)
    quality = tmp_path / "quality_clones.csv"
    # sd has no reference, so no FD or KID: left off the card, whose JSON has no NaN (write_card reads it back)
    quality.write_text(
        "clone,classes,images,clip_score,flagged,reference,fd,kid\nsd,3,9,27.5,1,,,\no,1,1,1.0,0,r,2,1\n"
    )
    generator = {"model": SD14, "guidance_scale": 2.0}
    made_of = {"seed": 0, "clone": {"class_set": "s"}, "generator_name": "sd14", "generator": generator}
    made_of |= {"recipe_name": "c_dc", "recipes": {"c_dc": {"family": "c, d_c"}}, "pipeline": None}
    records = [stats("train", 3, 2, 0), stats("train", 6, 1, 1), stats("heldout", 2, 0, 0)]
    card, markdown = write_card(tmp_path, "sd", made_of, records, str(quality))
    assert card["kind"] == "synthetic" and card["train_images"] == 9 and card["classes"] == 3
    assert card["generation"]["train"] == {"chunks": 2, "images": 9, "regenerated": 3, "unresolved": 1}
    assert card["licence"] == LICENCES[SD14] and LICENCES[SD14] in markdown
    assert card["quality"]["flagged"] == 1 and "clip_score: 27.5" in markdown
    assert not {"reference", "fd", "kid"} & set(card["quality"])
    assert card["config"]["generator"] == generator and '"guidance_scale": 2.0' in markdown
    assert card["code"]["commit"] and "libraries" in card["code"]
    # the card's own recipe for reading provenance, run on the shards it describes
    assert "to_tuple('jpg', 'cls', 'json')" in card["provenance"]
    urls = [str(tmp_path / "sd" / "train" / name) for name in card["shards"]]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("pil").to_tuple("jpg", "cls", "json"))
    assert len(samples) == 9 and all(meta["prompt"].startswith("a photo of class") for _, _, meta in samples)


def test_real_card_names_its_folder_and_licence(tmp_path):
    folder = real_folder(tmp_path / "images")
    source = {"path": str(folder), "jpeg_quality": None, "storage_size": None}
    pack_clone(tmp_path / "real", classes=CLASSES, images_per_class=5, shard_size=4, source=source)
    clone = {"class_set": "s", "path": str(folder), "license": "CC BY 4.0"}
    card, markdown = write_card(tmp_path, "real", {"seed": 0, "clone": clone, "class_set": {"sheet": "s.tsv"}})
    assert card["kind"] == "real" and card["train_images"] == 15 and card["licence"] == "CC BY 4.0"
    assert card["generation"] == {} and card["quality"] is None
    assert str(folder) in markdown and "source file" in card["provenance"]
