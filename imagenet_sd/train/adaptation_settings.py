"""The settings of an adaptation (imagenet_sd.train.adaptation), completed and checked without torch: the
workflow's planning (imagenet_sd.planning.adaptation) keys adaptations by them on the login node, where every
`snakemake` call reads the config, and torch would add seconds to each call."""

from __future__ import annotations

from imagenet_sd.train.lora import SettingError, lora_settings

DEFAULTS = {
    "vae_steps": 200,
    "vae_lr": 2e-3,
    "vae_kl_weight": 1e-4,
    "unet_steps": 1000,
    "unet_lr": 3e-3,
    "batch_size": 32,
    "caption_dropout": 0.1,
    "seed": 0,
    "save_every": 200,
}


# Settings whose null (or absence) is left out of the completed settings, so that the keys of adaptations
# written before they existed stay as they were: `lora` (imagenet_sd.train.lora) and `autocast`.
OPTIONAL = ("lora", "autocast")


def adaptation_settings(settings: dict) -> dict:
    """`settings` completed with DEFAULTS; an unknown key or a bad value is an error naming it. `lora` null:
    full fine-tuning; a mapping: a LoRA on the UNet, which keeps the base VAE (`vae_steps` is then 0, and any
    other value an error). `autocast` null: float32; "bfloat16": the UNet's forward pass under autocast."""
    known = sorted({*DEFAULTS, *OPTIONAL})
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ValueError(f"unknown adaptation setting(s) {unknown}; known: {known}")
    optional = {k: settings[k] for k in OPTIONAL if settings.get(k) is not None}
    given = {k: v for k, v in settings.items() if k not in OPTIONAL}
    if optional.get("autocast", "bfloat16") != "bfloat16":
        raise SettingError("autocast", f"must be null or 'bfloat16', got {optional['autocast']!r}")
    if "lora" not in optional:
        return {**DEFAULTS, **given, **optional}
    if given.get("vae_steps", 0) != 0:
        raise SettingError(
            "vae_steps",
            f"{given['vae_steps']!r} with `lora`: a LoRA trains the UNet alone and keeps the base VAE, whose "
            "latents the base UNet was trained on (leave vae_steps out, or set it to 0)",
        )
    return {**DEFAULTS, **given, **optional, "vae_steps": 0, "lora": lora_settings(optional["lora"])}
