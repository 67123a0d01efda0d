"""Chunk tars of a clone -> WebDataset train shards shuffled across classes, and an ImageFolder held-out split.

Readers of WebDataset shards only shuffle the shard order plus a sample buffer, so the mixing of classes
has to happen here, at pack time: one seeded permutation of every training image of the clone. Shard
bytes are a pure function of the chunk tars, the class list, the seed and the shard size (fixed mtime,
owner and mode; members in sample order), so a repack that changes nothing writes identical shards.
"""

from __future__ import annotations

import logging
import os
import random
import tarfile
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from imagenet_sd.generate.chunk_check import scan_chunk
from imagenet_sd.progress import Progress
from imagenet_sd.runtime import add_tar_member, atomic_path, naming_full_disk, sha256_file
from imagenet_sd.seeds import derive_seed

log = logging.getLogger(__name__)

SHARD_PATTERN = "shard-{:06d}.tar"
SAMPLE_FIELDS = ("jpg", "json")  # what a chunk tar holds per image (the pack adds `cls`)
# What a train shard holds per image (write_shard), as the clone's index describes its fields to readers.
SHARD_FIELDS = {
    "jpg": "image (JPEG)",
    "png": "image (PNG, real images packed as they are)",
    "cls": "class index in `classes` (text)",
    "json": "generation metadata or source file",
}


def image_format(data: bytes) -> str | None:
    """Shard field of an image by its leading bytes: `jpg`, `png`, or None for other formats."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    return None


@dataclass(frozen=True, slots=True)
class Member:
    """Where one member's bytes sit inside a chunk tar (read later by offset, never all in memory)."""

    tar: str
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class Sample:
    key: str  # n01440764_000012: no dots, webdataset splits the extension at the first dot
    wnid: str
    label: int
    fields: dict  # field name -> Member (bytes inside a file) or bytes


def split_member_name(name: str) -> tuple[str, str]:
    """`n01440764_000012.jpg` -> (`n01440764_000012`, `jpg`); folders inside the tar are ignored."""
    base = os.path.basename(name)
    key, _, ext = base.partition(".")
    return key, ext


def key_wnid(key: str) -> str:
    return key.rsplit("_", 1)[0]


def index_chunks(tars, classes: list[str]) -> list[Sample]:
    """Every image of the chunk tars, with its label (index of its wnid in `classes`), in class then key order.
    Each tar is read once, front to back, and checked against its stats record on the way (chunk_check):
    a damaged chunk stops the pack before it writes anything. (The shards then read the members by offset, in
    shuffled order, which no running hash could follow: hence this pass reads the data, not just headers.)"""
    label_of = {wnid: i for i, wnid in enumerate(classes)}
    found: dict[str, dict] = {}
    tars = list(tars)
    progress = Progress("index and check chunk tars", len(tars), unit="tars", logger=log)
    for tar_path in tars:
        tar_path = str(tar_path)  # one string per tar, shared by its members (a full clone has millions)
        for info in scan_chunk(tar_path):
            key, ext = split_member_name(info.name)
            if ext not in SAMPLE_FIELDS:
                continue
            fields = found.setdefault(key, {})
            if ext in fields:
                raise ValueError(f"{tar_path}: {key}.{ext} also in {fields[ext].tar}")
            fields[ext] = Member(tar_path, info.offset_data, info.size)
        progress.update()
    samples = []
    for key, fields in found.items():
        wnid = key_wnid(key)
        if wnid not in label_of:
            raise ValueError(
                f"{fields['jpg' if 'jpg' in fields else 'json'].tar}: image {key} is of class {wnid}, "
                f"which is not in the clone's class list"
            )
        missing = [f for f in SAMPLE_FIELDS if f not in fields]
        if missing:
            raise ValueError(f"image {key} has no {'/'.join(missing)} member in {next(iter(fields.values())).tar}")
        samples.append(Sample(key, wnid, label_of[wnid], fields))
    samples.sort(key=lambda s: (s.label, s.key))
    return samples


def check_counts(samples: list[Sample], classes: list[str], expected: int | None, split: str) -> dict[str, int]:
    """Images per class; with `expected`, every class must have exactly that many (a chunk went missing otherwise)."""
    counts = Counter(s.wnid for s in samples)
    per_class = {wnid: counts.get(wnid, 0) for wnid in classes}
    if expected is not None:
        wrong = {w: n for w, n in per_class.items() if n != expected}
        if wrong:
            shown = ", ".join(f"{w}: {n}" for w, n in list(wrong.items())[:10])
            raise ValueError(f"{split} split: expected {expected} images per class, got {shown}")
    return per_class


def shuffle_across_classes(samples: list[Sample], seed: int) -> list[Sample]:
    """One seeded permutation of the whole clone (Python's Random.shuffle is stable across versions)."""
    order = list(samples)
    random.Random(derive_seed("pack", seed)).shuffle(order)
    return order


class MemberReader:
    """Reads members by offset, keeping a few chunk tars open (a full clone has thousands of them)."""

    def __init__(self, max_open: int = 64):
        self.max_open = max_open
        self.files: OrderedDict[str, object] = OrderedDict()

    def read(self, member: Member) -> bytes:
        f = self.files.pop(member.tar, None) or open(member.tar, "rb")  # noqa: SIM115 - closed in close()
        self.files[member.tar] = f
        while len(self.files) > self.max_open:
            self.files.popitem(last=False)[1].close()
        f.seek(member.offset)
        data = f.read(member.size)
        if len(data) != member.size:
            raise OSError(f"{member.tar}: truncated member at offset {member.offset}")
        return data

    def close(self):
        for f in self.files.values():
            f.close()
        self.files.clear()


class UndecodableImages(ValueError):
    """Real images that cannot be decoded, in a clone that does not skip them; the message names them."""


@dataclass
class Images:
    """How pack takes each sample's image: its bytes as they are, named by their format (`jpg` or `png`), or
    what `transcode(bytes)` makes of them (a JPEG) when a clone asks for re-encoding. With `check` (real files;
    generated chunks are checked by their sha256) every image is decoded first, as the loader and the
    evaluation will decode it, and one that cannot be is left out and recorded in `undecodable`; the pack then
    fails naming them, unless `skip_undecodable` (the clone's `undecodable: skip`) packs the clone without them."""

    transcode: Callable[[bytes], bytes] | None = None
    check: bool = False
    skip_undecodable: bool = False
    undecodable: list[dict] = field(default_factory=list)

    def take(self, sample: Sample, reader: MemberReader) -> tuple[str, bytes] | None:
        source = sample.fields["jpg"]
        data = reader.read(source) if isinstance(source, Member) else source
        where = source.tar if isinstance(source, Member) else sample.key
        why = self.decode_problem(data) if self.check else None
        if why:
            log.warning("%s: cannot be decoded as an image (%s)", where, why)
            self.undecodable.append({"file": where, "error": why, "key": sample.key, "wnid": sample.wnid})
            return None
        if self.transcode is not None:
            return "jpg", self.transcode(data)
        kind = image_format(data)
        if kind is None:
            raise ValueError(f"{where}: neither JPEG nor PNG; set the clone's jpeg_quality to re-encode such images")
        return kind, data

    @staticmethod
    def decode_problem(data: bytes) -> str | None:
        from imagenet_sd.data.images import undecodable  # torch: imported by the pack job, not by the planning

        return undecodable(data)

    def fail_if_undecodable(self, clone: str | None) -> None:
        """Raise UndecodableImages naming every image left out (the clone fails on them unless it skips them)."""
        if not self.undecodable:
            return
        shown = ", ".join(f"{u['file']} ({u['error']})" for u in self.undecodable[:10])
        more = f" and {len(self.undecodable) - 10} more (each in the log)" if len(self.undecodable) > 10 else ""
        setting = f"clones.{clone}.undecodable: skip" if clone else "the clone's undecodable: skip"
        raise UndecodableImages(
            f"{len(self.undecodable)} images cannot be decoded: {shown}{more}; replace or remove them, "
            f"or set {setting} to pack the clone without them"
        )


def field_bytes(sample: Sample, name: str, reader: MemberReader) -> bytes:
    value = sample.fields[name]
    return reader.read(value) if isinstance(value, Member) else value


def write_shard(path: Path, samples: list[Sample], reader: MemberReader, images: Images) -> dict:
    """One shard, written under a temporary name and renamed: a killed job never leaves a complete-looking shard."""
    count = 0
    with atomic_path(path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for s in samples:
                image = images.take(s, reader)
                if image is None:
                    continue
                add_tar_member(tar, f"{s.key}.cls", str(s.label).encode())
                add_tar_member(tar, f"{s.key}.{image[0]}", image[1])
                add_tar_member(tar, f"{s.key}.json", field_bytes(s, "json", reader))
                count += 1
        digest = sha256_file(tmp)
        size = tmp.stat().st_size
    return {"name": path.name, "count": count, "bytes": size, "sha256": digest}


def write_shards(samples: list[Sample], out_dir: str | os.PathLike, shard_size: int, images: Images) -> list[dict]:
    """Consecutive runs of `shard_size` samples -> shard-000000.tar, ...; returns one record per shard."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reader = MemberReader()
    records = []
    progress = Progress("pack train shards", len(samples), logger=log)
    try:
        for number, start in enumerate(range(0, len(samples), shard_size)):
            batch = samples[start : start + shard_size]
            record = write_shard(out_dir / SHARD_PATTERN.format(number), batch, reader, images)
            log.info("wrote %s: %d images, %.1f MB", record["name"], record["count"], record["bytes"] / 1e6)
            records.append(record)
            progress.update(len(batch))
    finally:
        reader.close()
    progress.finish()
    return records


def write_image_folder(samples: list[Sample], out_dir: str | os.PathLike, images: Images) -> None:
    """ImageFolder layout, as ImageNet val: <out_dir>/<wnid>/<key>.jpg (or .png; only the images, labels are
    the folders)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reader = MemberReader()
    progress = Progress("pack held-out images", len(samples), logger=log)
    try:
        for s in samples:
            image = images.take(s, reader)
            if image is not None:
                folder = out_dir / s.wnid
                folder.mkdir(exist_ok=True)
                path = folder / f"{s.key}.{image[0]}"
                with naming_full_disk(path):
                    path.write_bytes(image[1])
            progress.update()
    finally:
        reader.close()
    progress.finish()
