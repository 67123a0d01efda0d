"""Curation of a synthetic clone at pack time: of the oversampled images of each class, keep the best by CLIP
score, or the first ones that are not near-duplicates of an image already kept (clones.<name>.curation).

It reads the quality step's per-class embedding files, never the generator: a changed setting repacks only.
"""

from __future__ import annotations

import numpy as np

from imagenet_sd.quality.quality import ClassEmbeddings


def keep_best(scores: np.ndarray, count: int) -> list[int]:
    """Indices of the `count` highest scores (ties: the lower index first), in index order."""
    order = np.lexsort((np.arange(len(scores)), -scores))
    return sorted(order[:count].tolist())


def keep_distinct(images: np.ndarray, count: int, threshold: float) -> list[int]:
    """In index order, each image whose cosine with every image kept so far is below `threshold`."""
    kept: list[int] = []
    for i in range(len(images)):
        if len(kept) == count:
            break
        if not kept or float((images[kept] @ images[i]).max()) < threshold:
            kept.append(i)
    return kept


def kept_indices(c: ClassEmbeddings, per_class: int, settings: dict) -> list[int]:
    """Indices of the `per_class` images of one class that curation keeps (the pack and the quality tables)."""
    if settings["keep"] == "clip_score":
        chosen = keep_best(c.clip_score, per_class)
    else:
        chosen = keep_distinct(c.images, per_class, settings["duplicate_threshold"])
    if len(chosen) < per_class:
        raise ValueError(
            f"class {c.wnid}: only {len(chosen)} of {len(c.images)} generated images are distinct at cosine "
            f"{settings['duplicate_threshold']}, {per_class} wanted; raise curation.oversample or the threshold"
        )
    return chosen


def kept_keys(embeddings: dict[str, str], per_class: int, settings: dict) -> set[str]:
    """Image keys to pack, per_class of each class. `embeddings`: wnid -> the class's embedding file."""
    keys: set[str] = set()
    for wnid, path in embeddings.items():
        with np.load(path) as f:
            names = [str(k) for k in f["keys"]]
        keys.update(names[i] for i in kept_indices(ClassEmbeddings.load(wnid, path), per_class, settings))
    return keys


def curate(samples: list, embeddings: dict[str, str], per_class: int, settings: dict) -> list:
    """The samples (imagenet_sd.data.shards.Sample) whose keys curation keeps, in their order."""
    keys = kept_keys(embeddings, per_class, settings)
    return [s for s in samples if s.key in keys]


def measured_classes(classes: list[ClassEmbeddings], curation: dict | None) -> tuple[list[ClassEmbeddings], str]:
    """The images the quality tables describe: of a curated clone (`curation`: its settings and
    `images_per_class`) the ones its pack keeps, as `kept`; of any other all the generated ones."""
    if not curation:
        return classes, "generated"
    return [c.subset(kept_indices(c, curation["images_per_class"], curation)) for c in classes], "kept"
