"""Generator families: what each kind of text-to-image model can do, how it is recognised, and the config
checks that refuse what it cannot do before any job runs.

A family's architecture is detected from the pipeline folder itself (model_index.json's `_class_name`, and
for Stable Diffusion the text encoder's activation: OpenCLIP's `gelu` is SD 2.x, CLIP's `quick_gelu` SD 1.x);
every family loads through the same `from_pretrained` path. What an architecture cannot show is whether its
weights are guidance-distilled (SD-Turbo is SD 2.1's architecture): the config says it, through a tiny
pipeline's `family`, the generator's `family`, or a known hub id (HUB_FAMILIES); the generate job checks the
declared family against the folder's architecture (check_architecture) before it loads.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from imagenet_sd.config import ConfigError
from imagenet_sd.generate import guidance


@dataclass(frozen=True)
class Family:
    name: str
    pipeline: str  # diffusers class model_index.json names
    architecture: str  # what detect_architecture finds in a folder of this family
    distilled: bool = False  # guidance-distilled: no classifier-free guidance, no negative prompt
    max_steps: int | None = None
    text_tokens: int = 77  # prompt token limit its recipe counts to (the CLIP encoders' 77; PixArt's T5: 120)
    t5_tokens: int | None = None  # tokens its T5 encoder reads (padded to), if it has one
    flow_matching: bool = False  # a flow-matching sampler of its own: no other `scheduler`


FAMILIES = {
    f.name: f
    for f in (
        Family("sd1", "StableDiffusionPipeline", "sd1"),
        Family("sd2", "StableDiffusionPipeline", "sd2"),
        Family("sd-turbo", "StableDiffusionPipeline", "sd2", distilled=True, max_steps=4),
        Family("sdxl", "StableDiffusionXLPipeline", "sdxl"),
        Family("sdxl-turbo", "StableDiffusionXLPipeline", "sdxl", distilled=True, max_steps=4),
        Family("pixart-alpha", "PixArtAlphaPipeline", "pixart", text_tokens=120, t5_tokens=120),
        Family("sd3", "StableDiffusion3Pipeline", "sd3", t5_tokens=256, flow_matching=True),
        Family("flux-schnell", "FluxPipeline", "flux", distilled=True, max_steps=4, t5_tokens=256, flow_matching=True),
    )
}
# Hub ids whose family is known, so their generators are checked without a `family` key.
HUB_FAMILIES = {
    "CompVis/stable-diffusion-v1-4": "sd1",
    "runwayml/stable-diffusion-v1-5": "sd1",
    "stable-diffusion-v1-5/stable-diffusion-v1-5": "sd1",
    "stabilityai/stable-diffusion-2-1": "sd2",
    "stabilityai/stable-diffusion-2-1-base": "sd2",
    "stabilityai/stable-diffusion-2-base": "sd2",
    "stabilityai/stable-diffusion-xl-base-1.0": "sdxl",
    "stabilityai/sd-turbo": "sd-turbo",
    "stabilityai/sdxl-turbo": "sdxl-turbo",
    "PixArt-alpha/PixArt-XL-2-512x512": "pixart-alpha",
    "PixArt-alpha/PixArt-XL-2-1024-MS": "pixart-alpha",
    "stabilityai/stable-diffusion-3-medium-diffusers": "sd3",
    "stabilityai/stable-diffusion-3.5-medium": "sd3",
    "stabilityai/stable-diffusion-3.5-large": "sd3",
    "black-forest-labs/FLUX.1-schnell": "flux-schnell",
}
# Call arguments a family's pipeline needs beside the common ones. PixArt: no resolution binning (it renders
# at the nearest trained aspect ratio and resizes; at the trained square sizes it changes nothing, and a
# tiny model has no bins) and no caption cleaning (it needs bs4 and ftfy; the prompts are plain text).
# FLUX.1-schnell: its T5 reads 256 tokens (its model card's setting; the pipeline's default 512 is FLUX.1-dev's).
CALL_OPTIONS = {
    "PixArtAlphaPipeline": {"use_resolution_binning": False, "clean_caption": False},
    "FluxPipeline": {"max_sequence_length": FAMILIES["flux-schnell"].t5_tokens},
}


def declared_family(config: dict, generator: str, built: str | None) -> Family | None:
    """The family the config gives a generator: its own `family`, its tiny pipeline's, or its hub id's."""
    g = config["generators"][generator]
    name = g.get("family") or (config["pipelines"][built].get("family", "sd1") if built else None)
    name = name or HUB_FAMILIES.get(g["model"])
    return FAMILIES[name] if name else None


def check_generator(name: str, g: dict, family: Family | None) -> None:
    """Refuse, naming the key, what the generator's family cannot do."""
    if family is None:
        return
    where = f"generators.{name}"
    if family.flow_matching and g.get("scheduler", "default") != "default":
        raise ConfigError(
            f"{where}.scheduler: {g['scheduler']}, but {family.name} samples by flow matching with its own "
            f"scheduler (FlowMatchEulerDiscrete): keep `scheduler: default`"
        )
    if not family.distilled:
        return
    if guidance.guided(g):
        raise ConfigError(
            f"{where}.guidance_scale: {g['guidance_scale']} > 1, but {family.name} is guidance-distilled "
            f"(trained to sample without classifier-free guidance): set it to 0 (or 1)"
        )
    if g.get("negative_prompt"):
        raise ConfigError(
            f"{where}.negative_prompt: {family.name} runs without guidance, so a negative prompt is unused"
        )
    if family.max_steps and g.get("steps", 1) > family.max_steps:
        raise ConfigError(f"{where}.steps: {g['steps']}; {family.name} is distilled for 1-{family.max_steps} steps")


# model_index.json's class name (its start: img2img and inpainting siblings too) -> architecture.
CLASS_ARCHITECTURES = (
    ("StableDiffusionXL", "sdxl"),
    ("StableDiffusion3", "sd3"),
    ("PixArtAlpha", "pixart"),
    ("Flux", "flux"),
)


def detect_architecture(model_dir: str | os.PathLike) -> str | None:
    """`sd1`, `sd2`, `sdxl`, `pixart`, `sd3` or `flux` from a pipeline folder's configs; None for another class."""
    with open(os.path.join(model_dir, "model_index.json")) as f:
        index = json.load(f)
    kind = index.get("_class_name", "")
    found = next((arch for prefix, arch in CLASS_ARCHITECTURES if kind.startswith(prefix)), None)
    if found or not kind.startswith("StableDiffusion"):
        return found
    with open(os.path.join(model_dir, "text_encoder", "config.json")) as f:
        act = json.load(f).get("hidden_act")
    return "sd1" if act == "quick_gelu" else "sd2"


def check_architecture(model_dir: str | os.PathLike, generator: str, family: str | None) -> None:
    """At job time: the pipeline folder must have the architecture of the family the config declares (the
    config checks ran against that family), e.g. not SD 2.x weights under a generator declared `sdxl-turbo`."""
    if family is None or not os.path.isfile(os.path.join(model_dir, "model_index.json")):
        return
    found, wanted = detect_architecture(model_dir), FAMILIES[family].architecture
    if found != wanted:
        theirs = " or ".join(f.name for f in FAMILIES.values() if f.architecture == found)
        raise ConfigError(
            f"generator {generator} is declared family {family} ({FAMILIES[family].pipeline}), but its "
            f"pipeline {model_dir} has the architecture of {f'family {theirs}' if theirs else 'no known family'}: "
            f"fix its `family` (or its pipeline's, or its model)"
        )


def pipeline_family(pipe) -> Family | None:
    return next((f for f in FAMILIES.values() if f.pipeline == type(pipe).__name__), None)


def t5_tokens(pipe) -> int | None:
    """Tokens a pipeline's T5 encoder reads per prompt (padded to its `max_sequence_length`); None: no T5."""
    family = pipeline_family(pipe)
    return family.t5_tokens if family else None


def call_options(pipe) -> dict:
    return CALL_OPTIONS.get(type(pipe).__name__, {})


def check_generators(config: dict, built_pipeline) -> None:
    """Every generator against its declared family; `built_pipeline(name)` names its tiny pipeline, if any.
    A clone's recipe must count prompt tokens to its generator's limit (CLIP reads 77, PixArt's T5 120): the
    prompt table reports truncation, and `overflow: shorten` cuts definitions, against `max_tokens`."""
    families = {name: declared_family(config, name, built_pipeline(name)) for name in config.get("generators", {})}
    for name, g in config.get("generators", {}).items():
        check_generator(name, g, families[name])
    for name, c in config.get("clones", {}).items():
        family, recipe = families.get(c.get("generator")), config.get("recipes", {}).get(c.get("recipe"))
        if family and recipe and recipe.get("max_tokens", 77) != family.text_tokens:
            raise ConfigError(
                f"recipes.{c['recipe']}.max_tokens: {recipe.get('max_tokens', 77)}, but clone {name}'s generator "
                f"{c['generator']} ({family.name}) reads {family.text_tokens} tokens: set max_tokens to "
                f"{family.text_tokens} and `tokenizer` to its pipeline's tokenizer folder, in a recipe of its own"
            )
