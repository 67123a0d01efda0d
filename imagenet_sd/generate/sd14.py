"""Stable Diffusion v1.x's architecture and scheduler, from the public configs of CompVis/stable-diffusion-v1-4
(https://huggingface.co/CompVis/stable-diffusion-v1-4: unet/, vae/, text_encoder/ and scheduler/ config.json).

With random weights these give SD v1.4's exact shapes and FLOPs with nothing downloaded: the speed benchmark
renders with them and the FLOP counter is checked against them. The demo's tiny pipeline takes the scheduler
and the way the parts are put together from here too.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline

# Scheduler of SD v1.x (its scheduler_config.json), given to whichever scheduler class the config names.
SD_SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "skip_prk_steps": True,
}
SD14_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280, 1280],
    "attention_head_dim": 8,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "center_input_sample": False,
}
SD14_VAE = {
    "sample_size": 512,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": [128, 256, 512, 512],
    "act_fn": "silu",
    "norm_num_groups": 32,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
SD14_TEXT = {
    "vocab_size": 49408,
    "max_position_embeddings": 77,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
    "layer_norm_eps": 1e-5,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 49407,
}


def assemble_sd_pipeline(
    unet: torch.nn.Module,
    vae: torch.nn.Module,
    text_encoder: torch.nn.Module,
    tokenizer_dir: str | os.PathLike,
    scheduler,
) -> StableDiffusionPipeline:
    """A StableDiffusionPipeline of the given parts and a CLIP tokenizer folder, without a safety checker."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTokenizer

    return StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=CLIPTokenizer.from_pretrained(tokenizer_dir),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def sd_pipeline_from_configs(
    unet: dict,
    vae: dict,
    text: dict,
    tokenizer_dir: str | os.PathLike,
    device: torch.device | str = "meta",
    dtype: torch.dtype = torch.float32,
) -> StableDiffusionPipeline:
    """SD v1.x-shaped pipeline with random weights, initialised on `device` (`meta`: shapes only, no memory)
    with SD v1.x's PNDM scheduler."""
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    with torch.device(device):  # initialise where the weights will live: seconds, not minutes
        parts = (
            UNet2DConditionModel(**unet).to(dtype),
            AutoencoderKL(**vae).to(dtype),
            CLIPTextModel(CLIPTextConfig(**text)).to(dtype),
        )
    return assemble_sd_pipeline(*parts, tokenizer_dir, PNDMScheduler.from_config(SD_SCHEDULER_CONFIG))
