"""Pack one clone: shuffled WebDataset train shards + their index, and the held-out split as an ImageFolder.

A synthetic clone is read from its chunk tars; a real one (`source`) from an ImageFolder train set.
"""

import functools
import logging
from collections import Counter

from imagenet_sd.data.realdata import index_folder, reencode
from imagenet_sd.data.shards import (
    SHARD_FIELDS,
    Images,
    UndecodableImages,
    check_counts,
    index_chunks,
    shuffle_across_classes,
    write_image_folder,
    write_shards,
)
from imagenet_sd.generate.chunk_check import DamagedChunk
from imagenet_sd.quality.curation import curate
from imagenet_sd.runtime import DiskFull, one_line_errors, setup_logging, staged_dir, versions, write_json

log = logging.getLogger("imagenet_sd.pack")


def gather(source, train_tars, heldout_tars, classes, seed, images_per_class, heldout_per_class):
    """(train samples, held-out samples, how images are taken): from a real clone's folder or from chunk tars."""
    if not source:
        return index_chunks(train_tars, classes), index_chunks(heldout_tars, classes), Images()
    train, heldout = index_folder(source["path"], classes, seed, images_per_class, heldout_per_class or 0)
    transcode = None
    if source.get("jpeg_quality"):
        transcode = functools.partial(reencode, quality=source["jpeg_quality"], size=source.get("storage_size"))
    skip = source.get("undecodable") == "skip"
    return train, heldout, Images(transcode=transcode, check=True, skip_undecodable=skip)


def left_counts(counts: dict[str, int], skipped: list[dict]) -> dict[str, int]:
    """Images per class once the undecodable ones are left out."""
    left_out = Counter(u["wnid"] for u in skipped)
    return {wnid: n - left_out[wnid] for wnid, n in counts.items()}


def write_outputs(train, heldout, images, *, shards_dir, heldout_dir, shard_size, seed, clone):
    """Shards and held-out images, each written into a new directory that replaces the old one only once all
    is written: a failure (an undecodable image, a full disk) leaves the previous outputs as they were.
    Returns the shard records and the images left out of each split."""
    with staged_dir(shards_dir) as shards_tmp, staged_dir(heldout_dir) as heldout_tmp:
        shards = write_shards(shuffle_across_classes(train, seed), shards_tmp, shard_size, images)
        skipped = {"train": list(images.undecodable)}
        write_image_folder(heldout, heldout_tmp, images)
        skipped["heldout"] = images.undecodable[len(skipped["train"]) :]
        if not images.skip_undecodable:
            images.fail_if_undecodable(clone)
    if images.undecodable:
        log.warning("left out %d images that cannot be decoded", len(images.undecodable))
    return shards, skipped


def split_source(source: dict | None) -> tuple[dict | None, dict | None, dict | None]:
    """(a real clone's folder settings, a curated clone's curation settings, its embedding files by wnid)."""
    source = dict(source or {})
    curation, embeddings = source.pop("curation", None), source.pop("embeddings", None)
    return source or None, curation, embeddings


def curated(curation: dict | None) -> dict:
    """What the index says of a curated clone (nothing for an uncurated one: its index stays as it was)."""
    return {"curation": curation} if curation else {}


def main(
    *,
    train_tars,
    heldout_tars,
    shards_dir,
    index,
    heldout_dir,
    classes,
    images_per_class,
    shard_size,
    seed,
    heldout_per_class=None,
    source=None,
    clone=None,
):
    """`source`: {path, jpeg_quality, storage_size[, undecodable]} of a real clone's ImageFolder; {curation,
    embeddings} of a curated synthetic clone (clones.<name>.curation; wnid -> CLIP embedding file), which keeps
    the best images_per_class of each class's oversampled train images; or None (synthetic, every image).
    Inputs are checked before an output is replaced: chunk tars against their stats records while they are
    indexed, real images while they are packed (see write_outputs)."""
    source, curation, embeddings = split_source(source)
    train, heldout, images = gather(
        source, train_tars, heldout_tars, classes, seed, images_per_class, heldout_per_class
    )
    if curation:
        train = curate(train, dict(embeddings), images_per_class, curation)
    train_counts = check_counts(train, classes, images_per_class, "train")
    heldout_counts = check_counts(heldout, classes, heldout_per_class, "heldout")
    origin = source["path"] if source else f"{len(train_tars) + len(heldout_tars)} chunk tars"
    log.info("%d train images, %d held-out images, from %s", len(train), len(heldout), origin)
    shards, skipped = write_outputs(
        train,
        heldout,
        images,
        shards_dir=shards_dir,
        heldout_dir=heldout_dir,
        shard_size=shard_size,
        seed=seed,
        clone=clone,
    )
    heldout_counts = left_counts(heldout_counts, skipped["heldout"])
    record = {
        "format": "webdataset",
        "fields": SHARD_FIELDS,
        "source": {"kind": "real", **source} if source else {"kind": "synthetic"} | curated(curation),
        "shards": shards,
        "count": sum(s["count"] for s in shards),
        "classes": list(classes),
        "counts_per_class": left_counts(train_counts, skipped["train"]),
        "heldout": {
            "count": sum(heldout_counts.values()),
            "counts_per_class": heldout_counts,
            "layout": "ImageFolder <wnid>/<key>.jpg",
        },
        "settings": {
            "seed": seed,
            "shard_size": shard_size,
            "images_per_class": images_per_class,
            "shuffle": "one seeded permutation of all train images across classes",
        },
        "versions": versions(),
    }
    if images.undecodable:  # only then: the index of a clone without such images stays as it was
        record["undecodable"] = [{"file": u["file"], "error": u["error"]} for u in images.undecodable]
    write_json(index, record)


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    with one_line_errors(DamagedChunk, UndecodableImages, DiskFull):
        main(
            train_tars=list(snakemake.input.train),
            heldout_tars=list(snakemake.input.heldout),
            shards_dir=snakemake.output.shards,
            index=snakemake.output.index,
            heldout_dir=snakemake.output.heldout,
            classes=list(snakemake.params.classes),
            images_per_class=snakemake.params.images_per_class,
            shard_size=snakemake.params.shard_size,
            seed=snakemake.params.seed,
            heldout_per_class=snakemake.params.heldout_per_class,
            source=snakemake.params.source,
            clone=snakemake.wildcards.clone,
        )
