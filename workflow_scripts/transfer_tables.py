"""Snakemake entry of `transfer_tables`: probe JSONs -> results/tables/transfer.{csv,md,png}."""

from imagenet_sd.report.transfer_tables import write_transfer_tables
from imagenet_sd.runtime import setup_logging

if "snakemake" in globals():
    log = setup_logging(snakemake.log[0])
    table = write_transfer_tables(
        probe_files=list(snakemake.input),
        models=dict(snakemake.params.models),
        datasets=dict(snakemake.params.datasets),
        csv=snakemake.output.csv,
        markdown=snakemake.output.markdown,
        png=snakemake.output.plot,
    )
    log.info("wrote %d rows", len(table))
