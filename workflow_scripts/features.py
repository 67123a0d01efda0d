"""Snakemake entry of `features`: frozen pooled features of one model on one dataset split (.npz, float16)."""

import torch

from imagenet_sd.evaluate.features import run_features
from imagenet_sd.runtime import setup_logging


def main(
    *,
    index_file,
    checkpoint,
    model: dict,
    preprocessing: dict,
    output,
    batch_size=256,
    workers=0,
    threads=1,
    device=None,
) -> dict:
    torch.set_num_threads(max(1, threads))
    return run_features(
        index_file=index_file,
        checkpoint=checkpoint,
        source=model["source"],
        model_classes=list(model["classes"]),
        arch=model["arch"],
        prep=dict(preprocessing),
        output=output,
        batch_size=batch_size,
        workers=min(workers, threads),
        device=device,
    )


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    transfer = snakemake.config["transfer"]  # runtime only (batch size, workers): not in the features key
    main(
        index_file=snakemake.input.index,
        checkpoint=snakemake.input.checkpoint,
        model=dict(snakemake.params.model),
        preprocessing=dict(snakemake.params.preprocessing),
        output=snakemake.output[0],
        batch_size=transfer["batch_size"],
        workers=transfer["workers"],
        threads=snakemake.threads,
    )
