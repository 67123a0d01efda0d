"""Tiny, randomly initialised pipelines of the families after SD 1.x (`pipelines.<name>.family`), each with
its family's component classes and configs at toy sizes, so the generate job runs them like real weights.

- sd2 / sd-turbo: SD 2.x's UNet (linear attention projections, one head size per level) and an OpenCLIP-style
  text encoder (`gelu`, as stabilityai/stable-diffusion-2-1's text_encoder/config.json); sd2's scheduler
  predicts v (the 768-v models), sd-turbo's is epsilon with trailing timesteps (1-4 step sampling).
- sdxl / sdxl-turbo: StableDiffusionXLPipeline: two text encoders (the second with a projection, whose pooled
  output and the size/crop conditioning enter the UNet through `addition_embed_type="text_time"`), the UNet's
  cross-attention over both encoders' concatenated hidden states, and no attention in the first level.
- pixart-alpha: PixArtAlphaPipeline: a T5 encoder (with a tiny T5-style Unigram tokenizer of single
  characters, built here: no download) and a DiT denoiser with adaLN-single, as in diffusers' own tests.
"""

from __future__ import annotations

import os

from imagenet_sd.generate.sd14 import SD_SCHEDULER_CONFIG, assemble_sd_pipeline
from imagenet_sd.generate.text2image import scheduler_from_config
from imagenet_sd.generate.tiny_pipeline import group_count, seeded, tiny_text_encoder, tiny_unet, tiny_vae

SCHEDULER_CHANGES = {
    "sd2": {"prediction_type": "v_prediction"},
    "sd-turbo": {"timestep_spacing": "trailing"},
    "sdxl": {},
    "sdxl-turbo": {"timestep_spacing": "trailing"},
}
TIME_EMBED = 8  # SDXL's addition_time_embed_dim, at toy size (256 in SDXL)


def family_scheduler(settings: dict, family: str):
    return scheduler_from_config(
        settings.get("scheduler", "DDIM"), {**SD_SCHEDULER_CONFIG, **SCHEDULER_CHANGES[family]}
    )


def head_dims(channels: list[int]) -> list[int]:
    """Heads per level, one per 8 channels (SD 2.x and SDXL give a list, not one size)."""
    return [max(1, c // 8) for c in channels]


def tiny_sd2(settings: dict, tokenizer_dir: str | os.PathLike):
    seed, channels = settings.get("seed", 0), list(settings["unet_channels"])
    unet = seeded(
        seed, lambda s: tiny_unet(s, use_linear_projection=True, attention_head_dim=head_dims(channels)), settings
    )
    return assemble_sd_pipeline(
        unet=unet,
        vae=seeded(seed + 1, tiny_vae, settings),
        text_encoder=seeded(seed + 2, lambda s: tiny_text_encoder(s, hidden_act="gelu"), settings),
        tokenizer_dir=tokenizer_dir,
        scheduler=family_scheduler(settings, settings["family"]),
    )


def tiny_sdxl_unet(settings: dict):
    from diffusers import UNet2DConditionModel

    channels, hidden = list(settings["unet_channels"]), settings["text_hidden"]
    levels = len(channels)
    return UNet2DConditionModel(
        sample_size=settings["sample_size"],
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=channels,
        down_block_types=["DownBlock2D"] + ["CrossAttnDownBlock2D"] * (levels - 1),
        up_block_types=["CrossAttnUpBlock2D"] * (levels - 1) + ["UpBlock2D"],
        attention_head_dim=head_dims(channels),
        use_linear_projection=True,
        cross_attention_dim=2 * hidden,  # both encoders' hidden states, concatenated
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED,
        projection_class_embeddings_input_dim=hidden + 6 * TIME_EMBED,  # pooled text + 6 size/crop numbers
        norm_num_groups=group_count(channels),
    )


def tiny_sdxl(settings: dict, tokenizer_dir: str | os.PathLike):
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTokenizer

    seed, hidden = settings.get("seed", 0), settings["text_hidden"]
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    second = "CLIPTextModelWithProjection"
    return StableDiffusionXLPipeline(
        vae=seeded(seed + 1, tiny_vae, settings),
        text_encoder=seeded(seed + 2, lambda s: tiny_text_encoder(s, hidden_act="gelu"), settings),
        text_encoder_2=seeded(
            seed + 3, lambda s: tiny_text_encoder(s, second, hidden_act="gelu", projection_dim=hidden), settings
        ),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=seeded(seed, tiny_sdxl_unet, settings),
        scheduler=family_scheduler(settings, settings["family"]),
        add_watermarker=False,  # an invisible watermark would change pixels where its package is installed
    )


def tiny_t5_tokenizer():
    """A T5 tokenizer (SentencePiece-style Unigram, `</s>` appended) over characters: any prompt tokenizes."""
    import string

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import T5Tokenizer

    chars = string.ascii_lowercase + string.digits + string.punctuation
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -5.0) for c in chars] + [("\u2581" + c, -4.0) for c in string.ascii_lowercase]
    backend = Tokenizer(models.Unigram(pieces, unk_id=2))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    return T5Tokenizer(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0)


def tiny_t5(settings: dict):
    from transformers import T5Config, T5EncoderModel

    hidden = settings["text_hidden"]
    config = T5Config(
        vocab_size=len(tiny_t5_tokenizer()),
        d_model=hidden,
        d_kv=8,
        d_ff=2 * hidden,
        num_layers=settings["text_layers"],
        num_heads=max(1, hidden // 8),
    )
    return T5EncoderModel(config)


def tiny_dit(settings: dict):
    from diffusers import PixArtTransformer2DModel

    hidden = settings["text_hidden"]
    return PixArtTransformer2DModel(
        sample_size=settings["sample_size"],
        num_layers=settings["text_layers"],
        patch_size=2,
        attention_head_dim=8,
        num_attention_heads=max(1, hidden // 8),
        caption_channels=hidden,
        in_channels=4,
        cross_attention_dim=8 * max(1, hidden // 8),
        out_channels=8,  # noise and variance, as PixArt-alpha
        attention_bias=True,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
    )


def tiny_pixart(settings: dict, tokenizer_dir: str | os.PathLike):
    from diffusers import PixArtAlphaPipeline

    seed = settings.get("seed", 0)
    return PixArtAlphaPipeline(
        tokenizer=tiny_t5_tokenizer(),
        text_encoder=seeded(seed + 2, tiny_t5, settings),
        vae=seeded(seed + 1, tiny_vae, settings),
        transformer=seeded(seed, tiny_dit, settings),
        scheduler=scheduler_from_config(settings.get("scheduler", "DDIM"), SD_SCHEDULER_CONFIG),
    )


BUILDERS = {
    "sd2": tiny_sd2,
    "sd-turbo": tiny_sd2,
    "sdxl": tiny_sdxl,
    "sdxl-turbo": tiny_sdxl,
    "pixart-alpha": tiny_pixart,
}
