"""A LoRA on a pipeline's UNet (peft, through diffusers' own integration): the adaptation's full-scale form.

At full scale (issue 22) adapting Stable Diffusion on k real images per class trains low-rank updates of the
UNet's attention projections, the base UNet frozen and SD's VAE kept (its latents are those the UNet was
trained on). Once trained, the update is fused into the UNet's weights, so the adapted folder is an ordinary
pipeline that the generate rule loads like any other; the LoRA weights alone are written beside it
(`pytorch_lora_weights.safetensors`, loadable with `pipe.load_lora_weights(folder)`).
"""

from __future__ import annotations

LORA_DEFAULTS = {
    "rank": 4,
    "alpha": None,  # null: equal to the rank, a scale alpha / rank of 1
    "target_modules": ["to_q", "to_k", "to_v", "to_out.0"],
    "dropout": 0.0,
}
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"


class SettingError(ValueError):
    """A bad value of one setting; `key` is its path within the adaptation's entry (e.g. `lora.rank`)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_lora(lora: dict) -> None:
    if not _positive_int(lora["rank"]):
        raise SettingError("lora.rank", f"must be an integer >= 1, got {lora['rank']!r}")
    alpha = lora["alpha"]
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or alpha <= 0:
        raise SettingError("lora.alpha", f"must be a number > 0 (or null: the rank), got {alpha!r}")
    modules = lora["target_modules"]
    if not isinstance(modules, list) or not modules or not all(isinstance(m, str) and m for m in modules):
        raise SettingError("lora.target_modules", f"must be a non-empty list of module names, got {modules!r}")
    dropout = lora["dropout"]
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise SettingError("lora.dropout", f"must be a number in [0, 1), got {dropout!r}")


def lora_settings(lora) -> dict:
    """`lora` completed with LORA_DEFAULTS (alpha null -> the rank) and checked; errors name the key."""
    if not isinstance(lora, dict):
        raise SettingError("lora", f"must be null or a mapping of {sorted(LORA_DEFAULTS)}, got {lora!r}")
    unknown = sorted(set(lora) - set(LORA_DEFAULTS))
    if unknown:
        raise SettingError("lora", f"unknown setting(s) {unknown}; known: {sorted(LORA_DEFAULTS)}")
    lora = {**LORA_DEFAULTS, **lora}
    if lora["alpha"] is None:
        lora["alpha"] = lora["rank"]
    _check_lora(lora)
    return lora


def add_lora(unet, lora: dict) -> None:
    """Freeze `unet` and add a trainable LoRA adapter on `lora["target_modules"]` (peft's LoraConfig through
    diffusers' add_adapter). Its initial weights come from torch's global generator, seeded by the caller."""
    from peft import LoraConfig

    unet.requires_grad_(False)
    config = LoraConfig(
        r=lora["rank"],
        lora_alpha=lora["alpha"],
        target_modules=list(lora["target_modules"]),
        lora_dropout=lora["dropout"],
        init_lora_weights=True,  # A random (kaiming), B zero: training starts from the base UNet exactly
    )
    unet.add_adapter(config)


def trainable_state(module) -> dict:
    """The parameters that train (a LoRA's alone): what a resume state must hold of a frozen base."""
    return {name: p.detach().clone() for name, p in module.named_parameters() if p.requires_grad}


def load_trainable_state(module, state: dict) -> None:
    result = module.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"the resume state holds weights the model lacks: {result.unexpected_keys[:5]}")
    missing = set(state) ^ {name for name, p in module.named_parameters() if p.requires_grad}
    if missing:
        raise ValueError(f"the resume state and the model's trainable weights differ: {sorted(missing)[:5]}")


def save_lora_and_fuse(pipe, out_dir) -> None:
    """Write the UNet's LoRA weights alone to `out_dir`/LORA_WEIGHTS (diffusers' format, with peft's config as
    metadata so that alpha survives), then fuse them into the UNet and remove the adapter: `pipe` is then an
    ordinary pipeline, saved by save_pretrained as any other."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    unet = pipe.unet
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    config = {k: sorted(v) if isinstance(v, set) else v for k, v in unet.peft_config["default"].to_dict().items()}
    StableDiffusionPipeline.save_lora_weights(
        out_dir, unet_lora_layers=layers, weight_name=LORA_WEIGHTS, save_function=_save_with_config(config)
    )
    unet.fuse_lora()
    unet.unload_lora()
    unet.requires_grad_(True)  # as from_pretrained leaves a model


def _save_with_config(config: dict):
    """A safetensors writer whose header holds peft's config alone, as diffusers' loader reads it: with a
    second metadata entry (diffusers' own writer adds "format") the entries' order, hence the file's bytes,
    would change from run to run."""
    import json

    from diffusers.loaders.lora_base import LORA_ADAPTER_METADATA_KEY
    from safetensors.torch import save_file

    packed = {f"unet.{k}": v for k, v in config.items()}  # as diffusers packs a pipeline's LoRA metadata
    metadata = {LORA_ADAPTER_METADATA_KEY: json.dumps(packed, indent=2, sort_keys=True)}
    return lambda weights, filename: save_file(weights, filename, metadata=metadata)
