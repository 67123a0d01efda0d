"""Snakemake entry of `adaptation_curves`: an adaptation's losses.jsonl -> one PNG (VAE and UNet losses)."""

from imagenet_sd.report.curves import adaptation_curves
from imagenet_sd.runtime import setup_logging

if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    adaptation_curves(snakemake.input[0], snakemake.output[0], title=f"adaptation {snakemake.wildcards.adaptation_key}")
