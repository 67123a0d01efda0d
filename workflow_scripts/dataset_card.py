"""Snakemake entry of `dataset_card`: card.json + card.md beside a clone's shards (synthetic or real)."""

import json
import logging
from pathlib import Path

import pandas as pd

from imagenet_sd.quality.cards import build_card, card_markdown, code_version
from imagenet_sd.runtime import setup_logging, write_json

log = logging.getLogger("imagenet_sd.dataset_card")
ROOT = Path(__file__).resolve().parents[1]


def quality_row(table: str | None, clone: str) -> dict | None:
    """The clone's row of quality_clones.csv, when the quality step measured it."""
    if not table:
        return None
    rows = pd.read_csv(table)
    mine = rows[rows.clone == clone].to_dict("records")
    # a clone without a reference has no FD or KID: left off the card (NaN is not JSON)
    return {k: v for k, v in mine[0].items() if v == v} if mine else None


def main(*, clone, made_of, index, stats, quality_table, json_out, markdown_out, root=ROOT) -> dict:
    card = build_card(
        clone=clone,
        made_of=made_of,
        index=json.loads(Path(index).read_text()),
        stats=[json.loads(Path(p).read_text()) for p in stats],
        quality=quality_row(quality_table, clone),
        code=code_version(root),
    )
    write_json(json_out, card)
    Path(markdown_out).write_text(card_markdown(card))
    log.info("card of clone %s: %s, %s", clone, json_out, markdown_out)
    return card


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    main(
        clone=snakemake.wildcards.clone,
        made_of=dict(snakemake.params.made_of),
        index=snakemake.input.index,
        stats=list(snakemake.input.stats),
        quality_table=snakemake.input.get("quality") or None,
        json_out=snakemake.output.json,
        markdown_out=snakemake.output.markdown,
    )
