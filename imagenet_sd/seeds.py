"""Per-image seeds: pure functions of what determines an image, never of batch, chunk or job order."""

import hashlib

SEED_BITS = 63  # fits torch.Generator.manual_seed and numpy's SeedSequence


def derive_seed(*parts) -> int:
    """A 63-bit integer from an ordered tuple of str/int parts; stable across Python runs and machines."""
    text = "\x1f".join(str(p) for p in parts)
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)


def attempt_seed(parts: list, attempt: int) -> int:
    """The seed of `parts`; `attempt` > 0 re-draws an image that failed (black or NaN)."""
    return derive_seed(*parts, f"retry{attempt}") if attempt else derive_seed(*parts)


def image_seed(
    global_seed: int, generator: str, recipe: str, wnid: str, split: str, index: int, attempt: int = 0
) -> int:
    """Noise seed of image `index` of class `wnid`: its own for every generator and recipe."""
    return attempt_seed(["image", global_seed, generator, recipe, wnid, split, index], attempt)


def common_image_seed(global_seed: int, wnid: str, split: str, index: int, attempt: int = 0) -> int:
    """Noise seed of a generator with `common_noise` (common random numbers): the same for every generator
    and recipe, so ablation cells that differ only in guidance or prompts start from the same noise."""
    return attempt_seed(["common-image", global_seed, wnid, split, index], attempt)


def prompt_seed(global_seed: int, recipe: str, wnid: str, split: str, index: int) -> int:
    """Seed of the random choices made while writing the prompt of one image (scene, template)."""
    return derive_seed("prompt", global_seed, recipe, wnid, split, index)
