"""Train a ResNet from scratch on a clone's shards; write the checkpoint and metrics.jsonl.

With `devices` > 1 (or 'auto' and several GPUs visible) this job spawns one training process per GPU.
On SIGUSR1/SIGTERM (SLURM's warning before the time limit) it saves a resume state and fails, so that
Snakemake's retry resumes the run.
"""

import json
import logging
from pathlib import Path

import torch

from imagenet_sd.runtime import pick_device, setup_logging
from imagenet_sd.train.distributed import count_devices, run_on_devices
from imagenet_sd.train.resume import StopSignals
from imagenet_sd.train.training import data_signature, resolve_training, train

log = logging.getLogger("imagenet_sd.train")


def main(*, index, shards_dir, checkpoint, metrics, training, classes, threads=1, device=None, log_path=None):
    """`device` None: the GPU if there is one. `device="cpu"` (tests) also lets `devices: N` run N gloo processes."""
    training = resolve_training(training)
    shard_index = json.loads(Path(index).read_text())
    if shard_index["classes"] != list(classes):
        raise ValueError(f"{index}: the shards were packed for other classes (or another order) than the run's")
    shard_paths = [str(Path(shards_dir) / s["name"]) for s in shard_index["shards"]]
    target = pick_device(device)
    ranks = count_devices(training["devices"], target, processes_on_cpu=device == "cpu")
    threads_per_rank = max(1, threads // ranks)
    # loader workers per rank: the job's cpus are shared by the ranks, and each rank reads len/ranks shards;
    # the training process keeps the cores its workers leave
    workers = min(training["workers"], threads_per_rank, len(shard_paths) // ranks)
    main_threads = max(1, threads_per_rank - workers)
    job = {
        "shard_paths": shard_paths,
        "shard_counts": [s["count"] for s in shard_index["shards"]],
        "classes": list(classes),
        "training": training,
        "checkpoint": checkpoint,
        "metrics": metrics,
        "workers": workers,
        "data_id": data_signature(shard_index),
    }
    if ranks == 1:
        torch.set_num_threads(main_threads)
        train(**job, device=target)
    else:
        with StopSignals():  # the ranks save and fail; this process must outlive them to report it
            run_on_devices(train, ranks, target.type, threads=main_threads, log_path=log_path, **job)


# __name__: the processes spawned for several devices import this file again, as __mp_main__
if "snakemake" in globals() and __name__ == "__main__":
    setup_logging(snakemake.log[0])
    main(
        index=snakemake.input.index,
        shards_dir=snakemake.input.shards,
        checkpoint=snakemake.output.checkpoint,
        metrics=snakemake.output.metrics,
        training=dict(snakemake.params.training),
        classes=list(snakemake.params.classes),
        threads=snakemake.threads,
        log_path=snakemake.log[0],
    )
