"""Snakemake entry of `clip_tokenizer`: CLIP's real BPE tokenizer (from open_clip's merges) for transformers."""

from pathlib import Path

from imagenet_sd.prompts.clip_tokenizer import build_clip_tokenizer
from imagenet_sd.runtime import setup_logging

if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    build_clip_tokenizer(Path(snakemake.output.vocab).parent)
