"""One generate job: the images [start, stop) of one class and split, rendered in batches on the pipeline's
device and written as one chunk tar plus its stats JSON. `run_generate` is the whole job.

- Each image's initial noise comes from its own CPU generator, seeded per image (see chunks.ChunkIdentity):
  pixels do not depend on batch size, chunking or device order.
- The GPU never waits for JPEG encoding or the tar: a writer thread does both, in index order.
- An all-black or NaN image is re-drawn with the next attempt's seed, up to max_retries, and counted; so is
  an image the safety checker flags under `safety_checker: regenerate` (imagenet_sd.generate.safety).
- The tar is written under a temporary name and renamed when complete; its bytes are deterministic.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from imagenet_sd.generate.chunk_check import tar_record
from imagenet_sd.generate.chunks import ChunkIdentity, ChunkWriter, ImageTask, Rendered
from imagenet_sd.generate.families import call_options, check_architecture
from imagenet_sd.generate.flops import device_report, efficiency, flops_per_image
from imagenet_sd.generate.prompt_encoder import PromptEncoder
from imagenet_sd.generate.safety import SafetyCheck, judge, policy
from imagenet_sd.generate.text2image import load_pipeline
from imagenet_sd.progress import Progress
from imagenet_sd.prompts.prompts import load_prompt_file
from imagenet_sd.runtime import atomic_path, versions, write_json

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

log = logging.getLogger("imagenet_sd.generate.generation")

# What the job reads from its generator's config entry itself, outside the rule's params: these settings
# change speed, not pixels, so changing them reruns nothing.
RUNTIME_KEYS = ("batch_size", "device", "attention", "channels_last", "fuse_qkv", "compile", "compile_cache")
PHASES = ("load", "warmup", "denoise", "decode", "write")


def batches(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# ---- rendering ---------------------------------------------------------------------------------
class DenoiseClock:
    """Pipeline step callback that stamps the end of the last denoising step (the decode starts there)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.end = None

    def __call__(self, pipe, step, timestep, kwargs):
        total = getattr(pipe, "_num_timesteps", None)
        if total is None or step == total - 1:
            synchronize(self.device)
            self.end = time.perf_counter()
        return kwargs


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def noise_generators(tasks: list[ImageTask]) -> list[torch.Generator]:
    """One CPU generator per image: the same initial noise on every device and in every batch."""
    return [torch.Generator("cpu").manual_seed(t.seed) for t in tasks]


def by_scale(tasks: list[ImageTask], settings: dict) -> dict[float, list[int]]:
    """Positions of a batch's images per guidance scale, in first-seen order (one group without a mixture)."""
    groups: dict[float, list[int]] = {}
    for i, t in enumerate(tasks):
        groups.setdefault(settings["guidance_scale"] if t.guidance is None else t.guidance, []).append(i)
    return groups


def render(
    pipe: DiffusionPipeline,
    tasks: list[ImageTask],
    settings: dict,
    clock: DenoiseClock,
    prompts: PromptEncoder | None = None,
) -> torch.Tensor:
    """Images in [0, 1], shape (B, 3, H, W), still on the pipeline's device. `prompts` keeps the text
    embeddings between calls (a job passes its own); without it they are encoded for this batch alone.
    A pipeline call takes one guidance scale: a batch mixing scales is rendered one call per scale, each
    image from its own noise, so its pixels are those of any other batching."""
    prompts = prompts or PromptEncoder(pipe, settings)
    groups = by_scale(tasks, settings)
    parts = [
        render_call(pipe, [tasks[i] for i in group], scale, settings, clock, prompts) for scale, group in groups.items()
    ]
    if len(parts) == 1:
        return parts[0]
    order = [i for group in groups.values() for i in group]
    return torch.cat(parts)[torch.tensor(order).argsort().to(parts[0].device)]


def render_call(
    pipe: DiffusionPipeline,
    tasks: list[ImageTask],
    scale: float,
    settings: dict,
    clock: DenoiseClock,
    prompts: PromptEncoder,
) -> torch.Tensor:
    return pipe(
        **prompts([t.prompt for t in tasks]),
        num_inference_steps=settings["steps"],
        guidance_scale=scale,
        height=settings["height"],
        width=settings["width"],
        generator=noise_generators(tasks),
        output_type="pt",
        callback_on_step_end=clock,
        **call_options(pipe),
    ).images


def to_pixels(images: torch.Tensor) -> np.ndarray:
    """uint8 (B, H, W, 3) on the host, rounded as diffusers' own PIL output rounds."""
    images = torch.nan_to_num(images.float(), nan=0.0).clamp(0, 1)
    return (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


# ---- the job -----------------------------------------------------------------------------------
@dataclass
class ChunkProgress:
    """What a chunk job has measured and counted so far. The phase seconds are wall time of the job's
    critical path: they add up to the job's time."""

    load: float = 0.0
    warmup: float = 0.0
    denoise: float = 0.0
    decode: float = 0.0
    write: float = 0.0  # only the time the render loop waits for the writer thread
    images: int = 0
    steady: int = 0  # images rendered after the warm-up batch
    failures: dict = field(default_factory=lambda: {"black": 0, "nan": 0})
    regenerated: int = 0
    unresolved: int = 0
    flagged: int = 0  # stored images the safety checker flags (kept under `flag`, unresolved under `regenerate`)
    writer_busy: float = 0.0  # seconds the writer thread spent encoding and writing, beside the render loop

    def seconds(self, total: float) -> dict:
        return {**{phase: round(getattr(self, phase), 4) for phase in PHASES}, "total": round(total, 4)}


def needs_warmup(device: torch.device, compiled: bool) -> bool:
    """First batch is timed as warm-up where it pays one-off costs (CUDA kernels, autotuning, compilation)."""
    return device.type == "cuda" or compiled


@dataclass
class ChunkJob:
    """One chunk being rendered: the loaded pipeline, what names the images, the pixel settings (also stored
    in every image's JSON), the runtime settings, and the job's progress."""

    pipe: DiffusionPipeline
    identity: ChunkIdentity
    settings: dict
    runtime: dict
    progress: ChunkProgress = field(default_factory=ChunkProgress)
    safety: SafetyCheck | None = None  # under safety_checker flag or regenerate
    device: torch.device = field(init=False)
    prompts: PromptEncoder = field(init=False)

    def __post_init__(self):
        self.device = self.pipe.device
        self.prompts = PromptEncoder(self.pipe, self.settings)
        if policy(self.settings) == "regenerate":  # counted only then: other chunks' stats stay as they were
            self.progress.failures["nsfw"] = 0

    def judged(self, tasks: list[ImageTask], images: torch.Tensor, pixels: np.ndarray) -> list[Rendered]:
        return judge(tasks, images, pixels, self.safety, policy(self.settings))

    def render_timed(self, tasks: list[ImageTask], warmup: bool) -> tuple[torch.Tensor, np.ndarray]:
        clock = DenoiseClock(self.device)
        started = time.perf_counter()
        images = render(self.pipe, tasks, self.settings, clock, self.prompts)
        pixels = to_pixels(images)
        finished = time.perf_counter()
        if warmup:
            self.progress.warmup += finished - started
        else:
            denoise_end = clock.end or finished
            self.progress.denoise += denoise_end - started
            self.progress.decode += finished - denoise_end
        return images, pixels

    def render_with_retries(self, tasks: list[ImageTask], warmup: bool) -> list[Rendered]:
        """Render a batch; re-draw its black or NaN images with the next attempt's seed, in smaller batches."""
        progress, max_retries = self.progress, self.settings["max_retries"]
        images, pixels = self.render_timed(tasks, warmup)
        results = self.judged(tasks, images, pixels)
        for _ in range(max_retries):
            failed = [i for i, r in enumerate(results) if r.failure]
            if not failed:
                break
            for i in failed:
                progress.failures[results[i].failure] += 1
                log.warning(
                    "image %d (attempt %d) is %s: re-drawing with a new seed",
                    results[i].task.index,
                    results[i].task.attempt,
                    results[i].failure,
                )
            retries = [self.identity.retry(results[i].task) for i in failed]
            images, pixels = self.render_timed(retries, warmup)
            progress.regenerated += len(retries)
            for i, rendered in zip(failed, self.judged(retries, images, pixels)):
                results[i] = rendered
        for r in results:
            if r.failure:
                progress.failures[r.failure] += 1
                progress.unresolved += 1
                log.error(
                    "image %d still %s after %d re-draws: stored with failed=%r in its json",
                    r.task.index,
                    r.failure,
                    max_retries,
                    r.failure,
                )
        return results

    def render_into(self, tasks: list[ImageTask], writer: ChunkWriter) -> None:
        warmup_first = needs_warmup(self.device, self.runtime["compile"])
        progress = Progress(f"generate {self.identity.record['wnid']} {self.identity.split}", len(tasks), logger=log)
        for number, batch in enumerate(batches(tasks, self.runtime["batch_size"])):
            warmup = warmup_first and number == 0
            results = self.render_with_retries(batch, warmup)
            self.progress.steady += 0 if warmup else len(results)
            waited = time.perf_counter()
            writer.put(results)
            self.progress.write += time.perf_counter() - waited
            self.progress.images += len(results)
            self.progress.flagged += sum(bool(r.nsfw) for r in results)
            progress.update(len(results))
        progress.finish()

    def write_chunk(self, tasks: list[ImageTask], tar_path: Path) -> None:
        """Render `tasks` into the tar at `tar_path`, which appears only once complete."""
        with atomic_path(tar_path) as partial:
            writer = ChunkWriter(partial, self.identity, self.settings)
            try:
                self.render_into(tasks, writer)
            finally:
                waited = time.perf_counter()
                writer.close()
                self.progress.write += time.perf_counter() - waited
        self.progress.writer_busy = writer.busy

    def stats(self, start: int, stop: int, wall: float, flops: dict | None, tar_path: Path) -> dict:
        """The chunk's stats JSON: counts, phase seconds, throughput, memory, FLOPs, MFU and provenance."""
        p, identity = self.progress, self.identity
        device = device_report(self.device)
        steady_seconds = p.denoise + p.decode
        return {
            "images": p.images,
            "start": start,
            "stop": stop,
            "split": identity.split,
            "wnid": identity.record["wnid"],
            "class_key": identity.record["class_key"],
            "recipe": identity.record["recipe"],
            "generator": identity.generator,
            "failures": p.failures,
            "regenerated": p.regenerated,
            "unresolved": p.unresolved,
            **({"nsfw_flagged": p.flagged} if self.safety else {}),
            "seconds": p.seconds(wall),
            "images_per_second": round(p.images / wall, 4) if wall else None,
            "steady_images_per_second": round(p.steady / steady_seconds, 4) if p.steady else None,
            **device,
            **efficiency(flops, p.images, wall, device["device"], self.settings["dtype"]),
            "flops_per_image": flops,
            "model": self.settings["model"],
            "revision": self.settings.get("revision"),
            "settings": self.settings,
            "runtime": self.runtime,
            "versions": versions(),
            **tar_record(tar_path),
            "writer_busy_seconds": round(p.writer_busy, 4),
        }


def load_generator(model_dir: str, settings: dict, runtime: dict) -> DiffusionPipeline:
    """The generator's pipeline from its local folder, with its pixel settings and its runtime settings."""
    return load_pipeline(
        model_dir,
        revision=settings.get("revision"),
        variant=settings.get("variant"),
        dtype=settings["dtype"],
        device=runtime["device"],
        scheduler=settings["scheduler"],
        attention=runtime["attention"],
        channels_last=runtime["channels_last"],
        fuse_qkv=runtime["fuse_qkv"],
        compile=runtime["compile"],
        compile_cache=runtime["compile_cache"],
        safety_checker=policy(settings) == "pipeline",  # flag and regenerate check beside the call
    )


def load_safety_check(model_dir: str, settings: dict, pipe: DiffusionPipeline, generator: str) -> SafetyCheck | None:
    if policy(settings) not in ("flag", "regenerate"):
        return None
    return SafetyCheck(model_dir, settings.get("revision"), pipe.device, generator)


def run_generate(
    *,
    prompt_file: str | os.PathLike,
    model_dir: str,
    tar_path: str | os.PathLike,
    stats_path: str | os.PathLike,
    generator: str,
    settings: dict,
    runtime: dict,
    split: str,
    start: int,
    stop: int,
    family: str | None = None,
) -> dict:
    """The `generate` job: images [start, stop) of one class and split -> one chunk tar + its stats JSON.
    `settings` are the generator's pixel settings (in the output key), `runtime` its RUNTIME_KEYS, `family`
    the family the config declares (checked against the pipeline's architecture before it loads)."""
    started = time.perf_counter()
    check_architecture(model_dir, generator, family)
    tar_path = Path(tar_path)
    identity = ChunkIdentity.of_job(load_prompt_file(prompt_file), generator, split, settings)
    tasks = [identity.task(i) for i in range(start, stop)]
    pipe = load_generator(model_dir, settings, runtime)
    job = ChunkJob(pipe, identity, settings, runtime, safety=load_safety_check(model_dir, settings, pipe, generator))
    flops = flops_per_image(job.pipe, settings)
    job.progress.load = time.perf_counter() - started
    job.write_chunk(tasks, tar_path)
    wall = time.perf_counter() - started
    stats = job.stats(start, stop, wall, flops, tar_path)
    write_json(stats_path, stats)
    log.info(
        "%d images in %.1f s (%.3f img/s), %d re-drawn, %d unresolved",
        job.progress.images,
        wall,
        stats["images_per_second"],
        job.progress.regenerated,
        job.progress.unresolved,
    )
    return stats
