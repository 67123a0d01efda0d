"""Train a ResNet from scratch on a clone's shards; write the checkpoint and metrics.jsonl."""
import json
import logging
from pathlib import Path

import torch

from imagenet_sd.runtime import setup_logging
from imagenet_sd.training import data_signature, pick_device, resolve_training, train

log = logging.getLogger("imagenet_sd.train")


def main(*, index, shards_dir, checkpoint, metrics, training, classes, threads=1, device=None):
    training = resolve_training(training)
    shard_index = json.loads(Path(index).read_text())
    if shard_index["classes"] != list(classes):
        raise ValueError(f"{index}: the shards were packed for other classes (or another order) than the run's")
    shard_paths = [str(Path(shards_dir) / s["name"]) for s in shard_index["shards"]]
    torch.set_num_threads(max(1, threads))
    workers = min(training["workers"], threads, len(shard_paths))
    train(shard_paths=shard_paths, shard_counts=[s["count"] for s in shard_index["shards"]], classes=list(classes),
          training=training, checkpoint=checkpoint, metrics=metrics, workers=workers, device=pick_device(device),
          data_id=data_signature(shard_index))


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    main(index=snakemake.input.index, shards_dir=snakemake.input.shards, checkpoint=snakemake.output.checkpoint,
         metrics=snakemake.output.metrics, training=dict(snakemake.params.training),
         classes=list(snakemake.params.classes), threads=snakemake.threads)
