"""Snakemake entry of `prefetch_weights` (a local rule, on the login node): a hub pipeline into resources/hub/."""

from imagenet_sd.generate.text2image import prefetch
from imagenet_sd.runtime import setup_logging

if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    prefetch(snakemake.params.model, snakemake.params.revision, snakemake.params.folder)
