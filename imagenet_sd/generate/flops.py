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
from imagenet_sd.generate.families import t5_tokens
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


def denoiser_flops(pipe: DiffusionPipeline, latent: torch.Tensor) -> int | None:
    """FLOPs of one denoiser forward for one image, counted on the meta device (no memory, no compute).
    SDXL's UNet gets its extra conditioning (pooled text embedding + 6 size/crop numbers) at its own sizes;
    the transformers (PixArt's DiT, SD3's MMDiT, FLUX's) their text tokens and conditioning."""
    from diffusers import FluxTransformer2DModel, PixArtTransformer2DModel, SD3Transformer2DModel, UNet2DConditionModel

    net = denoiser(pipe)
    net = getattr(net, "_orig_mod", net)
    transformers = {
        PixArtTransformer2DModel: dit_flops,
        SD3Transformer2DModel: mmdit_flops,
        FluxTransformer2DModel: flux_flops,
    }
    if type(net) in transformers:
        return transformers[type(net)](net, latent, pipe)
    if not isinstance(net, UNet2DConditionModel) or net.config.addition_embed_type not in (None, "text_time"):
        return None  # another denoiser or another extra conditioning: no estimate
    meta = on_meta(lambda: type(net).from_config(net.config))
    text_len = encoder_tokens(pipe, pipe.text_encoder)
    context = torch.empty(1, text_len, net.config.cross_attention_dim, device="meta")
    extra = {}
    if net.config.addition_embed_type == "text_time":
        pooled = net.config.projection_class_embeddings_input_dim - 6 * net.config.addition_time_embed_dim
        extra = {"text_embeds": torch.empty(1, pooled, device="meta"), "time_ids": torch.empty(1, 6, device="meta")}
    return count_flops(lambda: meta(latent, 10, context, added_cond_kwargs=extra or None))


def dit_flops(net: torch.nn.Module, latent: torch.Tensor, pipe: DiffusionPipeline) -> int:
    """PixArt-alpha's DiT on one latent, with its T5 context (and the 1024-px model's size conditioning)."""
    meta = on_meta(lambda: type(net).from_config(net.config))
    context = torch.empty(1, t5_tokens(pipe), net.config.caption_channels, device="meta")
    sizes = {"resolution": None, "aspect_ratio": None}
    if meta.use_additional_conditions:
        sizes = {"resolution": torch.empty(1, 2, device="meta"), "aspect_ratio": torch.empty(1, 1, device="meta")}
    step = torch.empty(1, device="meta")
    return count_flops(lambda: meta(latent, encoder_hidden_states=context, timestep=step, added_cond_kwargs=sizes))


def mmdit_flops(net: torch.nn.Module, latent: torch.Tensor, pipe: DiffusionPipeline) -> int:
    """SD3's MMDiT: joint attention over the latent's patches and CLIP's 77 + T5's tokens, with the pooled
    projections of both CLIP encoders."""
    meta = on_meta(lambda: type(net).from_config(net.config))
    text_len = encoder_tokens(pipe, pipe.text_encoder) + t5_tokens(pipe)
    context = torch.empty(1, text_len, net.config.joint_attention_dim, device="meta")
    pooled = torch.empty(1, net.config.pooled_projection_dim, device="meta")
    step = torch.empty(1, device="meta")
    return count_flops(lambda: meta(latent, encoder_hidden_states=context, pooled_projections=pooled, timestep=step))


def flux_flops(net: torch.nn.Module, latent: torch.Tensor, pipe: DiffusionPipeline) -> int:
    """FLUX's transformer on the latent packed into 2x2 patches, with T5's tokens and CLIP's pooled output."""
    meta = on_meta(lambda: type(net).from_config(net.config))
    patches = latent.shape[2] // 2 * (latent.shape[3] // 2)
    text_len = t5_tokens(pipe)
    packed = torch.empty(1, patches, net.config.in_channels, device="meta")
    context = torch.empty(1, text_len, net.config.joint_attention_dim, device="meta")
    pooled = torch.empty(1, net.config.pooled_projection_dim, device="meta")
    ids = {"img_ids": torch.zeros(patches, 3, device="meta"), "txt_ids": torch.zeros(text_len, 3, device="meta")}
    guidance = torch.empty(1, device="meta") if net.config.guidance_embeds else None
    step = torch.empty(1, device="meta")
    return count_flops(lambda: meta(packed, context, pooled, step, guidance=guidance, **ids))


def encoder_tokens(pipe: DiffusionPipeline, encoder: torch.nn.Module) -> int:
    """Tokens one text encoder reads per prompt: a T5 is padded to its family's length, CLIP reads 77."""
    from transformers import T5EncoderModel

    return t5_tokens(pipe) if isinstance(encoder, T5EncoderModel) else pipe.tokenizer.model_max_length


def text_encoder_flops(pipe: DiffusionPipeline) -> int:
    """Every text encoder of the pipeline (SDXL and FLUX have two, SD3 three) on one prompt."""
    total = 0
    for name in ("text_encoder", "text_encoder_2", "text_encoder_3"):
        encoder = getattr(pipe, name, None)
        if encoder is not None:
            tokens = torch.zeros(1, encoder_tokens(pipe, encoder), dtype=torch.long, device="meta")
            meta = on_meta(lambda encoder=encoder: type(encoder)(encoder.config))
            total += count_flops(lambda meta=meta, tokens=tokens: meta(tokens))
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
    (Stable Diffusion 1.x/2.x, SDXL, PixArt-alpha, SD3 and FLUX; None for other denoisers)."""
    try:
        factor = pipe.vae_scale_factor
        latent = torch.empty(
            1, pipe.vae.config.latent_channels, settings["height"] // factor, settings["width"] // factor, device="meta"
        )
        unet = denoiser_flops(pipe, latent)
        if unet is None:
            return None
        vae = on_meta(lambda: type(pipe.vae).from_config(pipe.vae.config))
        vae_flops = count_flops(lambda: vae.decode(latent))
        text_flops = text_encoder_flops(pipe)
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
