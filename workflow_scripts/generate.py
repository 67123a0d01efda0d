"""Snakemake entry of `generate`: images [start, stop) of one class and split -> one chunk tar + its stats JSON.

Pixel settings come from params (they are in the output key); runtime settings (batch size, device, attention,
channels_last, fuse_qkv, compile) and the declared family (checked against the pipeline) are read from the
config, so changing them reruns nothing.
"""

import os

# Weights always come from a local folder (built, the user's, or prefetched on the login node by the local
# rule prefetch_weights): never reach for the hub from a GPU node, which is often offline. Set before
# huggingface_hub is imported, which reads it once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from imagenet_sd.generate.generation import RUNTIME_KEYS, run_generate  # noqa: E402
from imagenet_sd.planning.adaptation import generator_family  # noqa: E402
from imagenet_sd.runtime import DiskFull, one_line_errors, setup_logging  # noqa: E402

if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    entry = snakemake.config["generators"][snakemake.params.generator]
    with one_line_errors(DiskFull):
        run_generate(
            prompt_file=snakemake.input.prompts,
            model_dir=snakemake.params.model_dir,
            tar_path=snakemake.output.tar,
            stats_path=snakemake.output.stats,
            generator=snakemake.params.generator,
            settings=dict(snakemake.params.settings),
            runtime={k: entry[k] for k in RUNTIME_KEYS},
            split=snakemake.wildcards.split,
            start=int(snakemake.wildcards.start),
            stop=int(snakemake.wildcards.stop),
            family=generator_family(snakemake.config, snakemake.params.generator),
        )
