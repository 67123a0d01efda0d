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
- sd3: StableDiffusion3Pipeline: two CLIP encoders with projections and a T5 (as wide as both CLIPs side by
  side), an MMDiT denoiser, a 16-channel VAE and SD3's flow-matching scheduler (shift 3).
- flux-schnell: FluxPipeline: CLIP (pooled) and T5 encoders, FLUX's double- and single-stream transformer
  without a guidance input, a 16-channel VAE and FLUX.1-schnell's flow-matching scheduler.
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


def tiny_t5(settings: dict, hidden: int | None = None):
    from transformers import T5Config, T5EncoderModel

    hidden = hidden or settings["text_hidden"]
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


# SD3's and FLUX's VAE: 16 latent channels, no quant convs, a shift besides the scale (their configs' values).
FLOW_VAES = {
    "sd3": {"scaling_factor": 1.5305, "shift_factor": 0.0609},
    "flux-schnell": {"scaling_factor": 0.3611, "shift_factor": 0.1159},
}
# Their schedulers: SD3's flow-matching Euler with shift 3; FLUX.1-schnell's without shift (its scheduler_config).
FLOW_SCHEDULERS = {"sd3": {"shift": 3.0}, "flux-schnell": {"shift": 1.0, "use_dynamic_shifting": False}}


def flow_parts(settings: dict) -> dict:
    """The VAE and scheduler of a flow-matching family (the tiny entry's `scheduler` is not used)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    family, seed = settings["family"], settings.get("seed", 0)
    options = {"latent_channels": 16, "use_quant_conv": False, "use_post_quant_conv": False, **FLOW_VAES[family]}
    return {
        "vae": seeded(seed + 1, lambda s: tiny_vae(s, **options), settings),
        "scheduler": FlowMatchEulerDiscreteScheduler(**FLOW_SCHEDULERS[family]),
    }


def tiny_mmdit(settings: dict):
    """SD3's MMDiT: joint attention over the patches and the text tokens (CLIP's, padded to T5's width, then
    T5's), conditioned on both CLIP encoders' pooled projections."""
    from diffusers import SD3Transformer2DModel

    hidden = settings["text_hidden"]
    heads = max(1, hidden // 8)
    return SD3Transformer2DModel(
        sample_size=settings["sample_size"],
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=settings["text_layers"],
        attention_head_dim=8,
        num_attention_heads=heads,
        caption_projection_dim=8 * heads,
        joint_attention_dim=2 * hidden,  # T5's width, which holds both CLIP encoders' hidden states side by side
        pooled_projection_dim=2 * hidden,  # both CLIP projections, concatenated
        pos_embed_max_size=settings["sample_size"],
    )


def tiny_sd3(settings: dict, tokenizer_dir: str | os.PathLike):
    from diffusers import StableDiffusion3Pipeline
    from transformers import CLIPTokenizer

    seed, hidden = settings.get("seed", 0), settings["text_hidden"]
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)

    def clip(s):
        return tiny_text_encoder(s, "CLIPTextModelWithProjection", hidden_act="gelu", projection_dim=hidden)

    return StableDiffusion3Pipeline(
        transformer=seeded(seed, tiny_mmdit, settings),
        text_encoder=seeded(seed + 2, clip, settings),
        text_encoder_2=seeded(seed + 3, clip, settings),
        text_encoder_3=seeded(seed + 4, lambda s: tiny_t5(s, 2 * hidden), settings),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        tokenizer_3=tiny_t5_tokenizer(),
        **flow_parts(settings),
    )


def tiny_flux_transformer(settings: dict):
    """FLUX's transformer: double-stream blocks (image and text apart), then single-stream ones, over 2x2
    latent patches (16 channels x 4), with rotary position embeddings over three axes."""
    from diffusers import FluxTransformer2DModel

    hidden = settings["text_hidden"]
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=settings["text_layers"],
        num_single_layers=settings["text_layers"],
        attention_head_dim=16,
        num_attention_heads=max(1, hidden // 16),
        joint_attention_dim=hidden,  # T5's width
        pooled_projection_dim=hidden,  # CLIP's pooled output
        guidance_embeds=False,  # FLUX.1-schnell: timestep-distilled, no guidance input
        axes_dims_rope=(4, 4, 8),  # sums to the head size
    )


def tiny_flux(settings: dict, tokenizer_dir: str | os.PathLike):
    from diffusers import FluxPipeline
    from transformers import CLIPTokenizer

    seed = settings.get("seed", 0)
    return FluxPipeline(
        transformer=seeded(seed, tiny_flux_transformer, settings),
        text_encoder=seeded(seed + 2, lambda s: tiny_text_encoder(s, hidden_act="gelu"), settings),
        text_encoder_2=seeded(seed + 3, tiny_t5, settings),
        tokenizer=CLIPTokenizer.from_pretrained(tokenizer_dir),
        tokenizer_2=tiny_t5_tokenizer(),
        **flow_parts(settings),
    )


BUILDERS = {
    "sd2": tiny_sd2,
    "sd-turbo": tiny_sd2,
    "sdxl": tiny_sdxl,
    "sdxl-turbo": tiny_sdxl,
    "pixart-alpha": tiny_pixart,
    "sd3": tiny_sd3,
    "flux-schnell": tiny_flux,
}
