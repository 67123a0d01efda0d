"""Snakemake entry of `training_curves`: a run's metrics.jsonl -> one PNG (loss, lr, train top-1 if logged)."""

import logging

from imagenet_sd.report.curves import training_curves
from imagenet_sd.runtime import setup_logging

log = logging.getLogger("imagenet_sd.report.report")


def main(*, metrics: str, output: str, run: str) -> list[str]:
    panels = training_curves(metrics, output, title=f"run {run}")
    log.info("%s: panels %s", output, ", ".join(panels))
    return panels


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    main(metrics=snakemake.input[0], output=snakemake.output[0], run=snakemake.wildcards.run)
