"""Snakemake entry of `robustness_tables`: evaluation and attack JSONs -> results/tables/robustness.{csv,md,png}."""

from imagenet_sd.report.robustness_tables import write_robustness_tables
from imagenet_sd.runtime import setup_logging

if "snakemake" in globals():
    log = setup_logging(snakemake.log[0])
    table = write_robustness_tables(
        eval_files=list(snakemake.input.evaluations),
        attack_files=list(snakemake.input.attacks),
        kinds=dict(snakemake.params.data_kinds),
        csv=snakemake.output.csv,
        markdown=snakemake.output.markdown,
        png=snakemake.output.spider,
    )
    log.info("wrote %d rows", len(table))
