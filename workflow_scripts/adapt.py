"""Snakemake entry of `adapt`: a base pipeline adapted on a real clone's train shards (imagenet_sd.train.adapt_job).

On SIGUSR1/SIGTERM (SLURM's warning before the time limit) it saves a resume state and fails, so that
Snakemake's retry (or the user's rerun) resumes it.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the base pipeline is a local folder (built or prefetched)

import torch  # noqa: E402

from imagenet_sd.runtime import setup_logging  # noqa: E402
from imagenet_sd.train.adapt_job import run_adapt  # noqa: E402

if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    torch.set_num_threads(snakemake.threads)
    # runtime settings from the config, outside params: changing them reruns nothing
    params = snakemake.params.p
    spec = snakemake.config["adaptations"][params["adaptation"]]
    run_adapt(
        base_dir=params["base_dir"],
        index=snakemake.input.index,
        shards_dir=snakemake.input.shards,
        prompt_files=list(snakemake.input.prompts),
        classes=params["classes"],
        images_per_class=params["images_per_class"],
        settings={**params["settings"], "save_every": spec["save_every"]},
        out_dir=params["folder"],
        losses=snakemake.output.losses,
        device=spec.get("device"),
    )
