"""What output keys are made of: the short hash of the settings that determine an output, a class's key,
and the image ranges of chunks. Every planner builds its paths (imagenet_sd.paths) from these."""

from __future__ import annotations

import hashlib
import json


def short_hash(obj) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def class_key(wnid: str, name: str | None) -> str:
    """wnid alone, or wnid + hash of the name override: an override is a different class text."""
    return wnid if not name else f"{wnid}-{short_hash(name)}"


def chunk_ranges(n_images: int, chunk_size: int) -> list[tuple[int, int]]:
    """Chunks aligned at multiples of chunk_size, so raising n adds chunks and keeps earlier ones."""
    return [(start, min(start + chunk_size, n_images)) for start in range(0, n_images, chunk_size)]
