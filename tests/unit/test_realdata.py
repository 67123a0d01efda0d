"""Real-data clones: an ImageFolder train set packed by the same pack into the same kind of shards."""

import io
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from conftest import pack_clone
from PIL import Image
from torchvision.datasets import ImageFolder

from imagenet_sd.config import ConfigError
from imagenet_sd.data.loader import decode_samples
from imagenet_sd.data.realdata import DIGIT_WNIDS, check_folder, choose, write_digits
from imagenet_sd.data.shards import UndecodableImages
from imagenet_sd.evaluate.evaluation import image_folder
from imagenet_sd.planning.clones import build_plan

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


# ---- files that are not what their names say, and files that are not images ------------------------
def photo(height=20, width=30, seed=0) -> np.ndarray:
    """Smooth colour gradients plus noise: survives JPEG like a photo, and no two rows or columns alike."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def plant_real_kinds(folder: Path) -> dict[str, np.ndarray]:
    """One file of each kind real train sets hold, named as ImageNet names its files (`.JPEG`), and the RGB
    pixels (height, width, 3) each must decode to, found without the workflow's decoder."""
    folder.mkdir(parents=True)
    pixels = photo()
    gray16 = (pixels[..., 0].astype(np.uint16) * 257 + 100).astype(np.uint16)  # the high byte is the 8-bit value
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display; the pixels are stored sideways
    files = {
        "rgb.JPEG": (Image.fromarray(pixels), {"format": "JPEG", "quality": 90}),
        "png_named_jpeg.JPEG": (Image.fromarray(pixels), {"format": "PNG"}),
        "cmyk.JPEG": (Image.fromarray(pixels).convert("CMYK"), {"format": "JPEG", "quality": 90}),
        "grayscale.JPEG": (Image.fromarray(pixels).convert("L"), {"format": "JPEG", "quality": 90}),
        "gray16.JPEG": (Image.fromarray(gray16), {"format": "PNG"}),
        "exif_rotated.JPEG": (Image.fromarray(pixels), {"format": "JPEG", "quality": 90, "exif": exif}),
    }
    expected = {}
    for name, (image, options) in files.items():
        image.save(folder / name, **options)
        with Image.open(folder / name) as saved:  # PIL's own decoding, as torchvision's ImageFolder reads files
            expected[name] = np.asarray(saved.convert("RGB"))
    expected["gray16.JPEG"] = np.repeat((gray16 >> 8).astype(np.uint8)[..., None], 3, axis=-1)
    assert Image.open(folder / "gray16.JPEG").mode == "I;16" and Image.open(folder / "cmyk.JPEG").mode == "CMYK"
    return expected


def test_real_files_of_every_kind_decode_to_the_same_rgb_in_pack_loader_and_evaluation(tmp_path):
    expected = plant_real_kinds(tmp_path / "images" / CLASSES[0])
    for wnid in CLASSES[1:]:
        shutil.copytree(tmp_path / "images" / CLASSES[0], tmp_path / "images" / wnid)
    out = pack(tmp_path, tmp_path / "images", images_per_class=None, heldout_per_class=0)
    trained = {}
    for sample in wds.WebDataset(sorted(str(p) for p in (out / "train").glob("*.tar")), shardshuffle=False):
        images, sizes, _ = decode_samples([sample])  # the training loader's decoding
        trained[json.loads(sample["json"])["source"]] = images[0].permute(1, 2, 0).numpy()
        assert ("png" in sample) == Path(json.loads(sample["json"])["source"]).stem.startswith(("png", "gray16"))
    evaluated, _ = image_folder(tmp_path / "images", CLASSES, transform=None)  # every evaluation's decoding
    assert len(trained) == len(evaluated) == len(CLASSES) * len(expected)
    for path, label in evaluated.samples:
        source = str(Path(path).relative_to(tmp_path / "images"))
        want = expected[Path(path).name]
        assert np.array_equal(trained[source], want), source
        assert np.array_equal(np.asarray(evaluated.loader(path)), want), source
        assert CLASSES[label] == Path(path).parent.name

    reencoded = pack(
        tmp_path, tmp_path / "images", out="reencoded", images_per_class=None, heldout_per_class=0, jpeg_quality=95
    )
    for sample in wds.WebDataset(sorted(str(p) for p in (reencoded / "train").glob("*.tar")), shardshuffle=False):
        want = expected[Path(json.loads(sample["json"])["source"]).name]
        got = np.asarray(Image.open(io.BytesIO(sample["jpg"])).convert("RGB"))
        assert got.shape == want.shape and np.abs(got.astype(int) - want).mean() < 12  # JPEG loss, not clipping


def plant_undecodable(folder: Path) -> list[Path]:
    """Files named like images that are not: random bytes, and a JPEG cut short."""
    rng = np.random.default_rng(1)
    bad = [folder / "random_a.JPEG", folder / "random_b.JPEG", folder / "cut_short.JPEG"]
    bad[0].write_bytes(rng.bytes(3000))
    bad[1].write_bytes(rng.bytes(500))
    whole = io.BytesIO()
    Image.fromarray(photo(64, 64)).save(whole, format="JPEG", quality=90)
    bad[2].write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    return bad


def test_undecodable_files_fail_the_pack_naming_each_or_are_skipped_and_counted(tmp_path):
    folder = real_folder(tmp_path / "images")
    done = pack(tmp_path, folder, images_per_class=None, heldout_per_class=2)  # a pack that succeeded
    before = {p: p.read_bytes() for p in done.rglob("*") if p.is_file()}
    bad = plant_undecodable(folder / CLASSES[1])
    with pytest.raises(UndecodableImages) as failure:
        pack_clone(
            done,
            classes=CLASSES,
            images_per_class=None,
            shard_size=4,
            heldout_per_class=2,
            source={"path": str(folder)},
            clone="real",
        )
    message = str(failure.value)
    assert message.startswith("3 images cannot be decoded: ") and "clones.real.undecodable: skip" in message
    assert all(str(path) in message for path in bad)
    assert "cannot identify image file" in message and "truncated" in message
    assert {p: p.read_bytes() for p in done.rglob("*") if p.is_file()} == before  # nothing replaced
    assert not list(done.glob(".*partial"))

    skipped = pack(tmp_path, folder, out="skipped", images_per_class=None, heldout_per_class=2, undecodable="skip")
    index = json.loads((skipped / "train.json").read_text())
    assert sorted(u["file"] for u in index["undecodable"]) == sorted(map(str, bad))
    per_class = {w: index["counts_per_class"][w] + index["heldout"]["counts_per_class"][w] for w in CLASSES}
    assert per_class == {CLASSES[0]: 7, CLASSES[1]: 7, CLASSES[2]: 7}  # the 3 planted files left out
    samples = list(wds.WebDataset(sorted(str(p) for p in (skipped / "train").glob("*.tar")), shardshuffle=False))
    assert len(samples) == index["count"] == sum(s["count"] for s in index["shards"])
    assert not {json.loads(s["json"])["source"] for s in samples} & {str(p.relative_to(folder)) for p in bad}

    for path in bad:  # what the message asks for: the files removed, the pack gives the undamaged clone's shards
        path.unlink()
    again = pack(tmp_path, folder, out="again", images_per_class=None, heldout_per_class=2)
    assert [p.read_bytes() for p in sorted((again / "train").iterdir())] == [
        data for p, data in sorted(before.items()) if p.parent == done / "train"
    ]
