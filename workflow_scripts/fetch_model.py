"""Snakemake entry of `fetch_model` (login node): a checkpoint URL or torchvision weights -> resources/models/."""

from imagenet_sd.runtime import setup_logging
from imagenet_sd.train.models import fetch_checkpoint


def main(*, source: str, output: str) -> None:
    fetch_checkpoint(source, output)


if "snakemake" in globals():
    log = setup_logging(snakemake.log[0])
    log.info("fetching %s -> %s", snakemake.params.source, snakemake.output[0])
    main(source=snakemake.params.source, output=snakemake.output[0])
