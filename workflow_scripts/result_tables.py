"""Snakemake entry of the five result-table rules: `tables` (evaluation), `references`, `robustness_tables`,
`representation_tables` and `transfer_tables`. Each rule names its inputs, params and outputs after its writer's
keywords (imagenet_sd/report/), so one entry serves them all: results/tables/<table>.{csv,md[,png]}."""

from imagenet_sd.report.evaluation_tables import write_evaluation_tables
from imagenet_sd.report.reference_tables import write_reference_tables
from imagenet_sd.report.robustness_tables import write_representation_tables, write_robustness_tables
from imagenet_sd.report.transfer_tables import write_transfer_tables
from imagenet_sd.runtime import setup_logging

WRITERS = {
    "tables": write_evaluation_tables,
    "references": write_reference_tables,
    "robustness_tables": write_robustness_tables,
    "representation_tables": write_representation_tables,
    "transfer_tables": write_transfer_tables,
}


def keywords(job) -> dict:
    """A job's named inputs (each a list of files), params and outputs: its writer's keyword arguments."""
    files = {name: [value] if isinstance(value, str) else list(value) for name, value in job.input.items()}
    return {**files, **dict(job.params.items()), **dict(job.output.items())}


if "snakemake" in globals():
    log = setup_logging(snakemake.log[0])
    table = WRITERS[snakemake.rule](**keywords(snakemake))
    log.info("wrote %d rows to %s", len(table), snakemake.output.csv)
