"""One generate job: the images [start, stop) of one class and split, rendered in batches, written as one tar.

- Each image has its own noise generator seeded from (global seed, generator, recipe, class, split, index,
  attempt), drawn on the CPU: pixels do not depend on batch size, chunking or device order.
- The GPU never waits for JPEG encoding or the tar: a writer thread does both, in index order.
- An all-black or NaN image is re-drawn with the next attempt's seed, up to max_retries, and counted.
- The tar is written under a temporary name and renamed when complete; its bytes are deterministic.
"""
from __future__ import annotations

import io
import json
import logging
import queue
import resource
import tarfile
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image

from imagenet_sd.prompts import image_prompt
from imagenet_sd.runtime import add_tar_member
from imagenet_sd.seeds import image_seed

log = logging.getLogger("imagenet_sd.generation")

QUEUED_BATCHES = 4  # batches the writer may lag behind before the GPU loop waits (bounds host memory)
# Dense fp16/bf16 tensor-core peaks (TFLOP/s, vendor data sheets), matched against the device name in order.
PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("GH200", 989.0), ("A100", 312.0),
               ("L40S", 362.0), ("L4", 121.0), ("A10", 125.0), ("V100", 125.0))


# ---- what to render ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageTask:
    index: int
    prompt: str
    seed: int
    attempt: int = 0


@dataclass(frozen=True)
class ChunkIdentity:
    """What names one chunk's images: it, and nothing else, determines prompts and seeds."""
    record: dict = field(hash=False)
    generator: str
    split: str

    def seed(self, index: int, attempt: int) -> int:
        r = self.record
        return image_seed(r["seed"], self.generator, r["recipe"], r["wnid"], self.split, index, attempt)

    def task(self, index: int, attempt: int = 0) -> ImageTask:
        return ImageTask(index, image_prompt(self.record, self.split, index), self.seed(index, attempt), attempt)

    def retry(self, task: ImageTask) -> ImageTask:
        return replace(task, attempt=task.attempt + 1, seed=self.seed(task.index, task.attempt + 1))

    def key(self, index: int) -> str:
        return f"{self.record['wnid']}_{index:06d}"


def batches(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


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


def render(pipe, tasks: list[ImageTask], settings: dict, clock: DenoiseClock) -> torch.Tensor:
    """Images in [0, 1], shape (B, 3, H, W), still on the pipeline's device."""
    negative = settings.get("negative_prompt") or None
    return pipe(
        prompt=[t.prompt for t in tasks], negative_prompt=[negative] * len(tasks) if negative else None,
        num_inference_steps=settings["steps"], guidance_scale=settings["guidance_scale"],
        height=settings["height"], width=settings["width"], generator=noise_generators(tasks),
        output_type="pt", callback_on_step_end=clock).images


def failure_kinds(images: torch.Tensor, pixels: np.ndarray) -> list[str | None]:
    """'nan' when the float image has a NaN, 'black' when every stored value is 0, else None."""
    nan = torch.isnan(images).flatten(1).any(1).tolist()
    black = (pixels.reshape(len(pixels), -1).max(1) == 0).tolist()
    return ["nan" if n else "black" if b else None for n, b in zip(nan, black)]


def to_pixels(images: torch.Tensor) -> np.ndarray:
    """uint8 (B, H, W, 3) on the host, rounded as diffusers' own PIL output rounds."""
    images = torch.nan_to_num(images.float(), nan=0.0).clamp(0, 1)
    return (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@dataclass
class Rendered:
    task: ImageTask
    pixels: np.ndarray
    failure: str | None = None


@dataclass
class PhaseTimes:
    """Wall seconds of the job's critical path; they add up to the job's time."""
    load: float = 0.0
    warmup: float = 0.0
    denoise: float = 0.0
    decode: float = 0.0
    write: float = 0.0

    def as_dict(self) -> dict:
        return {k: round(v, 4) for k, v in vars(self).items()}


@dataclass
class Counts:
    images: int = 0
    steady: int = 0  # images rendered after the warm-up batch
    failures: dict = field(default_factory=lambda: {"black": 0, "nan": 0})
    regenerated: int = 0
    unresolved: int = 0


def render_timed(pipe, tasks, settings, device, times: PhaseTimes, warmup: bool) -> tuple[torch.Tensor, np.ndarray]:
    clock = DenoiseClock(device)
    started = time.perf_counter()
    images = render(pipe, tasks, settings, clock)
    pixels = to_pixels(images)
    finished = time.perf_counter()
    if warmup:
        times.warmup += finished - started
    else:
        denoise_end = clock.end or finished
        times.denoise += denoise_end - started
        times.decode += finished - denoise_end
    return images, pixels


def render_with_retries(pipe, tasks, identity: ChunkIdentity, settings, device, times, counts: Counts,
                        warmup: bool) -> list[Rendered]:
    """Render a batch; re-draw its black or NaN images with the next attempt's seed, in smaller batches."""
    images, pixels = render_timed(pipe, tasks, settings, device, times, warmup)
    results = [Rendered(t, p, f) for t, p, f in zip(tasks, pixels, failure_kinds(images, pixels))]
    for _ in range(settings["max_retries"]):
        failed = [i for i, r in enumerate(results) if r.failure]
        if not failed:
            break
        for i in failed:
            counts.failures[results[i].failure] += 1
            log.warning("image %d (attempt %d) is %s: re-drawing with a new seed",
                        results[i].task.index, results[i].task.attempt, results[i].failure)
        retries = [identity.retry(results[i].task) for i in failed]
        images, pixels = render_timed(pipe, retries, settings, device, times, warmup)
        counts.regenerated += len(retries)
        for i, task, p, f in zip(failed, retries, pixels, failure_kinds(images, pixels)):
            results[i] = Rendered(task, p, f)
    for r in results:
        if r.failure:
            counts.failures[r.failure] += 1
            counts.unresolved += 1
            log.error("image %d still %s after %d re-draws: stored with failed=%r in its json",
                      r.task.index, r.failure, settings["max_retries"], r.failure)
    return results


# ---- writing -----------------------------------------------------------------------------------
def encode_jpeg(pixels: np.ndarray, quality: int, storage_size: int | None) -> bytes:
    image = Image.fromarray(pixels)
    if storage_size:
        scale = storage_size / min(image.size)
        if scale < 1:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def image_metadata(r: Rendered, identity: ChunkIdentity, settings: dict) -> dict:
    rec = identity.record
    return {"key": identity.key(r.task.index), "prompt": r.task.prompt, "seed": r.task.seed,
            "attempt": r.task.attempt, "index": r.task.index, "split": identity.split, "wnid": rec["wnid"],
            "class_key": rec["class_key"], "recipe": rec["recipe"], "generator": identity.generator,
            "settings": settings, "failed": r.failure}



class ChunkWriter:
    """Writes rendered batches into a tar from a background thread: JPEG encoding off the GPU's path."""

    def __init__(self, path, identity: ChunkIdentity, settings: dict):
        self.path, self.identity, self.settings = path, identity, settings
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUED_BATCHES)
        self.error: BaseException | None = None
        self.busy = 0.0
        self.thread = threading.Thread(target=self._run, name="chunk-writer", daemon=True)
        self.thread.start()

    def put(self, results: list[Rendered]) -> None:
        self._raise_error()
        self.queue.put(results)

    def close(self) -> None:
        """Wait until everything queued is in the tar and the tar is closed."""
        self.queue.put(None)
        self.thread.join()
        self._raise_error()

    def _raise_error(self):
        if self.error is not None:
            raise RuntimeError("the chunk writer failed") from self.error

    def _run(self):
        try:
            with tarfile.open(self.path, "w", format=tarfile.USTAR_FORMAT) as tar:
                while (results := self.queue.get()) is not None:
                    started = time.perf_counter()
                    for r in results:
                        self._write(tar, r)
                    self.busy += time.perf_counter() - started
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            self.error = error
            while self.queue.get() is not None:  # unblock a producer waiting on a full queue
                pass

    def _write(self, tar, r: Rendered):
        key = self.identity.key(r.task.index)
        jpeg = encode_jpeg(r.pixels, self.settings["jpeg_quality"], self.settings.get("storage_size"))
        meta = json.dumps(image_metadata(r, self.identity, self.settings), sort_keys=True, ensure_ascii=False)
        add_tar_member(tar, f"{key}.jpg", jpeg)
        add_tar_member(tar, f"{key}.json", meta.encode("utf-8"))


# ---- the job -----------------------------------------------------------------------------------
def needs_warmup(device: torch.device, compiled: bool) -> bool:
    """First batch is timed as warm-up where it pays one-off costs (CUDA kernels, autotuning, compilation)."""
    return device.type == "cuda" or compiled


def generate_images(pipe, tasks: list[ImageTask], identity: ChunkIdentity, settings: dict, batch_size: int,
                    writer: ChunkWriter, times: PhaseTimes, counts: Counts, warmup_first: bool) -> None:
    device = pipe.device
    for number, batch in enumerate(batches(tasks, batch_size)):
        warmup = warmup_first and number == 0
        results = render_with_retries(pipe, batch, identity, settings, device, times, counts, warmup)
        counts.steady += 0 if warmup else len(results)
        waited = time.perf_counter()
        writer.put(results)
        times.write += time.perf_counter() - waited
        counts.images += len(results)


# ---- statistics --------------------------------------------------------------------------------
def denoiser_flops(net, latent: torch.Tensor, text_len: int) -> int | None:
    """FLOPs of one denoiser forward for one image, counted on the meta device (no memory, no compute)."""
    from diffusers import UNet2DConditionModel
    net = getattr(net, "_orig_mod", net)
    if not isinstance(net, UNet2DConditionModel) or net.config.addition_embed_type is not None:
        return None  # SDXL-style extra conditioning or a transformer denoiser: no estimate
    meta = on_meta(lambda: type(net).from_config(net.config))
    context = torch.empty(1, text_len, net.config.cross_attention_dim, device="meta")
    return count_flops(lambda: meta(latent, 10, context))


def on_meta(build):
    """Build a module on the meta device. Only the build runs under the device context: a forward run inside
    it would pay a Python-level interception on every torch call."""
    with torch.device("meta"):
        return build()


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def flops_per_image(pipe, settings: dict) -> dict | None:
    """UNet, VAE-decoder and text-encoder FLOPs of one image at the generator's resolution, steps and guidance."""
    try:
        factor = pipe.vae_scale_factor
        text_len = pipe.tokenizer.model_max_length
        latent = torch.empty(1, pipe.vae.config.latent_channels, settings["height"] // factor,
                             settings["width"] // factor, device="meta")
        unet = denoiser_flops(pipe.unet, latent, text_len)
        if unet is None:
            return None
        vae = on_meta(lambda: type(pipe.vae).from_config(pipe.vae.config))
        text = on_meta(lambda: type(pipe.text_encoder)(pipe.text_encoder.config))
        vae_flops = count_flops(lambda: vae.decode(latent))
        text_flops = count_flops(lambda: text(torch.zeros(1, text_len, dtype=torch.long, device="meta")))
    except Exception as error:  # noqa: BLE001 - an estimate must never fail a job
        log.warning("no FLOP estimate for %s: %s", type(pipe).__name__, error)
        return None
    passes = 2 if settings["guidance_scale"] > 1 else 1  # classifier-free guidance: conditional + unconditional
    steps = settings["steps"]
    total = passes * (steps * unet + text_flops) + vae_flops
    return {"unet_forward": unet, "vae_decode": vae_flops, "text_encoder": text_flops, "passes_per_step": passes,
            "steps": steps, "total": total}


def peak_tflops(device_name: str, dtype: str) -> float | None:
    if dtype not in ("float16", "bfloat16"):
        return None
    return next((peak for name, peak in PEAK_TFLOPS if name in device_name), None)


def device_report(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"device": torch.cuda.get_device_name(device),
                "peak_memory_bytes": torch.cuda.max_memory_allocated(device), "peak_memory_kind": "cuda_max_allocated"}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {"device": "cpu", "peak_memory_bytes": rss, "peak_memory_kind": "process_max_rss"}


def efficiency(flops: dict | None, images: int, seconds: float, device_name: str, dtype: str) -> dict:
    if not flops or not seconds:
        return {"achieved_tflops": None, "peak_tflops": None, "mfu": None}
    achieved = flops["total"] * images / seconds / 1e12
    peak = peak_tflops(device_name, dtype)
    return {"achieved_tflops": round(achieved, 3), "peak_tflops": peak,
            "mfu": round(achieved / peak, 4) if peak else None}
