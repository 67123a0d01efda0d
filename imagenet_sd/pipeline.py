"""Text-to-image pipelines: CLIP's real tokenizer, the demo's tiny random pipeline, and loading any diffusers
pipeline (local folder or hub id) with the runtime settings that make it fast.

The tiny pipeline has Stable Diffusion's component classes and is saved with `save_pretrained`, so the demo
loads it through exactly the `from_pretrained` path that loads real weights on a cluster.
"""
from __future__ import annotations

import gzip
import json
import logging
import math
import os
import shutil
from pathlib import Path

import torch

from imagenet_sd.models import pick_device

log = logging.getLogger("imagenet_sd.pipeline")

CLIP_CONTEXT = 77  # positions of CLIP's text encoder, start and end tokens included
CLIP_MERGES = 49152 - 256 - 2  # merges CLIP uses from its BPE file: 48,894
CLIP_SPECIAL = ("<|startoftext|>", "<|endoftext|>")  # ids 49406 and 49407, as in SD v1.x's tokenizer
CLIP_VOCAB_SIZE = 2 * 256 + CLIP_MERGES + len(CLIP_SPECIAL)  # 49,408

# Scheduler of SD v1.x (its scheduler_config.json), given to whichever scheduler class the config names.
SD_SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1, "skip_prk_steps": True,
}
SCHEDULERS = {
    "DDIM": "DDIMScheduler", "PNDM": "PNDMScheduler", "DPMSolverMultistep": "DPMSolverMultistepScheduler",
    "EulerDiscrete": "EulerDiscreteScheduler", "EulerAncestralDiscrete": "EulerAncestralDiscreteScheduler",
    "LMSDiscrete": "LMSDiscreteScheduler", "UniPCMultistep": "UniPCMultistepScheduler",
}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
PREFETCH_HINT = ("prefetch them on a machine with internet (the login node), where the workflow's local rule "
                 "`prefetch_weights` does it: `snakemake --cores 1 resources/hub/{folder}/{revision}/model_index.json` "
                 "(or any workflow target: it runs locally before the GPU jobs); by hand: `python -c \"from "
                 "imagenet_sd.pipeline import prefetch; prefetch('{model}', '{revision}', 'DEST')\"`")


class WeightsMissing(RuntimeError):
    """The hub is offline and the model's weights are not on disk."""


# ---- CLIP tokenizer -------------------------------------------------------------------------------
def clip_bpe_merges() -> list[str]:
    """The merges CLIP uses, from the BPE file open_clip ships (its first line is a header)."""
    from open_clip.tokenizer import default_bpe
    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    return lines[1:1 + CLIP_MERGES]


def clip_vocabulary(merges: list[str]) -> list[str]:
    """CLIP's vocabulary in id order: byte symbols, the same with `</w>`, merged pairs, the special tokens."""
    from open_clip.tokenizer import bytes_to_unicode
    symbols = list(bytes_to_unicode().values())
    return symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges] + list(CLIP_SPECIAL)


def build_clip_tokenizer(dest: str | os.PathLike) -> Path:
    """Write CLIP's tokenizer (vocab.json, merges.txt, configs) for transformers' CLIPTokenizer into `dest`."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    merges = clip_bpe_merges()
    vocab = clip_vocabulary(merges)
    assert len(vocab) == CLIP_VOCAB_SIZE, len(vocab)
    start, end = CLIP_SPECIAL
    files = {
        "vocab.json": json.dumps({token: i for i, token in enumerate(vocab)}, ensure_ascii=False),
        "merges.txt": "#version: 0.2\n" + "\n".join(merges) + "\n",
        "special_tokens_map.json": json.dumps(
            {"bos_token": start, "eos_token": end, "pad_token": end, "unk_token": end}, indent=1, sort_keys=True),
        "tokenizer_config.json": json.dumps(
            {"tokenizer_class": "CLIPTokenizer", "model_max_length": CLIP_CONTEXT, "do_lower_case": True,
             "bos_token": start, "eos_token": end, "pad_token": end, "unk_token": end}, indent=1, sort_keys=True),
    }
    for name, text in files.items():
        (dest / name).write_text(text, encoding="utf-8")
    return dest


# ---- the demo's tiny pipeline ---------------------------------------------------------------------
def group_count(channels: list[int]) -> int:
    """GroupNorm groups that divide every block's channels (SD uses 32)."""
    return math.gcd(32, *channels)


def tiny_unet(settings: dict):
    from diffusers import UNet2DConditionModel
    channels = list(settings["unet_channels"])
    levels = len(channels)
    # SD v1.x's layout: cross-attention in every level but the deepest, and in the mid block.
    down = ["CrossAttnDownBlock2D"] * (levels - 1) + ["DownBlock2D"]
    up = ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (levels - 1)
    return UNet2DConditionModel(
        sample_size=settings["sample_size"], in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=channels, down_block_types=down, up_block_types=up,
        cross_attention_dim=settings["text_hidden"], attention_head_dim=max(1, channels[0] // 8),
        norm_num_groups=group_count(channels))


def tiny_vae(settings: dict):
    from diffusers import AutoencoderKL
    channels = list(settings["vae_channels"])
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, block_out_channels=channels,
        down_block_types=["DownEncoderBlock2D"] * len(channels), up_block_types=["UpDecoderBlock2D"] * len(channels),
        norm_num_groups=group_count(channels), sample_size=settings["sample_size"] * 2 ** (len(channels) - 1))


def tiny_text_encoder(settings: dict):
    from transformers import CLIPTextConfig, CLIPTextModel
    hidden = settings["text_hidden"]
    config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE, max_position_embeddings=CLIP_CONTEXT, hidden_size=hidden,
        intermediate_size=4 * hidden, num_hidden_layers=settings["text_layers"],
        num_attention_heads=max(1, hidden // 8), bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    return CLIPTextModel(config)


def scheduler_from_config(name: str, config: dict):
    import diffusers
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; known: {', '.join(SCHEDULERS)}")
    return getattr(diffusers, SCHEDULERS[name]).from_config(config)


def seeded(seed: int, build, settings: dict):
    """Build one component right after seeding, so each component's weights depend on the seed alone."""
    torch.manual_seed(seed)
    return build(settings)


def build_tiny_pipeline(settings: dict, tokenizer_dir: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """A randomly initialised StableDiffusionPipeline sized by a `pipelines` config entry, saved into `dest`."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTokenizer
    seed = settings.get("seed", 0)
    pipe = StableDiffusionPipeline(
        unet=seeded(seed, tiny_unet, settings),
        vae=seeded(seed + 1, tiny_vae, settings),
        text_encoder=seeded(seed + 2, tiny_text_encoder, settings),
        tokenizer=CLIPTokenizer.from_pretrained(tokenizer_dir),
        scheduler=scheduler_from_config(settings.get("scheduler", "DDIM"), SD_SCHEDULER_CONFIG),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(dest, safe_serialization=True)
    return Path(dest)


# ---- loading any pipeline -------------------------------------------------------------------------
def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def check_weights_available(model: str, revision: str | None) -> None:
    """Fail at once, with the way out, when an offline job would otherwise wait on or miss the hub."""
    if os.path.isdir(model) or model.startswith(("resources/", "/", ".")):
        if not os.path.isfile(os.path.join(model, "model_index.json")):
            raise WeightsMissing(
                f"{model} has no model_index.json: no pipeline is there yet. The workflow's local rules make it "
                f"(prefetch_weights for hub weights, generator for tiny pipelines): on the login node, run "
                f"`snakemake --cores 1 {os.path.join(model, 'model_index.json')}`")
        return
    if not hub_offline():
        return
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    try:
        snapshot_download(model, revision=revision, local_files_only=True)
    except (LocalEntryNotFoundError, OSError) as error:
        raise WeightsMissing(
            f"weights of {model!r} (revision {revision or 'main'}) are not in the local Hugging Face cache "
            f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}) and the hub is offline (HF_HUB_OFFLINE=1): "
            + prefetch_hint(model, revision)) from error


def prefetch_hint(model: str, revision: str | None) -> str:
    return PREFETCH_HINT.format(model=model, folder=model.replace("/", "--"), revision=revision or "main")


def prefetch(model: str, revision: str | None, dest: str | os.PathLike | None = None) -> str:
    """Download a hub pipeline's files (into `dest`, or the HF cache when None); returns the local folder."""
    from huggingface_hub import HfApi, snapshot_download
    # Only what from_pretrained reads: configs, tokenizers and the weights, as safetensors when the repo has
    # them (not the .bin twins, not the single-file .ckpt checkpoints SD repos also hold).
    files = HfApi().list_repo_files(model, revision=revision)
    weights = "*.safetensors" if any(f.endswith(".safetensors") for f in files) else "*.bin"
    patterns = ["*.json", "*.txt", "*.model", weights]
    if dest is None:
        return snapshot_download(model, revision=revision, allow_patterns=patterns)
    # Download beside the destination and rename when complete: model_index.json arrives first, so a killed
    # download must not leave a folder that looks complete. A rerun resumes the partial folder.
    dest = Path(dest)
    partial = dest.with_name(dest.name + ".partial")
    snapshot_download(model, revision=revision, local_dir=partial, allow_patterns=patterns)
    if dest.exists():
        shutil.rmtree(dest)
    partial.rename(dest)
    return str(dest)


def pipeline_components(model: str, revision: str | None) -> set[str]:
    from diffusers import DiffusionPipeline
    return {k for k in DiffusionPipeline.load_config(model, revision=revision) if not k.startswith("_")}


def from_pretrained(model: str, revision: str | None, variant: str | None, dtype: torch.dtype,
                    safety_checker: bool):
    """The pipeline class model_index.json declares; an image-to-image or inpainting one is turned into its
    text-to-image sibling with the same components (AutoPipelineForText2Image.from_pipe, no reload)."""
    from diffusers import AutoPipelineForText2Image, DiffusionPipeline
    kwargs = {"revision": revision, "variant": variant, "dtype": dtype}
    if not safety_checker and "safety_checker" in pipeline_components(model, revision):
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    pipe = DiffusionPipeline.from_pretrained(model, **kwargs)
    if any(word in type(pipe).__name__ for word in ("Img2Img", "Inpaint")):
        pipe = AutoPipelineForText2Image.from_pipe(pipe)
    return pipe


def denoiser(pipe):
    """The network called at every step: `unet` (SD, SDXL) or `transformer` (SD3, Flux, PixArt)."""
    return getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)


def apply_attention(pipe, attention: str) -> None:
    if attention != "sdpa":
        return
    from diffusers.models.attention_processor import AttnProcessor2_0
    for module in (getattr(pipe, "unet", None), getattr(pipe, "vae", None)):
        if module is not None and hasattr(module, "set_attn_processor"):
            module.set_attn_processor(AttnProcessor2_0())


def apply_channels_last(pipe) -> None:
    for module in (denoiser(pipe), getattr(pipe, "vae", None)):
        if module is not None:
            module.to(memory_format=torch.channels_last)


def apply_fuse_qkv(pipe) -> None:
    for module in (denoiser(pipe), getattr(pipe, "vae", None)):
        if module is not None and hasattr(module, "fuse_qkv_projections"):
            module.fuse_qkv_projections()


def apply_compile(pipe, cache_dir: str) -> None:
    """torch.compile the denoiser; Inductor's caches persist in `cache_dir`, so later jobs skip most of it."""
    cache = os.path.abspath(cache_dir)
    os.makedirs(cache, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", cache)
    os.environ.setdefault("TRITON_CACHE_DIR", os.path.join(cache, "triton"))
    import torch._inductor.config as inductor_config
    inductor_config.fx_graph_cache = True
    name = "unet" if getattr(pipe, "unet", None) is not None else "transformer"
    setattr(pipe, name, torch.compile(getattr(pipe, name), fullgraph=False, dynamic=False))


def load_pipeline(model: str, revision: str | None = None, variant: str | None = None, dtype: str = "float16",
                  device: str = "auto", scheduler: str = "default", attention: str = "sdpa",
                  channels_last: bool = False, fuse_qkv: bool = False, compile: bool = False,
                  compile_cache: str = "resources/torch-compile-cache", safety_checker: bool = False):
    """Any diffusers text-to-image pipeline, from a local folder or a hub id, on `device`, ready to call."""
    check_weights_available(model, revision)
    revision = None if os.path.isdir(model) else revision  # a local folder is one revision already
    pipe = from_pretrained(model, revision, variant, DTYPES[dtype], safety_checker)
    if scheduler != "default":
        pipe.scheduler = scheduler_from_config(scheduler, pipe.scheduler.config)
    pipe.to(pick_device(device))
    pipe.set_progress_bar_config(disable=True)
    apply_attention(pipe, attention)
    if fuse_qkv:
        apply_fuse_qkv(pipe)
    if channels_last:
        apply_channels_last(pipe)
    if compile:
        apply_compile(pipe, compile_cache)
    log.info("loaded %s (revision %s, %s) on %s: %s, scheduler %s", model, revision, dtype, pipe.device,
             type(pipe).__name__, type(pipe.scheduler).__name__)
    return pipe
