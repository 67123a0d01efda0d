"""The safety-checker policy of a generator (`generators.<name>.safety_checker`, docs/generation.md).

SD 1.x and 2.x pipelines ship a StableDiffusionSafetyChecker (a CLIP vision tower and concept thresholds).
Inside the pipeline call it blanks the images it flags; here it runs beside the call, on the rendered pixels,
so that the policy decides: `flag` keeps the image and records the verdict in its JSON, `regenerate` re-draws
it with the next seed like a black image (the class keeps its exact count). `off` (false) does not load it;
`true`, the setting from before the policy, leaves it inside the pipeline (blanked images, re-drawn as black).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from imagenet_sd.generate.chunks import ImageTask, Rendered

POLICIES = {False: "off", "off": "off", True: "pipeline", "flag": "flag", "regenerate": "regenerate"}


def policy(settings: dict) -> str:
    """off, pipeline (the legacy `true`), flag or regenerate."""
    return POLICIES[settings.get("safety_checker", False)]


class SafetyCheck:
    """The pipeline folder's own safety checker and feature extractor, run on uint8 (B, H, W, 3) pixels."""

    def __init__(self, model_dir: str, revision: str | None, device, generator: str):
        from diffusers import DiffusionPipeline
        from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
        from transformers import CLIPImageProcessor

        revision = None if os.path.isdir(model_dir) else revision  # a local folder is one revision already
        components = DiffusionPipeline.load_config(model_dir, revision=revision)
        if not all((components.get(k) or [None])[0] for k in ("safety_checker", "feature_extractor")):
            raise ValueError(
                f"generators.{generator}.safety_checker: {model_dir} ships no safety checker and feature "
                "extractor (model_index.json), so its images cannot be checked; set it to false"
            )
        self.device = device
        checker = StableDiffusionSafetyChecker.from_pretrained(model_dir, subfolder="safety_checker", revision=revision)
        self.checker = checker.to(device).eval()
        self.extractor = CLIPImageProcessor.from_pretrained(model_dir, subfolder="feature_extractor", revision=revision)

    def __call__(self, pixels: np.ndarray) -> list[bool]:
        from PIL import Image

        clip_input = self.extractor([Image.fromarray(p) for p in pixels], return_tensors="pt").pixel_values
        clip_input = clip_input.to(self.device, self.checker.dtype)
        _, flagged = self.checker(clip_input=clip_input, images=pixels.copy())  # it blanks its copy only
        return [bool(f) for f in flagged]


def failure_kinds(images: torch.Tensor, pixels: np.ndarray) -> list[str | None]:
    """'nan' when the float image has a NaN, 'black' when every stored value is 0, else None."""
    nan = torch.isnan(images).flatten(1).any(1).tolist()
    black = (pixels.reshape(len(pixels), -1).max(1) == 0).tolist()
    return ["nan" if n else "black" if b else None for n, b in zip(nan, black)]


def judge(tasks: list[ImageTask], images, pixels: np.ndarray, check: SafetyCheck | None, how: str) -> list[Rendered]:
    """Rendered images with their failure (black, NaN, or under `regenerate` a flagged image: nsfw) and, when
    the checker runs, its verdict (`nsfw`, recorded in the image's JSON)."""
    failures = failure_kinds(images, pixels)
    if check is None:
        return [Rendered(t, p, f) for t, p, f in zip(tasks, pixels, failures)]
    flagged = check(pixels)
    if how == "regenerate":
        failures = [f or ("nsfw" if n else None) for f, n in zip(failures, flagged)]
    return [Rendered(t, p, f, nsfw=n) for t, p, f, n in zip(tasks, pixels, failures, flagged)]
