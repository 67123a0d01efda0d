"""Snakemake entry of `quality_embed`: CLIP embeddings and CLIP scores of one class's train images."""

from imagenet_sd.quality.clip_embed import embed_class
from imagenet_sd.runtime import setup_logging

if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    embed_class(
        model_dir=snakemake.params.model_dir,
        tars=list(snakemake.input.tars),
        prompt_file=snakemake.input.prompts,
        out=snakemake.output[0],
        batch_size=snakemake.params.batch_size,
        device=snakemake.params.device,  # auto: cuda when there is one
        threads=snakemake.threads,
    )
