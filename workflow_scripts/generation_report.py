"""Snakemake entry of `generation_report`: a clone's chunk stats JSONs -> per-chunk CSV + an HTML summary."""

import logging

from imagenet_sd.report.report import generation_page
from imagenet_sd.runtime import setup_logging

log = logging.getLogger("imagenet_sd.report.report")


def main(*, clone: str, stats_files: list[str], csv: str, html: str, generator: dict | None = None):
    total = generation_page(clone=clone, stats_files=stats_files, csv=csv, output=html, generator=generator)
    log.info("clone %s: %d chunks\n%s", clone, len(stats_files), total.to_string(index=False))
    return total


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    main(
        clone=snakemake.wildcards.clone,
        stats_files=list(snakemake.input),
        csv=snakemake.output.csv,
        html=snakemake.output.html,
        generator=dict(snakemake.params.generator),
    )
