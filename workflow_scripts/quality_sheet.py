"""Snakemake entry of `quality_sheet`: a contact sheet of a clone's worst classes by the quality measures."""

import logging

import pandas as pd

from imagenet_sd.quality.quality import sheet_choice
from imagenet_sd.report.contact_sheets import SheetSize, contact_sheet
from imagenet_sd.runtime import setup_logging

log = logging.getLogger("imagenet_sd.quality_sheet")


def label(row: dict) -> str:
    measures = f"CLIP score {row['clip_score']:.3g}, zero-shot {row['zero_shot']:.2f}, Vendi {row['vendi']:.3g}"
    if row["kid"] == row["kid"]:  # measured against real images (not NaN)
        measures += f", KID {row['kid']:.3g}"
    return f"{row['name']} ({row['wnid']}): {row['flags'] or measures}"


def main(*, table: str, clone: str, chunks: dict, settings: dict, output: str) -> list[str]:
    """`table`: quality.csv; `chunks`: wnid -> first train chunk of every class of the clone. Returns the wnids
    shown, worst first."""
    # empty text cells stay text (no flags); an empty KID (no reference) is a missing number
    frame = pd.read_csv(table, dtype={"flags": str}, keep_default_na=False, na_values={"kid": [""]})
    rows = sheet_choice(frame[frame.clone == clone].to_dict("records"), settings["sheet_classes"])
    contact_sheet(
        chunks={r["wnid"]: chunks[r["wnid"]] for r in rows},
        labels={r["wnid"]: label(r) for r in rows},
        title=f"clone {clone}: worst classes by the quality measures (flagged first)",
        output=output,
        size=SheetSize.of(settings),
    )
    log.info("%s: %s", output, ", ".join(r["wnid"] for r in rows))
    return [r["wnid"] for r in rows]


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    # params (chunks, settings) are named after main's keywords
    main(table=snakemake.input.table, clone=snakemake.wildcards.clone, output=snakemake.output[0], **snakemake.params)
