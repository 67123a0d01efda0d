"""Snakemake entry of `clip_tokenizer`: CLIP's real BPE tokenizer (from open_clip's merges) for transformers."""
import logging
from pathlib import Path

from imagenet_sd.pipeline import build_clip_tokenizer
from imagenet_sd.runtime import setup_logging


def main(*, vocab: str) -> None:
    folder = build_clip_tokenizer(Path(vocab).parent)
    logging.getLogger("imagenet_sd").info("CLIP tokenizer written to %s", folder)


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    main(vocab=snakemake.output.vocab)
