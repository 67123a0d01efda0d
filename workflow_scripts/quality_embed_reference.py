"""Snakemake entry of `quality_embed_reference`: CLIP embeddings of one class of a real reference set."""

from imagenet_sd.quality.clip_embed import embed_reference
from imagenet_sd.runtime import setup_logging

if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    embed_reference(
        model_dir=snakemake.params.model_dir,
        source=dict(snakemake.params.source),
        wnid=snakemake.wildcards.wnid,
        out=snakemake.output[0],
        batch_size=snakemake.params.batch_size,
        device=snakemake.params.device,  # auto: cuda when there is one
        threads=snakemake.threads,
    )
