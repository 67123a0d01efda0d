"""Representation statistics (sparsity, class distances, redundancy, coding rate) of one features file,
over the images of the model's classes."""

import json
import logging

import numpy as np

from imagenet_sd.evaluate.representation import model_class_rows, statistics
from imagenet_sd.runtime import setup_logging, versions, write_json

log = logging.getLogger("imagenet_sd.analyze")


def main(*, features, output, eps, threshold, classes, model=None, evalset=None):
    """`features`: an .npz with `features` (n x d), `labels` (n), `classes` (the set's, by label); `classes`:
    the model's wnids. Images of the set's other classes are left out."""
    with np.load(features) as data:
        matrix, labels, names = data["features"], data["labels"], [str(c) for c in data["classes"]]
    keep, analysed, left_out = model_class_rows(labels, names, list(classes))
    if not analysed:
        raise ValueError(
            f"{features}: no image of the {len(classes)} classes of model {model} (the set's: {names[:5]})"
        )
    found = {
        **statistics(matrix[keep], labels[keep], eps=eps, threshold=threshold),
        "classes": analysed,
        "evalset_classes_not_in_model": left_out,
        "model": model,
        "evalset": evalset,
        "features": str(features),
    }
    log.info("%s on %s: %s", model, evalset, json.dumps({k: v for k, v in found.items() if isinstance(v, float)}))
    if left_out:
        log.info("%d of the set's classes are not the model's: %d images left out", len(left_out), int((~keep).sum()))
    write_json(output, {**found, "versions": versions()})
    return found


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    main(
        features=snakemake.input.features,
        output=snakemake.output[0],
        eps=snakemake.params.eps,
        threshold=snakemake.params.threshold,
        classes=list(snakemake.params.classes),
        model=snakemake.wildcards.model,
        evalset=snakemake.wildcards.evalset,
    )
