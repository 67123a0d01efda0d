"""Snakemake entry of `generate`: images [start, stop) of one class and split -> one chunk tar + its stats JSON.

Pixel settings come from params (they are in the output key); runtime settings (batch size, device, attention,
channels_last, fuse_qkv, compile) are read from the generator's config entry, so changing them reruns nothing.
"""
import logging
import os
import time
from pathlib import Path

# Weights always come from a local folder (built, the user's, or prefetched on the login node by the local
# rule prefetch_weights): never reach for the hub from a GPU node, which is often offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from imagenet_sd import generation as gen
from imagenet_sd.pipeline import load_pipeline
from imagenet_sd.prompts import load_prompt_file
from imagenet_sd.runtime import atomic_path, sha256_file, versions, write_json

RUNTIME_KEYS = ("batch_size", "device", "attention", "channels_last", "fuse_qkv", "compile", "compile_cache")
log = logging.getLogger("imagenet_sd")


def load(model_dir: str, settings: dict, runtime: dict):
    return load_pipeline(
        model_dir, revision=settings.get("revision"), variant=settings.get("variant"), dtype=settings["dtype"],
        device=runtime["device"], scheduler=settings["scheduler"], attention=runtime["attention"],
        channels_last=runtime["channels_last"], fuse_qkv=runtime["fuse_qkv"], compile=runtime["compile"],
        compile_cache=runtime["compile_cache"], safety_checker=settings["safety_checker"])


def chunk_stats(*, identity, start, stop, counts, times, wall, flops, pipe, settings, runtime, tar_path) -> dict:
    device = gen.device_report(pipe.device)
    steady_seconds = times.denoise + times.decode
    return {
        "images": counts.images, "start": start, "stop": stop, "split": identity.split,
        "wnid": identity.record["wnid"], "class_key": identity.record["class_key"],
        "recipe": identity.record["recipe"], "generator": identity.generator,
        "failures": counts.failures, "regenerated": counts.regenerated, "unresolved": counts.unresolved,
        "seconds": {**times.as_dict(), "total": round(wall, 4)},
        "images_per_second": round(counts.images / wall, 4) if wall else None,
        "steady_images_per_second": round(counts.steady / steady_seconds, 4) if counts.steady else None,
        **device, **gen.efficiency(flops, counts.images, wall, device["device"], settings["dtype"]),
        "flops_per_image": flops, "model": settings["model"], "revision": settings.get("revision"),
        "settings": settings, "runtime": runtime, "versions": versions(),
        "tar_sha256": sha256_file(tar_path), "tar_bytes": tar_path.stat().st_size,
    }


def main(*, prompt_file, model_dir, tar_path, stats_path, generator: str, settings: dict, runtime: dict,
         split: str, start: int, stop: int) -> dict:
    started = time.perf_counter()
    tar_path = Path(tar_path)
    times, counts = gen.PhaseTimes(), gen.Counts()
    identity = gen.ChunkIdentity(load_prompt_file(prompt_file), generator, split)
    tasks = [identity.task(i) for i in range(start, stop)]
    pipe = load(model_dir, settings, runtime)
    flops = gen.flops_per_image(pipe, settings)
    times.load = time.perf_counter() - started
    warmup = gen.needs_warmup(pipe.device, runtime["compile"])
    with atomic_path(tar_path) as partial:
        writer = gen.ChunkWriter(partial, identity, settings)
        try:
            gen.generate_images(pipe, tasks, identity, settings, runtime["batch_size"], writer, times, counts, warmup)
        finally:
            waited = time.perf_counter()
            writer.close()
            times.write += time.perf_counter() - waited
    wall = time.perf_counter() - started
    stats = chunk_stats(identity=identity, start=start, stop=stop, counts=counts, times=times, wall=wall,
                        flops=flops, pipe=pipe, settings=settings, runtime=runtime, tar_path=tar_path)
    stats["writer_busy_seconds"] = round(writer.busy, 4)
    write_json(stats_path, stats)
    log.info("%d images in %.1f s (%.3f img/s), %d re-drawn, %d unresolved", counts.images, wall,
             stats["images_per_second"], counts.regenerated, counts.unresolved)
    return stats


if "snakemake" in globals():
    from imagenet_sd.runtime import setup_logging
    setup_logging(snakemake.log[0])
    entry = snakemake.config["generators"][snakemake.params.generator]
    main(prompt_file=snakemake.input.prompts, model_dir=snakemake.params.model_dir,
         tar_path=Path(snakemake.output.tar), stats_path=snakemake.output.stats,
         generator=snakemake.params.generator, settings=dict(snakemake.params.settings),
         runtime={k: entry[k] for k in RUNTIME_KEYS}, split=snakemake.wildcards.split,
         start=int(snakemake.wildcards.start), stop=int(snakemake.wildcards.stop))
