"""Snakemake entry of `representation_tables`: statistics JSONs -> results/tables/representation.{csv,md,png}."""

from imagenet_sd.report.robustness_tables import write_representation_tables
from imagenet_sd.runtime import setup_logging

if "snakemake" in globals():
    log = setup_logging(snakemake.log[0])
    table = write_representation_tables(
        stat_files=list(snakemake.input),
        kinds=dict(snakemake.params.data_kinds),
        reference=snakemake.params.reference,
        csv=snakemake.output.csv,
        markdown=snakemake.output.markdown,
        png=snakemake.output.spider,
    )
    log.info("wrote %d rows", len(table))
