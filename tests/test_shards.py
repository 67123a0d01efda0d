"""Packing: real chunk tars with real JPEGs in, WebDataset shards (read back by webdataset) and an ImageFolder out."""

import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import torch
import webdataset as wds
from conftest import pack_clone
from PIL import Image
from torchvision.datasets import ImageFolder

from imagenet_sd.runtime import sha256_file
from imagenet_sd.shards import index_chunks, shuffle_across_classes

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["n01558993", "n02123045", "n02701002"]


def jpeg(color, size=16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_chunk(path: Path, wnid: str, split: str, start: int, stop: int, size=16) -> Path:
    """A generation chunk tar as the generate rule writes it: per image {wnid}_{index:06d}.jpg + .json, in order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shade = int(wnid[-3:]) % 256
    with tarfile.open(path, "w") as tar:
        for index in range(start, stop):
            key = f"{wnid}_{index:06d}"
            meta = {"wnid": wnid, "index": index, "split": split, "seed": index, "prompt": f"a photo of {wnid}"}
            for name, data in (
                (f"{key}.jpg", jpeg((shade, index * 20 % 256, 90), size)),
                (f"{key}.json", json.dumps(meta).encode()),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def make_clone(root: Path, classes, train_per_class, heldout_per_class, chunk=4, size=16):
    tars = {"train": [], "heldout": []}
    for split, n in (("train", train_per_class), ("heldout", heldout_per_class)):
        for wnid in classes:
            for start in range(0, n, chunk):
                stop = min(start + chunk, n)
                tars[split].append(
                    make_chunk(
                        root / "generated" / split / wnid / f"{start:06d}-{stop:06d}.tar",
                        wnid,
                        split,
                        start,
                        stop,
                        size,
                    )
                )
    return tars


def pack(tmp_path, tars, out="clone", seed=0, shard_size=5, images_per_class=6, classes=CLASSES):
    return pack_clone(
        tmp_path / out,
        train_tars=tars["train"],
        heldout_tars=tars["heldout"],
        classes=classes,
        images_per_class=images_per_class,
        shard_size=shard_size,
        seed=seed,
    )


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pack")
    tars = make_clone(tmp, CLASSES, train_per_class=6, heldout_per_class=2)
    return tmp, tars, pack(tmp, tars)


def read_back(shard_dir: Path):
    shards = sorted(str(p) for p in shard_dir.glob("shard-*.tar"))
    return list(wds.WebDataset(shards, shardshuffle=False).decode("pil"))


def test_shards_read_back_by_webdataset(clone):
    _, _, out = clone
    samples = read_back(out / "train")
    assert len(samples) == 18
    assert len({s["__key__"] for s in samples}) == 18
    for s in samples:
        assert "." not in s["__key__"]
        wnid = s["__key__"].rsplit("_", 1)[0]
        assert s["cls"] == CLASSES.index(wnid)
        assert s["json"]["wnid"] == wnid
        assert s["jpg"].size == (16, 16)


def test_index_lists_shards_with_counts_and_hashes(clone):
    _, _, out = clone
    index = json.loads((out / "train.json").read_text())
    assert [s["name"] for s in index["shards"]] == [f"shard-{i:06d}.tar" for i in range(4)]
    assert [s["count"] for s in index["shards"]] == [5, 5, 5, 3]
    assert index["count"] == 18 and index["classes"] == CLASSES
    assert index["counts_per_class"] == {w: 6 for w in CLASSES}
    assert index["heldout"]["count"] == 6
    assert index["settings"]["seed"] == 0 and "torch" in index["versions"]
    for s in index["shards"]:
        assert sha256_file(out / "train" / s["name"]) == s["sha256"]
    assert not list((out / "train").glob(".*partial"))


def test_shuffle_mixes_classes(clone):
    _, _, out = clone
    labels = [s["cls"] for s in read_back(out / "train")]
    assert labels != sorted(labels)
    first_shard = labels[:5]
    assert len(set(first_shard)) > 1
    # Each shard holds a mix, not one class after another.
    assert all(len(set(labels[i : i + 5])) > 1 for i in range(0, 15, 5))


def test_pack_bytes_are_deterministic(clone, tmp_path):
    _, tars, out = clone
    again = pack(tmp_path, tars, out="again")
    for a, b in zip(sorted((out / "train").glob("*.tar")), sorted((again / "train").glob("*.tar")), strict=True):
        assert a.read_bytes() == b.read_bytes()
    other_seed = pack(tmp_path, tars, out="seed1", seed=1)
    keys = [s["__key__"] for s in read_back(out / "train")]
    assert keys != [s["__key__"] for s in read_back(other_seed / "train")]


def test_heldout_is_an_image_folder(clone):
    _, _, out = clone
    folder = ImageFolder(out / "heldout")
    assert folder.classes == CLASSES
    assert Counter(t for _, t in folder.samples) == {0: 2, 1: 2, 2: 2}
    assert (out / "heldout" / CLASSES[1] / f"{CLASSES[1]}_000001.jpg").is_file()


def test_missing_images_fail_with_the_class_named(clone, tmp_path):
    _, tars, _ = clone
    short = {"train": tars["train"][:-1], "heldout": tars["heldout"]}
    with pytest.raises(ValueError, match=CLASSES[-1]):
        pack(tmp_path, short)


def test_unknown_class_is_an_error(clone):
    _, tars, _ = clone
    with pytest.raises(ValueError, match="not in the clone's class list"):
        index_chunks(tars["train"], CLASSES[:2])


def test_shuffle_is_a_seeded_permutation(clone):
    _, tars, _ = clone
    samples = index_chunks(tars["train"], CLASSES)
    a, b = shuffle_across_classes(samples, 3), shuffle_across_classes(samples, 3)
    assert a == b and sorted(s.key for s in a) == sorted(s.key for s in samples)


def test_heldout_count_is_checked_when_given(clone, tmp_path):
    _, tars, _ = clone
    out = tmp_path / "checked"
    with pytest.raises(ValueError, match="heldout split: expected 3"):
        pack_clone(
            out,
            train_tars=tars["train"],
            heldout_tars=tars["heldout"],
            classes=CLASSES,
            images_per_class=6,
            shard_size=5,
            heldout_per_class=3,
        )
