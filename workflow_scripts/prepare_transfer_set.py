"""Snakemake entry of `prepare_transfer_set` (login node): a torchvision download or scikit-learn's digits,
written under resources/transfer/<name>/ with train.tsv / test.tsv lists."""

from pathlib import Path

from imagenet_sd.data.transfer_sets import prepare_digits, prepare_torchvision
from imagenet_sd.runtime import setup_logging


def main(*, spec: dict, folder: str, seed: int) -> dict:
    fraction = spec.get("test_fraction", 0.3)
    if spec.get("source") == "digits":
        return prepare_digits(folder, spec.get("image_size", 32), fraction, seed)
    if spec.get("source") == "torchvision":
        return prepare_torchvision(spec["dataset"], folder, fraction, seed)
    raise ValueError(f"source {spec.get('source')!r} is not prepared by a rule (a `folder` set is yours)")


if "snakemake" in globals():
    log = setup_logging(snakemake.log[0])
    counts = main(
        spec=dict(snakemake.params.spec), folder=str(Path(snakemake.output.train).parent), seed=snakemake.params.seed
    )
    log.info("%s: %s images per split", snakemake.wildcards.dataset, counts)
