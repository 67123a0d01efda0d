"""FLOPs of one generated image, and the model FLOP utilisation (MFU) a job reached, for its stats JSON.

FLOPs are counted with PyTorch's FlopCounterMode on copies of the networks built on the meta device: no
memory, no compute, a fraction of a second even for SD v1.4. MFU is measured against the card's data-sheet
dense fp16/bf16 tensor-core peak; nothing here changes an image.
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from imagenet_sd.generate import guidance
from imagenet_sd.generate.families import text_tokens
from imagenet_sd.generate.text2image import denoiser

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

log = logging.getLogger("imagenet_sd.generate.flops")

# Dense fp16/bf16 tensor-core peaks (TFLOP/s, vendor data sheets), matched against the device name in order.
PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("V100", 125.0),
)


def denoiser_flops(net: torch.nn.Module, latent: torch.Tensor, text_len: int) -> int | None:
    """FLOPs of one denoiser forward for one image, counted on the meta device (no memory, no compute).
    SDXL's UNet gets its extra conditioning (pooled text embedding + 6 size/crop numbers) at its own sizes."""
    from diffusers import PixArtTransformer2DModel, UNet2DConditionModel

    net = getattr(net, "_orig_mod", net)
    if isinstance(net, PixArtTransformer2DModel):
        return dit_flops(net, latent, text_len)
    if not isinstance(net, UNet2DConditionModel) or net.config.addition_embed_type not in (None, "text_time"):
        return None  # another transformer denoiser or another extra conditioning: no estimate
    meta = on_meta(lambda: type(net).from_config(net.config))
    context = torch.empty(1, text_len, net.config.cross_attention_dim, device="meta")
    extra = {}
    if net.config.addition_embed_type == "text_time":
        pooled = net.config.projection_class_embeddings_input_dim - 6 * net.config.addition_time_embed_dim
        extra = {"text_embeds": torch.empty(1, pooled, device="meta"), "time_ids": torch.empty(1, 6, device="meta")}
    return count_flops(lambda: meta(latent, 10, context, added_cond_kwargs=extra or None))


def dit_flops(net: torch.nn.Module, latent: torch.Tensor, text_len: int) -> int:
    """PixArt-alpha's DiT on one latent, with its T5 context (and the 1024-px model's size conditioning)."""
    meta = on_meta(lambda: type(net).from_config(net.config))
    context = torch.empty(1, text_len, net.config.caption_channels, device="meta")
    sizes = {"resolution": None, "aspect_ratio": None}
    if meta.use_additional_conditions:
        sizes = {"resolution": torch.empty(1, 2, device="meta"), "aspect_ratio": torch.empty(1, 1, device="meta")}
    step = torch.empty(1, device="meta")
    return count_flops(lambda: meta(latent, encoder_hidden_states=context, timestep=step, added_cond_kwargs=sizes))


def text_encoder_flops(pipe: DiffusionPipeline, text_len: int) -> int:
    """Every text encoder of the pipeline (SDXL has two) on one prompt."""
    total = 0
    for name in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipe, name, None)
        if encoder is not None:
            meta = on_meta(lambda encoder=encoder: type(encoder)(encoder.config))
            total += count_flops(lambda meta=meta: meta(torch.zeros(1, text_len, dtype=torch.long, device="meta")))
    return total


def on_meta(build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Build a module on the meta device. Only the build runs under the device context: a forward run inside
    it would pay a Python-level interception on every torch call."""
    with torch.device("meta"):
        return build()


def count_flops(fn: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def flops_per_image(pipe: DiffusionPipeline, settings: dict) -> dict | None:
    """UNet, VAE-decoder and text-encoder FLOPs of one image at the generator's resolution, steps and guidance
    (Stable Diffusion 1.x/2.x, SDXL and PixArt-alpha; None for other denoisers)."""
    try:
        factor = pipe.vae_scale_factor
        text_len = text_tokens(pipe)
        latent = torch.empty(
            1, pipe.vae.config.latent_channels, settings["height"] // factor, settings["width"] // factor, device="meta"
        )
        unet = denoiser_flops(denoiser(pipe), latent, text_len)
        if unet is None:
            return None
        vae = on_meta(lambda: type(pipe.vae).from_config(pipe.vae.config))
        vae_flops = count_flops(lambda: vae.decode(latent))
        text_flops = text_encoder_flops(pipe, text_len)
    except Exception as error:  # noqa: BLE001 - an estimate must never fail a job
        log.warning("no FLOP estimate for %s: %s", type(pipe).__name__, error)
        return None
    # Classifier-free guidance: conditional + unconditional passes (a mixture's mean over its scales).
    passes = guidance.mean_passes(settings)
    steps = settings["steps"]
    total = round(passes * (steps * unet + text_flops) + vae_flops)
    return {
        "unet_forward": unet,
        "vae_decode": vae_flops,
        "text_encoder": text_flops,
        "passes_per_step": passes,
        "steps": steps,
        "total": total,
    }


def peak_tflops(device_name: str, dtype: str) -> float | None:
    """Data-sheet dense tensor-core peak of the card for a half-precision dtype; None when unknown."""
    if dtype not in ("float16", "bfloat16"):
        return None
    return next((peak for name, peak in PEAK_TFLOPS if name in device_name), None)


def device_report(device: torch.device) -> dict:
    """The device's name and the job's peak memory (GPU: allocated by torch; CPU: the process's max RSS)."""
    if device.type == "cuda":
        return {
            "device": torch.cuda.get_device_name(device),
            "peak_memory_bytes": torch.cuda.max_memory_allocated(device),
            "peak_memory_kind": "cuda_max_allocated",
        }
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {"device": "cpu", "peak_memory_bytes": rss, "peak_memory_kind": "process_max_rss"}


def efficiency(flops: dict | None, images: int, seconds: float, device_name: str, dtype: str) -> dict:
    """Achieved TFLOP/s over `seconds`, the card's peak and their ratio (MFU); None where not known."""
    if not flops or not seconds:
        return {"achieved_tflops": None, "peak_tflops": None, "mfu": None}
    achieved = flops["total"] * images / seconds / 1e12
    peak = peak_tflops(device_name, dtype)
    # Four significant digits, not decimals: a CPU or tiny-model job runs at well under 0.001 TFLOP/s.
    return {
        "achieved_tflops": float(f"{achieved:.4g}"),
        "peak_tflops": peak,
        "mfu": round(achieved / peak, 4) if peak else None,
    }
