"""Real-data clones: an ImageFolder train set packed by the same pack into the same kind of shards."""

import io
import json
from collections import Counter
from pathlib import Path

import pytest
import webdataset as wds
from conftest import pack_clone
from PIL import Image
from torchvision.datasets import ImageFolder

from imagenet_sd.plan import ConfigError, build_plan
from imagenet_sd.realdata import DIGIT_WNIDS, check_folder, choose, write_digits

CLASSES = ["n01558993", "n02123045", "n02701002"]


def real_folder(root: Path, per_class=7, classes=CLASSES) -> Path:
    """Per class: JPEGs, one PNG and a file with dots in its name, as real train sets have."""
    for c, wnid in enumerate(classes):
        (root / wnid).mkdir(parents=True)
        for i in range(per_class):
            fmt, ext = ("PNG", "png") if i == 0 else ("JPEG", "JPEG")
            name = f"{wnid}_{i}.v2.{ext}" if i == 1 else f"{wnid}_{i}.{ext}"
            Image.new("RGB", (12 + i, 10), (40 * c, 20 * i, 90)).save(root / wnid / name, format=fmt)
    (root / CLASSES[0] / "notes.txt").write_text("not an image")
    return root


def pack(tmp_path, folder, out="real", images_per_class=5, heldout_per_class=2, seed=0, **source):
    return pack_clone(
        tmp_path / out,
        classes=CLASSES,
        images_per_class=images_per_class,
        shard_size=4,
        seed=seed,
        heldout_per_class=heldout_per_class,
        source={"path": str(folder), **source},
    )


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    folder = real_folder(tmp / "images")
    return folder, pack(tmp, folder)


def test_real_images_are_packed_as_they_are(packed):
    folder, out = packed
    sources = {p.read_bytes() for p in folder.rglob("*") if p.suffix in (".png", ".JPEG")}
    samples = list(wds.WebDataset(sorted(str(p) for p in (out / "train").glob("*.tar")), shardshuffle=False))
    assert len(samples) == 15
    kinds = Counter("png" if "png" in s else "jpg" for s in samples)
    for s in samples:
        image = s.get("png", s.get("jpg"))
        assert image in sources  # the file's own bytes: no re-encoding
        meta = json.loads(s["json"])
        assert meta["real"] and (folder / meta["source"]).read_bytes() == image
        assert int(s["cls"]) == CLASSES.index(meta["wnid"]) and "." not in s["__key__"]
    assert set(kinds) <= {"png", "jpg"} and kinds["jpg"] > 0
    index = json.loads((out / "train.json").read_text())
    assert index["source"]["kind"] == "real" and index["counts_per_class"] == {w: 5 for w in CLASSES}


def test_real_heldout_is_an_image_folder_disjoint_from_train(packed):
    _, out = packed
    held = ImageFolder(out / "heldout")
    assert held.classes == CLASSES and Counter(held.targets) == {0: 2, 1: 2, 2: 2}
    held_bytes = {Path(p).read_bytes() for p, _ in held.samples}
    samples = wds.WebDataset(sorted(str(p) for p in (out / "train").glob("*.tar")), shardshuffle=False)
    train_bytes = {s.get("png", s.get("jpg")) for s in samples}
    assert not held_bytes & train_bytes


def test_the_choice_of_images_is_seeded_and_per_class():
    files = [Path(f"x/{i}.jpg") for i in range(10)]
    assert choose(files, "n01558993", 0, 2, 5) == choose(files, "n01558993", 0, 2, 5)
    assert choose(files, "n01558993", 0, 2, 5) != choose(files, "n01558993", 1, 2, 5)
    train, held = choose(files, "n01558993", 0, 2, None)
    assert len(train) == 8 and len(held) == 2 and not set(train) & set(held)
    with pytest.raises(ValueError, match="n01558993 has 10 images"):
        choose(files, "n01558993", 0, 2, 9)


def test_reencoding_only_when_asked(tmp_path):
    folder = real_folder(tmp_path / "images")
    out = pack(tmp_path, folder, jpeg_quality=80, storage_size=8)
    samples = list(wds.WebDataset(sorted(str(p) for p in (out / "train").glob("*.tar")), shardshuffle=False))
    assert all("jpg" in s and "png" not in s for s in samples)
    assert all(min(Image.open(io.BytesIO(s["jpg"])).size) == 8 for s in samples)


def test_missing_class_folders_are_named(tmp_path):
    folder = real_folder(tmp_path / "images", classes=CLASSES[:2])
    with pytest.raises(ValueError, match=f"no folder for 1 of the sheet's 3 classes: {CLASSES[2]}"):
        check_folder(folder, CLASSES)


def test_a_wrong_layout_is_described(tmp_path):
    (tmp_path / "imagenet" / "train").mkdir(parents=True)
    (tmp_path / "imagenet" / "val").mkdir()
    with pytest.raises(ValueError, match="expected one sub-folder per wnid.*found sub-folders: train, val"):
        check_folder(tmp_path / "imagenet", CLASSES)


def test_plan_checks_a_real_clone_against_its_sheet(tmp_path):
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("wnid\n" + "\n".join(CLASSES) + "\n")
    folder = real_folder(tmp_path / "images", classes=CLASSES[:2])
    config = {
        "seed": 0,
        "class_sets": {"s": {"sheet": str(sheet)}},
        "clones": {"real": {"class_set": "s", "path": str(folder)}},
    }
    with pytest.raises(ConfigError, match=f"clones.real.path: .*{CLASSES[2]}"):
        build_plan(config, check_wnids=False)
    config["clones"]["real"]["path"] = str(tmp_path / "not-yet")  # not there yet: planned, checked by the job
    clone = build_plan(config, check_wnids=False).clones["real"]
    assert clone.real and clone.images_per_class is None


def test_sklearn_digits_as_an_image_folder(tmp_path):
    counts = write_digits(tmp_path / "digits")
    assert sorted(counts) == sorted(DIGIT_WNIDS) and sum(counts.values()) == 1797
    folder = ImageFolder(tmp_path / "digits")
    image, _ = folder[0]
    assert image.size == (8, 8)
    assert len(folder) == 1797
