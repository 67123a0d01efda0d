"""Classifier-free guidance of a generator: one scale, or a mixture drawn per image.

`guidance_scale` is a number (every image at that scale, as always) or a list of scales: each image then
gets one of them, drawn from the image's own first-attempt seed. The draw depends on nothing else (not batch
size, chunking or retries: a re-drawn black image keeps its scale, so failures cannot bias the mixture).
"""

from __future__ import annotations

from imagenet_sd.seeds import derive_seed


def scales(settings: dict) -> tuple[float, ...]:
    """The generator's guidance scales: one, or the mixture's."""
    value = settings["guidance_scale"]
    return tuple(float(s) for s in value) if isinstance(value, (list, tuple)) else (float(value),)


def is_mixture(settings: dict) -> bool:
    return isinstance(settings.get("guidance_scale"), (list, tuple))


def guided(settings: dict) -> bool:
    """Whether any image is rendered with classifier-free guidance (scale > 1: two denoiser passes)."""
    return any(s > 1 for s in scales(settings))


def draw(mixture: tuple[float, ...], seed: int) -> float:
    """The scale of the image whose first-attempt noise seed is `seed`."""
    return mixture[derive_seed("guidance", seed) % len(mixture)]


def mean_passes(settings: dict) -> int | float:
    """Denoiser passes per step, averaged over the mixture (the draw is uniform over its entries)."""
    values = scales(settings)
    mean = sum(2 if s > 1 else 1 for s in values) / len(values)
    return int(mean) if mean.is_integer() else mean
