"""Snakemake entry of `quality_embed` and `quality_embed_reference`: CLIP embeddings of one class's images, the
train images of a generated clone (with their CLIP scores) or those of a real reference set."""

from imagenet_sd.quality.clip_embed import embed_class, embed_reference
from imagenet_sd.runtime import setup_logging

if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    # one CLIP, run alike for both rules: the generated images' embeddings are measured against the real ones'
    clip = dict(
        model_dir=snakemake.params.model_dir,
        out=snakemake.output[0],
        batch_size=snakemake.params.batch_size,
        device=snakemake.params.device,  # auto: cuda when there is one
        threads=snakemake.threads,
    )
    if snakemake.rule == "quality_embed_reference":
        embed_reference(source=dict(snakemake.params.source), wnid=snakemake.wildcards.wnid, **clip)
    else:
        embed_class(tars=list(snakemake.input.tars), prompt_file=snakemake.input.prompts, **clip)
