"""The `adapt` job: a real clone's packed train shards + its recipe's prompt files -> an adapted pipeline folder
and its loss curves (imagenet_sd.train.adaptation does the training; imagenet_sd.planning.adaptation the keys).

The images come from the packed shards, not the ImageFolder: the train split as pack chose it (the held-out
images taken out), and a repack reruns the adaptation. Image i of a class (in the shards' seeded order) is
captioned with the prompt the recipe gives train image i of that class, so a recipe with scenes captions the
images as the generate rule prompts them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
import webdataset as wds

from imagenet_sd.data.images import decode_rgb
from imagenet_sd.prompts.prompts import image_prompt, load_prompt_file
from imagenet_sd.runtime import atomic_path, pick_device
from imagenet_sd.train.adaptation import adapt_pipeline
from imagenet_sd.train.lora import save_lora_and_fuse

log = logging.getLogger("imagenet_sd.adapt")


def shard_samples(index_path: str, shards_dir: str) -> tuple[list[str], list[dict]]:
    """The shard index's classes and every sample of its shards, in shard order, read by webdataset."""
    index = json.loads(Path(index_path).read_text())
    urls = [str(Path(shards_dir) / s["name"]) for s in index["shards"]]
    pipeline = wds.DataPipeline(wds.SimpleShardList(urls), wds.tarfile_to_samples())
    return index["classes"], list(pipeline)


def pick_per_class(samples: list[dict], n_classes: int, k: int | None) -> list[tuple[int, int, bytes]]:
    """(label, index of the image within its class, image bytes) of the first k samples of each class."""
    seen = [0] * n_classes
    chosen = []
    for s in samples:
        label = int(s["cls"])
        if k is None or seen[label] < k:
            chosen.append((label, seen[label], s["jpg"] if "jpg" in s else s["png"]))
            seen[label] += 1
    empty = [c for c in range(n_classes) if seen[c] == 0]
    if empty:
        raise ValueError(f"the shards hold no image of class index(es) {empty}")
    return chosen


def training_set(chosen, records: list[dict], size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Pixels (N, 3, size, size) in [-1, 1], each image's caption index, and the distinct captions."""
    prompts: dict[str, int] = {}
    captions, pixels = [], []
    for label, i, data in chosen:
        text = image_prompt(records[label], "train", i)
        captions.append(prompts.setdefault(text, len(prompts)))
        image = decode_rgb(data)[None].float() / 127.5 - 1
        pixels.append(F.interpolate(image, size=(size, size), mode="bilinear", antialias=True, align_corners=False))
    return torch.cat(pixels), torch.tensor(captions), list(prompts)


def check_prompt_files(records: list[dict], files: list[str], classes: list[str]) -> None:
    """Prompt file c must be class c's: a file of another class would caption the images with a wrong label."""
    for record, path, wnid in zip(records, files, classes, strict=True):
        if record["wnid"] != wnid:
            raise ValueError(f"{path}: prompts of {record['wnid']}, but class {wnid} is at that label in the shards")


def write_losses(path: str, losses: dict) -> None:
    """One JSON line per step: {"phase": "vae"|"unet", "step": n (from 1), "loss": value}."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        for phase, values in losses.items():
            for step, loss in enumerate(values, 1):
                f.write(json.dumps({"phase": phase, "step": step, "loss": loss}) + "\n")


def run_adapt(*, base_dir, index, shards_dir, prompt_files, classes, images_per_class, settings, out_dir, losses,
              device=None, stop_after=None) -> None:  # fmt: skip
    """Adapt the pipeline in `base_dir` and save it to `out_dir` (model_index.json, components; a LoRA's weights
    alone too, imagenet_sd.train.lora.LORA_WEIGHTS) with `losses`. A stop signal saves a resume state in
    `out_dir`; the rerun resumes it, and a finished run removes it."""
    from diffusers import DiffusionPipeline

    shard_classes, samples = shard_samples(index, shards_dir)
    if shard_classes != list(classes):
        raise ValueError(f"{index}: the shards were packed for other classes (or another order) than the adaptation's")
    records = [load_prompt_file(p) for p in prompt_files]
    check_prompt_files(records, list(prompt_files), list(classes))
    pipe = DiffusionPipeline.from_pretrained(base_dir)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    chosen = pick_per_class(samples, len(classes), images_per_class)
    pixels, captions, prompts = training_set(chosen, records, size)
    log.info("adapting %s on %d images of %d classes at %dx%d", base_dir, len(pixels), len(classes), size, size)
    checkpoint = Path(out_dir) / "adapt"
    curves = adapt_pipeline(pipe, pixels, captions, prompts, settings, checkpoint, stop_after, pick_device(device))
    pipe.to("cpu")
    write_losses(losses, curves)
    if settings.get("lora") is not None:  # the LoRA weights beside, then fused: an ordinary pipeline folder
        save_lora_and_fuse(pipe, out_dir)
    pipe.save_pretrained(out_dir)
    checkpoint.with_suffix(".resume.pt").unlink(missing_ok=True)
    log.info("wrote %s (last losses: vae %s, unet %s)", out_dir, curves["vae"][-1:], curves["unet"][-1:])
