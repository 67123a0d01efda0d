"""Any diffusers text-to-image pipeline: fetching its weights from the hub (on the login node), and loading it
from a local folder or a hub id with the runtime settings that make it fast.

Runtime settings (attention kernel, channels_last, fused QKV projections, torch.compile) change speed, not
images beyond float rounding: they are never part of an output's key.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from imagenet_sd.runtime import pick_device

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline, SchedulerMixin

log = logging.getLogger("imagenet_sd.generate.text2image")

# The samplers a generator's `scheduler` names (the schema's list): each is diffusers' class <name>Scheduler.
SCHEDULERS = (
    "DDIM",
    "PNDM",
    "DPMSolverMultistep",
    "EulerDiscrete",
    "EulerAncestralDiscrete",
    "LMSDiscrete",
    "UniPCMultistep",
)
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
PREFETCH_HINT = (
    "prefetch them on a machine with internet (the login node), where the workflow's local rule "
    "`prefetch_weights` does it: `snakemake --cores 1 resources/hub/{folder}/{revision}/model_index.json` "
    '(or any workflow target: it runs locally before the GPU jobs); by hand: `python -c "from '
    "imagenet_sd.generate.text2image import prefetch; prefetch('{model}', '{revision}', 'DEST')\"`"
)


class WeightsMissing(RuntimeError):
    """The hub is offline and the model's weights are not on disk."""


def scheduler_from_config(name: str, config: dict) -> SchedulerMixin:
    """The diffusers scheduler `name` (one of SCHEDULERS) with `config`'s noise schedule."""
    import diffusers

    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; known: {', '.join(SCHEDULERS)}")
    return getattr(diffusers, f"{name}Scheduler").from_config(config)


# ---- weights on disk ------------------------------------------------------------------------------
def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def check_weights_available(model: str, revision: str | None) -> None:
    """Fail at once, with the way out, when an offline job would otherwise wait on or miss the hub."""
    if os.path.isdir(model) or model.startswith(("resources/", "/", ".")):
        if not os.path.isfile(os.path.join(model, "model_index.json")):
            raise WeightsMissing(
                f"{model} has no model_index.json: no pipeline is there yet. The workflow's local rules make it "
                f"(prefetch_weights for hub weights, tiny_pipeline for tiny pipelines): on the login node, run "
                f"`snakemake --cores 1 {os.path.join(model, 'model_index.json')}`"
            )
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
            + prefetch_hint(model, revision)
        ) from error


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
    log.info("%s (revision %s) downloaded into %s", model, revision or "main", dest)
    return str(dest)


# ---- loading ---------------------------------------------------------------------------------------
def pipeline_components(model: str, revision: str | None) -> set[str]:
    from diffusers import DiffusionPipeline

    return {k for k in DiffusionPipeline.load_config(model, revision=revision) if not k.startswith("_")}


def from_pretrained(
    model: str, revision: str | None, variant: str | None, dtype: torch.dtype, safety_checker: bool
) -> DiffusionPipeline:
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


def denoiser(pipe: DiffusionPipeline) -> torch.nn.Module | None:
    """The network called at every step: `unet` (SD, SDXL) or `transformer` (SD3, Flux, PixArt)."""
    return getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)


def apply_attention(pipe: DiffusionPipeline, attention: str) -> None:
    if attention != "sdpa":
        return
    from diffusers.models.attention_processor import AttnProcessor2_0

    for module in (getattr(pipe, "unet", None), getattr(pipe, "vae", None)):
        if module is not None and hasattr(module, "set_attn_processor"):
            module.set_attn_processor(AttnProcessor2_0())


def apply_channels_last(pipe: DiffusionPipeline) -> None:
    for module in (denoiser(pipe), getattr(pipe, "vae", None)):
        if module is not None:
            module.to(memory_format=torch.channels_last)


def apply_fuse_qkv(pipe: DiffusionPipeline) -> None:
    for module in (denoiser(pipe), getattr(pipe, "vae", None)):
        if module is not None and hasattr(module, "fuse_qkv_projections"):
            module.fuse_qkv_projections()


def apply_compile(pipe: DiffusionPipeline, cache_dir: str) -> None:
    """torch.compile the denoiser; Inductor's caches persist in `cache_dir`, so later jobs skip most of it."""
    cache = os.path.abspath(cache_dir)
    os.makedirs(cache, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", cache)
    os.environ.setdefault("TRITON_CACHE_DIR", os.path.join(cache, "triton"))
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    name = "unet" if getattr(pipe, "unet", None) is not None else "transformer"
    setattr(pipe, name, torch.compile(getattr(pipe, name), fullgraph=False, dynamic=False))


def make_fast(
    pipe: DiffusionPipeline,
    attention: str = "sdpa",
    channels_last: bool = False,
    fuse_qkv: bool = False,
    compile: bool = False,
    compile_cache: str = "resources/torch-compile-cache",
) -> None:
    """The output-preserving speed settings a generator entry turns on, in the order they must be applied
    (fusing replaces the attention processors the kernel choice set; compile sees the final layout)."""
    apply_attention(pipe, attention)
    if fuse_qkv:
        apply_fuse_qkv(pipe)
    if channels_last:
        apply_channels_last(pipe)
    if compile:
        apply_compile(pipe, compile_cache)


def load_pipeline(
    model: str,
    revision: str | None = None,
    variant: str | None = None,
    dtype: str = "float16",
    device: str = "auto",
    scheduler: str = "default",
    attention: str = "sdpa",
    channels_last: bool = False,
    fuse_qkv: bool = False,
    compile: bool = False,
    compile_cache: str = "resources/torch-compile-cache",
    safety_checker: bool = False,
) -> DiffusionPipeline:
    """Any diffusers text-to-image pipeline, from a local folder or a hub id, on `device`, ready to call."""
    check_weights_available(model, revision)
    revision = None if os.path.isdir(model) else revision  # a local folder is one revision already
    pipe = from_pretrained(model, revision, variant, DTYPES[dtype], safety_checker)
    if scheduler != "default":
        pipe.scheduler = scheduler_from_config(scheduler, pipe.scheduler.config)
    pipe.to(pick_device(device))
    pipe.set_progress_bar_config(disable=True)
    make_fast(pipe, attention, channels_last, fuse_qkv, compile, compile_cache)
    log.info(
        "loaded %s (revision %s, %s) on %s: %s, scheduler %s",
        model,
        revision,
        dtype,
        pipe.device,
        type(pipe).__name__,
        type(pipe.scheduler).__name__,
    )
    return pipe
