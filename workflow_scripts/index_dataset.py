"""Snakemake entry of `index_dataset` (login node): one split of a dataset -> its index JSON (relative image
paths, labels, class names). A missing folder or split fails here, before any GPU job, naming it."""

from imagenet_sd.data.transfer_sets import build_index
from imagenet_sd.evaluate.evaluation import read_class_list
from imagenet_sd.runtime import setup_logging, write_json


def main(
    *, root: str, layout: str, splits: dict, folder_names: str, split: str, output: str, classes: str | None = None
) -> dict:
    """`classes`: an evaluation set's class list file; only images of its classes are indexed."""
    only = read_class_list(classes) if classes else None
    index = build_index(root, layout, split, splits, folder_names, only=only)
    write_json(output, index)
    return index


if "snakemake" in globals():
    log = setup_logging(snakemake.log[0])
    spec = dict(snakemake.params.dataset)
    index = main(
        root=spec["root"],
        layout=spec["layout"],
        splits=dict(spec["splits"]),
        folder_names=spec["folder_names"],
        classes=spec.get("classes"),
        split=snakemake.wildcards.part,
        output=snakemake.output[0],
    )
    log.info(
        "%s/%s: %d images of %d classes",
        snakemake.wildcards.dataset,
        snakemake.wildcards.part,
        len(index["samples"]),
        len(index["classes"]),
    )
