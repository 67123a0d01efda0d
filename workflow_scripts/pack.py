"""Pack one clone: shuffled WebDataset train shards + their index, and the held-out split as an ImageFolder.

A synthetic clone is read from its chunk tars; a real one (`source`) from an ImageFolder train set.
"""

import functools
import logging

from imagenet_sd.curation import curate
from imagenet_sd.realdata import index_folder, reencode
from imagenet_sd.runtime import setup_logging, versions, write_json
from imagenet_sd.shards import (
    check_counts,
    clear_dir,
    index_chunks,
    shuffle_across_classes,
    write_image_folder,
    write_shards,
)

log = logging.getLogger("imagenet_sd.pack")


FIELDS = {
    "jpg": "image (JPEG)",
    "png": "image (PNG, real images packed as they are)",
    "cls": "class index in `classes` (text)",
    "json": "generation metadata or source file",
}


def gather(source, train_tars, heldout_tars, classes, seed, images_per_class, heldout_per_class):
    """(train samples, held-out samples, transcoding or None): from a real clone's folder or from chunk tars."""
    if not source:
        return index_chunks(train_tars, classes), index_chunks(heldout_tars, classes), None
    train, heldout = index_folder(source["path"], classes, seed, images_per_class, heldout_per_class or 0)
    transcode = None
    if source.get("jpeg_quality"):
        transcode = functools.partial(reencode, quality=source["jpeg_quality"], size=source.get("storage_size"))
    return train, heldout, transcode


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
):
    """`source`: {path, jpeg_quality, storage_size} of a real clone's ImageFolder; {curation, embeddings} of a
    curated synthetic clone (clones.<name>.curation; wnid -> CLIP embedding file), which keeps the best
    images_per_class of each class's oversampled train images; or None (synthetic, every image)."""
    source, curation, embeddings = split_source(source)
    train, heldout, transcode = gather(
        source, train_tars, heldout_tars, classes, seed, images_per_class, heldout_per_class
    )
    if curation:
        train = curate(train, dict(embeddings), images_per_class, curation)
    train_counts = check_counts(train, classes, images_per_class, "train")
    heldout_counts = check_counts(heldout, classes, heldout_per_class, "heldout")
    origin = source["path"] if source else f"{len(train_tars) + len(heldout_tars)} chunk tars"
    log.info("%d train images, %d held-out images, from %s", len(train), len(heldout), origin)

    clear_dir(shards_dir)
    shards = write_shards(shuffle_across_classes(train, seed), shards_dir, shard_size, transcode)
    clear_dir(heldout_dir)
    write_image_folder(heldout, heldout_dir, transcode)

    write_json(
        index,
        {
            "format": "webdataset",
            "fields": FIELDS,
            "source": {"kind": "real", **source} if source else {"kind": "synthetic"} | curated(curation),
            "shards": shards,
            "count": len(train),
            "classes": list(classes),
            "counts_per_class": train_counts,
            "heldout": {
                "count": len(heldout),
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
        },
    )


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
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
    )
