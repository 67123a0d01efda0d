"""The dataset card of a clone, written beside its shards (card.json + card.md): how the dataset was made.

It records the generator and its licence, the recipe and prompts, seeds, counts, images re-drawn after a
failed check, the quality summary, the exact config entries that made the clone, the code version, and how
to read the per-image provenance the shards already hold. Real clones get one too (source folder, counts).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from imagenet_sd.runtime import versions

# Licences of the generators the shipped configs name, as their model cards give them (docs/generation.md);
# any other says where to look (or sets `license`).
TURBO = "Stability AI Non-Commercial Research Community License (commercial use: stability.ai/license)"
COMMUNITY = "Stability AI Community License (commercial use above USD 1M revenue: stability.ai/license)"
LICENCES = {
    "CompVis/stable-diffusion-v1-4": "CreativeML OpenRAIL-M (https://huggingface.co/spaces/CompVis/stable-diffusion-license)",
    "runwayml/stable-diffusion-v1-5": "CreativeML OpenRAIL-M",
    "stabilityai/stable-diffusion-2-1": "CreativeML OpenRAIL++-M",
    "stabilityai/stable-diffusion-xl-base-1.0": "CreativeML OpenRAIL++-M",
    "stabilityai/sd-turbo": TURBO,
    "stabilityai/sdxl-turbo": TURBO,
    "stabilityai/stable-diffusion-3.5-medium": COMMUNITY,
    "stabilityai/stable-diffusion-3.5-large": COMMUNITY,
    "black-forest-labs/FLUX.1-schnell": "Apache 2.0",
}
PROVENANCE = {
    "synthetic": (
        "Every train sample of the shards is `<key>.jpg` + `<key>.cls` (class index in `classes`) + `<key>.json`, "
        "the JSON written when the image was generated: prompt, seed, attempt (re-draws after a failed check), "
        "index, split, wnid, class_key, recipe, generator and the generator's pixel settings. Read it with "
        "webdataset: `webdataset.WebDataset(urls).decode('pil').to_tuple('jpg', 'cls', 'json')`, the shard "
        "list in train.json. Held-out images are an ImageFolder (`heldout/<wnid>/<key>.jpg`)."
    ),
    "real": (
        "Every train sample of the shards is `<key>.jpg` or `.png` + `<key>.cls` + `<key>.json` naming the "
        "source file in the ImageFolder it was packed from. Read it with webdataset: "
        "`webdataset.WebDataset(urls).decode('pil').to_tuple('jpg;png', 'cls', 'json')`."
    ),
}


def code_version(root: str | Path) -> dict:
    """The workflow's git commit (and whether the tree had changes), or 'unknown' outside a git checkout."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    changed = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit or "unknown", "uncommitted_changes": bool(changed), "libraries": versions()}


def licence(made_of: dict) -> str:
    """The generator's licence (synthetic clone), or the source images' (real clone). An adapted generator's
    weights also learnt from real images: their terms are named beside the base model's."""
    generator = made_of.get("generator")
    if generator is None:
        return made_of["clone"].get("license") or "unknown: the terms of the source images (not set in the config)"
    adaptation = made_of.get("adaptation")
    base = model_licence(generator, made_of.get("pipeline"))
    if adaptation is None:
        return base
    images = adaptation["images_license"] or "unknown (not set in the config)"
    clone = adaptation["entry"]["clone"]
    return f"{base}; adapted ({adaptation['name']}) on real clone {clone}, whose images' terms are: {images}"


def model_licence(generator: dict, pipeline: dict | None) -> str:
    if generator.get("license"):
        return generator["license"]
    if pipeline:
        return "none: a randomly initialised pipeline built by this workflow (no trained weights)"
    return LICENCES.get(generator["model"], f"unknown: see the model card of {generator['model']}")


def generation_counts(stats: list[dict]) -> dict:
    """Images, re-drawn and still-failing images of the clone's chunks, per split."""
    counts: dict[str, dict] = {}
    for s in stats:
        split = counts.setdefault(s["split"], {"chunks": 0, "images": 0, "regenerated": 0, "unresolved": 0})
        split["chunks"] += 1
        for key in ("images", "regenerated", "unresolved"):
            split[key] += int(s.get(key) or 0)
    return counts


def build_card(*, clone: str, made_of: dict, index: dict, stats: list[dict], quality: dict | None, code: dict) -> dict:
    """`made_of`: the config entries that made the clone (clone, class set, recipe, generator, pipeline, seed,
    keys); `index`: the pack's train.json; `quality`: the clone's row of quality_clones.csv, if measured."""
    kind = index["source"]["kind"]
    return {
        "clone": clone,
        "kind": kind,
        "generator": made_of.get("generator_name"),
        "licence": licence(made_of),
        "recipe": made_of.get("recipe_name"),
        "seed": made_of["seed"],
        "classes": len(index["classes"]),
        "train_images": index["count"],
        "heldout_images": index["heldout"]["count"],
        "generation": generation_counts(stats),
        "quality": quality,
        "provenance": PROVENANCE[kind],
        "config": made_of,
        "code": code,
        "shards": [s["name"] for s in index["shards"]],
    }


def card_markdown(card: dict) -> str:
    """The card for people: the facts first, the exact config last."""
    import json

    lines = [f"# Dataset card: clone `{card['clone']}` ({card['kind']})", ""]
    facts = [
        ("classes", card["classes"]),
        ("train images", card["train_images"]),
        ("held-out images", card["heldout_images"]),
        ("global seed", card["seed"]),
    ]
    if card["kind"] == "synthetic":
        facts += [("generator", card["generator"]), ("generator licence", card["licence"])]
        facts += [("prompt recipe", card["recipe"])]
    else:
        facts += [("source folder", card["config"]["clone"]["path"]), ("licence", card["licence"])]
    code = card["code"]
    facts += [("code version", code["commit"] + (" (with uncommitted changes)" if code["uncommitted_changes"] else ""))]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in facts] + [""]
    for split, c in card["generation"].items():
        lines.append(
            f"Generation, {split}: {c['images']} images in {c['chunks']} chunks; {c['regenerated']} re-drawn after "
            f"a failed check (black, NaN or NSFW), {c['unresolved']} still failing after the last re-draw."
        )
    if card["quality"]:
        q = card["quality"]
        lines += ["", "## Quality (docs/quality.md)", ""]
        lines += [f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}" for k, v in q.items() if k != "clone"]
    lines += ["", "## Per-image provenance", "", card["provenance"], ""]
    lines += ["## The exact config", "", "```json", json.dumps(card["config"], indent=1, sort_keys=True), "```", ""]
    return "\n".join(lines)
