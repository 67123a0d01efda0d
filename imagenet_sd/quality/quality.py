"""Quality of a clone before training on it, from the CLIP embeddings of its classes (imagenet_sd.quality.clip_embed).

Per class: text-image agreement (mean CLIP score of each image with its own prompt; zero-shot accuracy of the
images against all the clone's class names), diversity (mean pairwise cosine distance, Vendi score), and
near-duplicates (pairs of the class above a cosine threshold; images with a near-copy in another class).
A class is flagged when CLIP assigns its images elsewhere, when many of its images are near-duplicates, or
when most of its images have a copy in another class. Numpy only: no model is loaded here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# measure -> (column, whether a low value is bad): the report lists the worst classes by each.
MEASURES = {
    "clip_score": ("mean CLIP score with its prompt", True),
    "zero_shot": ("zero-shot accuracy against the clone's class names", True),
    "pairwise_distance": ("mean pairwise cosine distance", True),
    "vendi": ("Vendi score", True),
    "duplicate_pairs": ("near-duplicate pairs within the class", False),
    "copied": ("images with a near-copy in another class", False),
    "kid": ("KID against the real images of the class", False),  # NaN without quality.reference: not ranked
}


@dataclass
class ClassEmbeddings:
    wnid: str
    name: str
    images: np.ndarray  # (n, d), unit rows
    clip_score: np.ndarray  # (n,)
    name_embedding: np.ndarray  # (d,), unit

    @classmethod
    def load(cls, wnid: str, path) -> ClassEmbeddings:
        with np.load(path) as f:
            images = unit_rows(f["images"].astype(np.float32))  # stored as float16: exact copies stay at cos 1
            return cls(wnid, str(f["name"]), images, f["clip_score"], f["name_embedding"].astype(np.float32))

    def subset(self, indices: list[int]) -> ClassEmbeddings:
        """The same class, restricted to some of its images (those a curated clone keeps)."""
        return ClassEmbeddings(
            self.wnid, self.name, self.images[indices], self.clip_score[indices], self.name_embedding
        )


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def similarities(images: np.ndarray) -> np.ndarray:
    return np.clip(images @ images.T, -1.0, 1.0)


def mean_pairwise_distance(images: np.ndarray) -> float:
    """Mean cosine distance 1 - cos over the n(n-1)/2 pairs of distinct images (0: all the same)."""
    n = len(images)
    if n < 2:
        return float("nan")
    sims = similarities(images)
    return float(1.0 - (sims.sum() - np.trace(sims)) / (n * (n - 1)))


def vendi_score(images: np.ndarray) -> float:
    """Friedman & Dieng's Vendi score with the cosine kernel: exp of the entropy of the eigenvalues of K/n.
    It reads as an effective number of distinct images: 1 when all are the same, n when all are orthogonal."""
    if len(images) == 0:
        return float("nan")
    eigenvalues = np.linalg.eigvalsh(similarities(images) / len(images))
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    return float(np.exp(-(eigenvalues * np.log(eigenvalues)).sum()))


def duplicate_pairs(images: np.ndarray, threshold: float) -> int:
    """Pairs of distinct images of one class whose cosine similarity is at least `threshold`."""
    return int(np.triu(similarities(images) >= threshold, k=1).sum())


def zero_shot(classes: list[ClassEmbeddings]) -> list[tuple[float, str]]:
    """Per class: the fraction of its images CLIP assigns to it among all the classes' names, and the class
    (wnid) most of its images are assigned to."""
    names = np.stack([c.name_embedding for c in classes])
    results = []
    for label, c in enumerate(classes):
        predicted = np.argmax(c.images @ names.T, axis=1)
        counts = np.bincount(predicted, minlength=len(classes))
        results.append((float(np.mean(predicted == label)), classes[int(np.argmax(counts))].wnid))
    return results


def copied_images(classes: list[ClassEmbeddings], threshold: float, neighbours: int) -> list[tuple[int, str]]:
    """Per class: how many of its images have a near-copy (cosine >= threshold) in one other class, and which
    class has the most. Only the `neighbours` classes with the closest mean embedding are searched, so a
    1,000-class clone compares each class with a few, not with all."""
    centroids = unit_rows(np.stack([c.images.mean(axis=0) for c in classes]))
    closeness = centroids @ centroids.T
    np.fill_diagonal(closeness, -np.inf)
    results = []
    for i, c in enumerate(classes):
        best = (0, "")
        for j in np.argsort(-closeness[i])[: min(neighbours, len(classes) - 1)]:
            count = int(((c.images @ classes[j].images.T).max(axis=1) >= threshold).sum())
            best = max(best, (count, classes[j].wnid))
        results.append(best if best[0] else (0, ""))
    return results


def flags(row: dict, settings: dict) -> str:
    """Why a class needs a look, in words (empty when nothing is wrong)."""
    found = []
    if row["zero_shot"] < settings["agreement_threshold"]:
        found.append(f"agreement: CLIP assigns its images to {row['assigned_to']}")
    if row["duplicate_pairs"] > settings["duplicate_fraction"] * row["images"]:
        found.append(f"duplicates: {row['duplicate_pairs']} near-identical pairs")
    if row["copied"] >= settings["copy_fraction"] * row["images"]:
        found.append(f"copies: {row['copied']} images also in {row['copied_from']}")
    return "; ".join(found)


def class_rows(clone: str, classes: list[ClassEmbeddings], settings: dict, measured: str = "generated") -> list[dict]:
    """One row per class of a clone: every measure, and its flags. `measured`: which images `classes` hold, all
    the generated ones or those a curated clone keeps."""
    agreement = zero_shot(classes)
    copies = copied_images(classes, settings["duplicate_threshold"], settings["neighbours"])
    rows = []
    for c, (accuracy, assigned), (copied, source) in zip(classes, agreement, copies, strict=True):
        row = {
            "clone": clone,
            "wnid": c.wnid,
            "name": c.name,
            "images": len(c.images),
            "measured": measured,
            "clip_score": float(np.mean(c.clip_score)),
            "zero_shot": accuracy,
            "assigned_to": assigned,
            "pairwise_distance": mean_pairwise_distance(c.images),
            "vendi": vendi_score(c.images),
            "duplicate_pairs": duplicate_pairs(c.images, settings["duplicate_threshold"]),
            "copied": copied,
            "copied_from": source,
            "kid": float("nan"),  # filled in against quality.reference (imagenet_sd.quality.distances)
        }
        row["flags"] = flags(row, settings)
        rows.append(row)
    return rows


def ranked(rows: list[dict], measure: str, low_is_bad: bool) -> list[dict]:
    """Rows worst first by a measure; rows without it (NaN: a KID without a reference) are left out."""
    measured = [r for r in rows if r[measure] == r[measure]]
    return sorted(measured, key=lambda r: r[measure] if low_is_bad else -r[measure])


def clone_row(clone: str, rows: list[dict], distances: dict | None = None) -> dict:
    """A clone's summary: measures averaged over its classes (the per-class KIDs as `class_kid`), how many classes
    are flagged, and its FD and KID against its reference (`distances`: {reference, fd, kid}) if it has one."""
    summary = {"clone": clone, "classes": len(rows), "images": sum(r["images"] for r in rows)}
    summary["measured"] = rows[0]["measured"] if rows else ""
    for measure in MEASURES:
        summary["class_kid" if measure == "kid" else measure] = float(np.mean([r[measure] for r in rows]))
    summary["flagged"] = sum(bool(r["flags"]) for r in rows)
    return summary | (distances or {"reference": "", "fd": float("nan"), "kid": float("nan")})


def worst_rows(rows: list[dict], count: int) -> list[dict]:
    """Per clone and measure, the `count` worst classes (lowest agreement or diversity, most duplicates)."""
    out = []
    for clone in dict.fromkeys(r["clone"] for r in rows):
        mine = [r for r in rows if r["clone"] == clone]
        for measure, (label, low_is_bad) in MEASURES.items():
            for rank, r in enumerate(ranked(mine, measure, low_is_bad)[:count], start=1):
                out.append(
                    {"clone": clone, "measure": label, "rank": rank, "wnid": r["wnid"], "name": r["name"]}
                    | {"value": r[measure], "flags": r["flags"]}
                )
    return out


# ---- tables --------------------------------------------------------------------------------------------
NOTE = (
    "Measured from CLIP embeddings of each class's train images (docs/quality.md). `clip_score`: 100 x cosine "
    "of each image with its own prompt, averaged; `zero_shot`: fraction of the images CLIP assigns to their own "
    "class among the clone's class names; `pairwise_distance` and `vendi`: diversity (1 - cosine averaged over "
    "pairs; effective number of distinct images); `duplicate_pairs`: pairs at cosine >= {threshold} in the class; "
    "`copied`: images with a near-copy in another class (`copied_from`). `measured`: `generated` (every "
    "generated train image) or `kept` (the images a curated clone packs). `kid`, `fd`: KID and Fréchet distance "
    "in CLIP space against the clone's `reference` (real images; per class: KID against the same class), not "
    "Inception FID."
)


def markdown(frame, title: str, note: str) -> str:
    """A table for people: numbers to 3 significant digits, a title and what the columns mean."""
    import pandas as pd

    def cell(value) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    shown = pd.DataFrame({c: [cell(v) for v in frame[c].tolist()] for c in frame.columns})
    body = shown.to_markdown(index=False, disable_numparse=True) if len(frame) else "No generated clone measured."
    return f"# {title}\n\n{note}\n\n{body}\n"


def write_tables(rows: list[dict], settings: dict, outputs: dict, distances: dict | None = None) -> None:
    """quality.csv (per class), quality_clones.csv (per clone) and quality_worst.csv, each with a Markdown twin.
    `distances`: clone -> {reference, fd, kid} of the clones measured against real images."""
    import pandas as pd

    note = NOTE.format(threshold=settings["duplicate_threshold"])
    clones = [
        clone_row(clone, [r for r in rows if r["clone"] == clone], (distances or {}).get(clone))
        for clone in dict.fromkeys(r["clone"] for r in rows)
    ]
    worst = worst_rows(rows, settings["worst"])
    tables = {
        "classes": (pd.DataFrame(rows, columns=CLASS_COLUMNS), "Quality per class"),
        "clones": (pd.DataFrame(clones, columns=CLONE_COLUMNS), "Quality per clone"),
        "worst": (pd.DataFrame(worst, columns=WORST_COLUMNS), f"The {settings['worst']} worst classes by each measure"),
    }
    for name, (frame, title) in tables.items():
        frame.to_csv(outputs[name], index=False)
        with open(outputs[f"{name}_md"], "w") as f:
            f.write(markdown(frame, title, note))


CLASS_COLUMNS = ["clone", "wnid", "name", "images", "measured", *MEASURES, "assigned_to", "copied_from", "flags"]
CLONE_COLUMNS = ["clone", "classes", "images", "measured", *[m for m in MEASURES if m != "kid"], "class_kid"]
CLONE_COLUMNS += ["flagged", "reference", "fd", "kid"]
WORST_COLUMNS = ["clone", "measure", "rank", "wnid", "name", "value", "flags"]


def sheet_choice(rows: list[dict], count: int) -> list[dict]:
    """The classes a clone's worst-classes sheet shows: flagged ones first, then the worst by each measure in
    turn (the worst of each, then the second worst of each, ...), each class once."""
    rankings = [ranked(rows, measure, low) for measure, (_, low) in MEASURES.items()]
    ordered = [r for r in rows if r["flags"]]
    ordered += [ranking[i] for i in range(len(rows)) for ranking in rankings if i < len(ranking)]
    chosen: dict[str, dict] = {}
    for r in ordered:
        chosen.setdefault(r["wnid"], r)
    return list(chosen.values())[:count]
