"""Representation statistics (sparsity, class distances, redundancy, coding rate) of one features file."""

import json
import logging

import numpy as np

from imagenet_sd.representation import statistics
from imagenet_sd.runtime import setup_logging, versions, write_json

log = logging.getLogger("imagenet_sd.analyze")


def main(*, features, output, eps, threshold, model=None, evalset=None):
    """`features`: an .npz with `features` (n x d), `labels` (n), `classes`."""
    with np.load(features) as data:
        matrix, labels = data["features"], data["labels"]
    found = {
        **statistics(matrix, labels, eps=eps, threshold=threshold),
        "model": model,
        "evalset": evalset,
        "features": str(features),
    }
    log.info("%s on %s: %s", model, evalset, json.dumps({k: v for k, v in found.items() if isinstance(v, float)}))
    write_json(output, {**found, "versions": versions()})
    return found


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    main(
        features=snakemake.input.features,
        output=snakemake.output[0],
        eps=snakemake.params.eps,
        threshold=snakemake.params.threshold,
        model=snakemake.wildcards.model,
        evalset=snakemake.wildcards.evalset,
    )
