"""Snakemake entry of `report_table` and `report_figure`: a registered result -> its page in the report.

A table (CSV) becomes an HTML table; a figure is copied as is (the report embeds its own copy).
"""

import logging
import shutil

from imagenet_sd.report.report import table_page
from imagenet_sd.runtime import setup_logging

log = logging.getLogger("imagenet_sd.report.report")


def main(*, name: str, source: str, output: str, caption: str = "") -> None:
    if output.endswith(".html"):
        table_page(name, source, output, caption)
    else:
        shutil.copyfile(source, output)
    log.info("%s -> %s", source, output)


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    wildcards = snakemake.wildcards
    main(
        name=wildcards.get("table") or wildcards.get("figure"),
        source=snakemake.input[0],
        output=snakemake.output[0],
        caption=snakemake.params.caption,
    )
