"""Snakemake entry of the `references` rule: evaluation and attack JSONs -> results/tables/references.{csv,md}."""

from imagenet_sd.report.reference_tables import write_reference_tables
from imagenet_sd.runtime import setup_logging

if "snakemake" in globals():
    log = setup_logging(snakemake.log[0])
    table = write_reference_tables(
        eval_files=list(snakemake.input.evaluations),
        attack_files=list(snakemake.input.attacks),
        facts=dict(snakemake.params.facts),
        csv=snakemake.output.csv,
        markdown=snakemake.output.markdown,
    )
    log.info("wrote %d rows, %d with a published number", len(table), table.reference.notna().sum())
