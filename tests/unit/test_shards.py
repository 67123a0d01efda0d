"""Packing: real chunk tars with real JPEGs in, WebDataset shards (read back by webdataset) and an ImageFolder out."""

import io
import json
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import torch
import webdataset as wds
from conftest import pack_clone, write_chunk_tar
from PIL import Image
from torchvision.datasets import ImageFolder

from imagenet_sd.data.shards import SHARD_FIELDS, index_chunks, shuffle_across_classes
from imagenet_sd.generate.chunk_check import DamagedChunk, stats_path
from imagenet_sd.runtime import sha256_file

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["n01558993", "n02123045", "n02701002"]


def jpeg(color, size=16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_chunk(path: Path, wnid: str, split: str, start: int, stop: int, size=16) -> Path:
    """A generation chunk tar of images [start, stop) of one class, a flat colour each."""
    shade = int(wnid[-3:]) % 256
    images = [
        (
            jpeg((shade, index * 20 % 256, 90), size),
            {"wnid": wnid, "index": index, "split": split, "seed": index, "prompt": f"a photo of {wnid}"},
        )
        for index in range(start, stop)
    ]
    return write_chunk_tar(path, wnid, images, start=start)


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


def test_the_index_describes_each_field_the_shards_hold(clone):
    _, _, out = clone
    index = json.loads((out / "train.json").read_text())
    assert index["format"] == "webdataset" and index["fields"] == SHARD_FIELDS
    held = set()
    for s in index["shards"]:
        with tarfile.open(out / "train" / s["name"]) as tar:
            held |= {name.split(".", 1)[1] for name in tar.getnames()}
    assert held == {"jpg", "cls", "json"} and held <= set(SHARD_FIELDS)


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


# ---- damaged chunks: each is checked against its stats record while it is indexed ---------------------
def damaged_copy(tars, tmp_path, damage) -> dict:
    """A copy of the clone's chunks (tars and records) with `damage(tar)` done to the first train chunk."""
    copies = {}
    for split, paths in tars.items():
        copies[split] = []
        for tar in paths:
            copy = tmp_path / "chunks" / tar.relative_to(tar.parents[2])
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(tar.read_bytes())
            stats_path(copy).write_bytes(stats_path(tar).read_bytes())
            copies[split].append(copy)
    damage(copies["train"][0])
    return copies


def truncate(tar: Path):
    tar.write_bytes(tar.read_bytes()[:1536])  # an interrupted copy: the first image's header and some data


def flip_a_byte(tar: Path):
    data = bytearray(tar.read_bytes())
    data[700] ^= 0xFF  # inside the first image's bytes: same size, other pixels
    tar.write_bytes(bytes(data))


def miscount(tar: Path):
    record = json.loads(stats_path(tar).read_text())
    stats_path(tar).write_text(json.dumps({**record, "images": record["images"] + 1}))


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (truncate, "1,536 bytes where its stats record says"),
        (flip_a_byte, "its sha256 differs from its stats record's"),
        (miscount, "4 images where its stats record says 5"),
        (lambda tar: stats_path(tar).unlink(), "no stats record"),
    ],
)
def test_a_damaged_chunk_fails_the_pack_naming_it_and_the_command_and_keeps_the_outputs(
    clone, tmp_path, damage, problem
):
    _, tars, out = clone
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    repacked = Path(shutil.copytree(out, tmp_path / "clone"))  # a pack that already succeeded
    damaged = damaged_copy(tars, tmp_path, damage)
    with pytest.raises(DamagedChunk) as failure:
        pack(tmp_path, damaged)
    message = str(failure.value)
    assert message.startswith(f"{damaged['train'][0]}: ") and problem in message and "\n" not in message
    assert f"`snakemake --cores 1 --force {damaged['train'][0]}`" in message
    assert {p.relative_to(repacked): p.read_bytes() for p in repacked.rglob("*") if p.is_file()} == before


def test_chunks_are_indexed_in_one_streaming_pass_at_their_members_offsets(clone):
    _, tars, _ = clone
    for sample in index_chunks(tars["train"], CLASSES):
        member = sample.fields["jpg"]
        with tarfile.open(member.tar) as tar:  # random access: where tarfile itself finds the member
            info = tar.getmember(f"{sample.key}.jpg")
        assert (member.offset, member.size) == (info.offset_data, info.size)


FULL_DISK_PACK = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])  # the tests folder: conftest's pack_clone
from conftest import pack_clone
from imagenet_sd.runtime import DiskFull, one_line_errors, setup_logging
setup_logging(None)
arguments = json.loads(sys.argv[1])
with one_line_errors(DiskFull):  # as the pack rule's script runs it
    pack_clone(Path(arguments.pop("out")), **arguments)
"""


def test_a_full_disk_fails_the_pack_naming_the_output_and_leaves_nothing_partial(clone, small_disk):
    _, tars, out = clone
    arguments = {
        "out": str(small_disk.folder / "clone"),
        "train_tars": [str(t) for t in tars["train"]],
        "heldout_tars": [str(t) for t in tars["heldout"]],
        "classes": CLASSES,
        "images_per_class": 6,
        "shard_size": 5,
    }
    job = small_disk.run(FULL_DISK_PACK, json.dumps(arguments), str(ROOT / "tests"))
    message = job.stderr.strip().splitlines()[-1]
    assert job.returncode == 1 and "Traceback" not in job.stderr
    assert f"ERROR imagenet_sd: cannot write {small_disk.folder / 'clone'}" in message and small_disk.reason in message
    assert [p for p in small_disk.folder.rglob("*") if p.is_file()] == []  # no shard, image or index left
    small_disk.grow()  # space freed: the same pack writes what a pack with room writes
    assert small_disk.run(FULL_DISK_PACK, json.dumps(arguments), str(ROOT / "tests")).returncode == 0
    shards = sorted((small_disk.folder / "clone" / "train").iterdir())
    assert [p.read_bytes() for p in shards] == [p.read_bytes() for p in sorted((out / "train").iterdir())]
