"""Snakemake entry of `generator`: the demo's tiny random text-to-image pipeline, saved with save_pretrained."""
import json
import logging

from imagenet_sd.pipeline import build_tiny_pipeline
from imagenet_sd.runtime import setup_logging


def main(*, settings: dict, tokenizer: str, folder: str) -> None:
    build_tiny_pipeline(settings, tokenizer, folder)
    logging.getLogger("imagenet_sd").info("tiny pipeline %s built into %s", json.dumps(settings, sort_keys=True), folder)


if "snakemake" in globals():
    from pathlib import Path
    setup_logging(snakemake.log[0])
    main(settings=dict(snakemake.params.settings), tokenizer=str(Path(snakemake.input.tokenizer).parent),
         folder=snakemake.params.folder)
