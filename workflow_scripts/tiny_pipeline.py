"""Snakemake entry of `tiny_pipeline`: the demo's tiny random text-to-image pipeline, saved with save_pretrained."""

from pathlib import Path

from imagenet_sd.generate.tiny_pipeline import build_tiny_pipeline
from imagenet_sd.runtime import setup_logging

if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    build_tiny_pipeline(
        dict(snakemake.params.settings), Path(snakemake.input.tokenizer).parent, snakemake.params.folder
    )
