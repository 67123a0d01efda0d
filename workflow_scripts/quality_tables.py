"""Snakemake entry of `quality_tables`: per-class, per-clone and worst-class quality tables (CSV + Markdown)."""

import logging

from imagenet_sd.quality.quality import ClassEmbeddings, class_rows, write_tables
from imagenet_sd.runtime import setup_logging

log = logging.getLogger("imagenet_sd.quality_tables")


def main(*, clones: dict, settings: dict, outputs: dict) -> list[dict]:
    """`clones`: clone -> [(wnid, embedding file)] in class order. Returns the per-class rows."""
    rows = []
    for clone, classes in clones.items():
        rows += class_rows(clone, [ClassEmbeddings.load(wnid, path) for wnid, path in classes], settings)
    write_tables(rows, settings, outputs)
    flagged = [f"{r['clone']}/{r['wnid']}: {r['flags']}" for r in rows if r["flags"]]
    log.info("%d classes measured, %d flagged%s", len(rows), len(flagged), "".join(f"\n  {f}" for f in flagged))
    return rows


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    main(
        clones={k: [tuple(c) for c in v] for k, v in snakemake.params.clones.items()},
        settings=dict(snakemake.params.settings),
        outputs=dict(snakemake.output.items()),
    )
