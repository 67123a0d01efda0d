"""Text embeddings of a generate job, computed once per distinct prompt (see PromptEncoder)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from imagenet_sd.generate import guidance
from imagenet_sd.generate.families import FAMILIES

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline


# What a pipeline's encode_prompt returns that its call takes back, by the positions of encode_prompt's
# outputs: (keyword for a prompt, keyword for the negative prompt). SD3 returns as SDXL does (its own dict:
# no `force_zeros_for_empty_prompt`); FLUX (hidden states, pooled, text ids) samples without guidance.
SD = {0: ("prompt_embeds", "negative_prompt_embeds")}
SDXL = {**SD, 2: ("pooled_prompt_embeds", "negative_pooled_prompt_embeds")}
PIXART = {**SD, 1: ("prompt_attention_mask", "negative_prompt_attention_mask")}
SD3 = dict(SDXL)
FLUX = {**SD, 1: ("pooled_prompt_embeds", "negative_pooled_prompt_embeds")}
CACHED = {
    "StableDiffusionPipeline": SD,
    "StableDiffusionXLPipeline": SDXL,
    "PixArtAlphaPipeline": PIXART,
    "StableDiffusion3Pipeline": SD3,
    "FluxPipeline": FLUX,
}
# encode_prompt's options, matching the job's call (families.CALL_OPTIONS): one prompt's embeddings, PixArt's
# captions uncleaned, FLUX's T5 at 256 tokens (FLUX's encode_prompt has no guidance argument), SD3's second
# and third prompts the first (None, as its call makes them).
ENCODE_OPTIONS = {
    "PixArtAlphaPipeline": {"do_classifier_free_guidance": False, "clean_caption": False},
    "FluxPipeline": {"max_sequence_length": FAMILIES["flux-schnell"].t5_tokens},
    "StableDiffusion3Pipeline": {"do_classifier_free_guidance": False, "prompt_2": None, "prompt_3": None},
}


class PromptEncoder:
    """The text encoder run once per distinct prompt of a job, not once per image: a `c, d_c` class has one
    prompt for all its images, and the unconditional (negative) prompt is the same for every image. A batch's
    embeddings are the cached rows stacked, as the pipeline would stack them itself (its encode_prompt
    tokenizes and encodes the negative prompt exactly as a prompt). Stable Diffusion 1.x/2.x pipelines cache
    the hidden states, SDXL ones the hidden states and the pooled embedding of its second encoder (an empty
    negative prompt is zeros there, as SDXL's `force_zeros_for_empty_prompt` makes it), PixArt-alpha ones
    T5's hidden states and attention mask (its captions uncleaned, as the job calls it), SD3 ones the joint
    CLIP + T5 hidden states and both CLIPs' pooled embeddings, FLUX ones T5's hidden states and CLIP's pooled
    embedding. Other pipelines, and `cache=False` (diffusers' stock call, for benchmarks), get the prompt
    strings."""

    def __init__(self, pipe: DiffusionPipeline, settings: dict, cache: bool = True):
        self.pipe, self.negative = pipe, settings.get("negative_prompt") or None
        self.guided = guidance.guided(settings)
        self.outputs = CACHED.get(type(pipe).__name__) if cache else None
        self.cached = self.outputs is not None
        self.sdxl = self.outputs is SDXL
        self.embeddings: dict[str, tuple[torch.Tensor, ...]] = {}

    def embedding(self, prompt: str) -> tuple[torch.Tensor, ...]:
        """The cached outputs of one prompt, in the order of `self.outputs` (SD: hidden states; SDXL: hidden
        states, pooled; PixArt: hidden states, attention mask)."""
        if prompt not in self.embeddings:
            with torch.no_grad():
                out = self.pipe.encode_prompt(
                    prompt,
                    device=self.pipe.device,
                    num_images_per_prompt=1,
                    **ENCODE_OPTIONS.get(type(self.pipe).__name__, {"do_classifier_free_guidance": False}),
                )
            self.embeddings[prompt] = tuple(out[i] for i in self.outputs)
        return self.embeddings[prompt]

    def unconditional(self) -> tuple[torch.Tensor, ...]:
        if self.sdxl and self.negative is None and self.pipe.config.force_zeros_for_empty_prompt:
            return tuple(torch.zeros_like(e) for e in self.embedding(""))
        return self.embedding(self.negative or "")

    def __call__(self, prompts: list[str]) -> dict:
        """The pipeline's keyword arguments for a batch of `prompts`."""
        if not self.cached:
            # No negative prompt: the pipeline's own default (None or "", both unconditional).
            return {"prompt": prompts, **({"negative_prompt": [self.negative] * len(prompts)} if self.negative else {})}
        rows = [self.embedding(p) for p in prompts]
        names = list(self.outputs.values())
        kwargs = {name: torch.cat(parts) for (name, _), parts in zip(names, zip(*rows))}
        if self.guided:
            kwargs["negative_prompt"] = None  # not PixArt's default "" beside the embeddings (refused)
            for (_, name), e in zip(names, self.unconditional()):
                kwargs[name] = e.expand(len(prompts), *e.shape[1:])
        return kwargs
