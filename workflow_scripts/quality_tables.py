"""Snakemake entry of `quality_tables`: per-class, per-clone and worst-class quality tables (CSV + Markdown)."""

import logging

from imagenet_sd.quality.curation import measured_classes
from imagenet_sd.quality.distances import reference_measures
from imagenet_sd.quality.quality import ClassEmbeddings, class_rows, write_tables
from imagenet_sd.runtime import setup_logging

log = logging.getLogger("imagenet_sd.quality_tables")


def main(*, clones: dict, settings: dict, outputs: dict, curation=None, references=None) -> list[dict]:
    """`clones`: clone -> [(wnid, embedding file)] in class order; `curation`: clone -> its curation settings
    and images_per_class (its tables describe the images it keeps); `references`: clone -> {name, classes:
    [(wnid, embedding file of the real images)]}. Returns the per-class rows."""
    rows, distances = [], {}
    for clone, classes in clones.items():
        loaded = [ClassEmbeddings.load(wnid, path) for wnid, path in classes]
        loaded, measured = measured_classes(loaded, (curation or {}).get(clone))
        mine = class_rows(clone, loaded, settings, measured)
        reference = (references or {}).get(clone)
        if reference:
            per_class, distances[clone] = reference_measures(loaded, reference, settings)
            distances[clone]["reference"] = reference["name"]
            for row in mine:
                row["kid"] = per_class[row["wnid"]]
        rows += mine
    write_tables(rows, settings, outputs, distances)
    flagged = [f"{r['clone']}/{r['wnid']}: {r['flags']}" for r in rows if r["flags"]]
    log.info("%d classes measured, %d flagged%s", len(rows), len(flagged), "".join(f"\n  {f}" for f in flagged))
    return rows


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    main(
        clones={k: [tuple(c) for c in v] for k, v in snakemake.params.clones.items()},
        settings=dict(snakemake.params.settings),
        outputs=dict(snakemake.output.items()),
        curation=dict(snakemake.params.curation),
        references=dict(snakemake.params.references),
    )
