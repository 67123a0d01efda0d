"""Snakemake entry of `tiny_clip`: the demo's tiny random CLIP (quality step), saved with save_pretrained."""

from pathlib import Path

from imagenet_sd.quality.clip_embed import build_tiny_clip
from imagenet_sd.runtime import setup_logging

if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    tokenizer, folder = Path(snakemake.input.tokenizer).parent, Path(snakemake.output[0]).parent
    build_tiny_clip(dict(snakemake.params.settings), tokenizer, folder)
