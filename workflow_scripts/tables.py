"""Snakemake entry of the `tables` rule: evaluation JSONs -> results/tables/evaluation.{csv,md}."""

from imagenet_sd.report.evaluation_tables import write_evaluation_tables
from imagenet_sd.runtime import setup_logging

if "snakemake" in globals():
    log = setup_logging(snakemake.log[0])
    table = write_evaluation_tables(
        eval_files=list(snakemake.input),
        runs=snakemake.params.runs,
        evalsets=snakemake.params.evalsets,
        csv=snakemake.output.csv,
        markdown=snakemake.output.markdown,
        real_clones=list(snakemake.params.real_clones),
        budget=snakemake.params.budget,
    )
    log.info("wrote %d rows", len(table))
