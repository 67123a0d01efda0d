"""Snakemake entry of `contact_sheet` and `comparison_sheet`: a fixed sample of each class -> one JPEG."""

import logging

from imagenet_sd.generate.chunk_check import DamagedChunk
from imagenet_sd.prompts.prompts import load_prompt_file
from imagenet_sd.report.contact_sheets import SheetSize, comparison_sheet, contact_sheet
from imagenet_sd.report.report import class_label
from imagenet_sd.runtime import one_line_errors, setup_logging

log = logging.getLogger("imagenet_sd.report.report")


def main(*, sheet: dict, settings: dict, output: str) -> int:
    """sheet: {"title", "classes": [{index, wnid, chunk, prompts}]} for one clone, or
    {"title", "clones": {clone: {"caption", "classes": [{index, wnid, chunk}]}}} to compare clones."""
    if "clones" in sheet:
        labels = {c["wnid"]: f"{c['index']}. {c['wnid']}" for spec in sheet["clones"].values() for c in spec["classes"]}
        nbytes = comparison_sheet(
            clones={clone: {c["wnid"]: c["chunk"] for c in spec["classes"]} for clone, spec in sheet["clones"].items()},
            labels=labels,
            captions={clone: spec["caption"] for clone, spec in sheet["clones"].items()},
            title=sheet["title"],
            output=output,
            size=SheetSize.of(settings),
        )
    else:
        labels = {c["wnid"]: class_label(c["index"], load_prompt_file(c["prompts"])) for c in sheet["classes"]}
        nbytes = contact_sheet(
            chunks={c["wnid"]: c["chunk"] for c in sheet["classes"]},
            labels=labels,
            title=sheet["title"],
            output=output,
            size=SheetSize.of(settings),
        )
    log.info("%s: %d bytes (budget %d KiB)", output, nbytes, settings["sheet_max_kb"])
    return nbytes


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    with one_line_errors(DamagedChunk):
        main(sheet=snakemake.params.sheet, settings=dict(snakemake.params.settings), output=snakemake.output[0])
