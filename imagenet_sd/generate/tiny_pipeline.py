"""The demo's tiny, randomly initialised text-to-image pipeline, sized by a `pipelines` config entry.

It has Stable Diffusion v1.x's component classes (or, with the entry's `family`, SD 2.x's or SDXL's:
imagenet_sd/generate/tiny_families.py) and is saved with `save_pretrained`, so the demo loads it
through exactly the `from_pretrained` path that loads real weights on a cluster. Each component's weights
depend on the entry's seed alone: a rebuild is byte-identical.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from imagenet_sd.generate.sd14 import SD_SCHEDULER_CONFIG, assemble_sd_pipeline
from imagenet_sd.generate.text2image import scheduler_from_config
from imagenet_sd.prompts.clip_tokenizer import CLIP_BOS_ID, CLIP_CONTEXT, CLIP_EOS_ID, CLIP_VOCAB_SIZE

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

log = logging.getLogger("imagenet_sd.generate.tiny_pipeline")


def group_count(channels: list[int]) -> int:
    """GroupNorm groups that divide every block's channels (SD uses 32)."""
    return math.gcd(32, *channels)


def tiny_unet(settings: dict, **family_options) -> UNet2DConditionModel:
    """SD v1.x's UNet layout; `family_options` are the UNet config a later family changes (SD 2.x's)."""
    from diffusers import UNet2DConditionModel

    channels = list(settings["unet_channels"])
    levels = len(channels)
    # SD v1.x's layout: cross-attention in every level but the deepest, and in the mid block.
    down = ["CrossAttnDownBlock2D"] * (levels - 1) + ["DownBlock2D"]
    up = ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (levels - 1)
    config = dict(
        sample_size=settings["sample_size"],
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=channels,
        down_block_types=down,
        up_block_types=up,
        cross_attention_dim=settings["text_hidden"],
        attention_head_dim=max(1, channels[0] // 8),
        norm_num_groups=group_count(channels),
    )
    return UNet2DConditionModel(**{**config, **family_options})


def tiny_vae(settings: dict, **family_options) -> AutoencoderKL:
    """SD's VAE layout; `family_options` change its config (SD3's and FLUX's 16 latent channels)."""
    from diffusers import AutoencoderKL

    channels = list(settings["vae_channels"])
    config = dict(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=1,
        block_out_channels=channels,
        down_block_types=["DownEncoderBlock2D"] * len(channels),
        up_block_types=["UpDecoderBlock2D"] * len(channels),
        norm_num_groups=group_count(channels),
        sample_size=settings["sample_size"] * 2 ** (len(channels) - 1),
    )
    return AutoencoderKL(**{**config, **family_options})


def tiny_text_encoder(settings: dict, model_class: str = "CLIPTextModel", **family_options) -> CLIPTextModel:
    """A CLIP text encoder (CLIPTextModelWithProjection as SDXL's second); `family_options` change its config
    (SD 2.x's OpenCLIP encoder: `hidden_act="gelu"`)."""
    import transformers
    from transformers import CLIPTextConfig

    hidden = settings["text_hidden"]
    config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        max_position_embeddings=CLIP_CONTEXT,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=settings["text_layers"],
        num_attention_heads=max(1, hidden // 8),
        bos_token_id=CLIP_BOS_ID,
        eos_token_id=CLIP_EOS_ID,
        pad_token_id=CLIP_EOS_ID,
        **family_options,
    )
    return getattr(transformers, model_class)(config)


def seeded(seed: int, build: Callable[[dict], torch.nn.Module], settings: dict) -> torch.nn.Module:
    """Build one component right after seeding, so each component's weights depend on the seed alone."""
    torch.manual_seed(seed)
    return build(settings)


def tiny_sd1(settings: dict, tokenizer_dir: str | os.PathLike):
    seed = settings.get("seed", 0)
    return assemble_sd_pipeline(
        unet=seeded(seed, tiny_unet, settings),
        vae=seeded(seed + 1, tiny_vae, settings),
        text_encoder=seeded(seed + 2, tiny_text_encoder, settings),
        tokenizer_dir=tokenizer_dir,
        scheduler=scheduler_from_config(settings.get("scheduler", "DDIM"), SD_SCHEDULER_CONFIG),
    )


def build_tiny_pipeline(settings: dict, tokenizer_dir: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """A randomly initialised pipeline of the entry's family (SD 1.x without one), saved into `dest`."""
    from imagenet_sd.generate.tiny_families import BUILDERS

    pipe = BUILDERS.get(settings.get("family", "sd1"), tiny_sd1)(settings, tokenizer_dir)
    pipe.save_pretrained(dest, safe_serialization=True)
    log.info("tiny pipeline %s built into %s", json.dumps(settings, sort_keys=True), dest)
    return Path(dest)
