"""CLIP embeddings of a class's generated images, the inputs of the quality measures (imagenet_sd.quality.quality).

The model is a transformers CLIPModel + CLIPProcessor folder: a real CLIP prefetched on the login node
(`prefetch_clip`, like the generator's weights), or the demo's tiny randomly initialised CLIP built locally
with CLIP's real tokenizer (`tiny_clip`). One job embeds the train images of one class, so a changed class
recomputes alone; everything that depends on thresholds or on the other classes is computed from the saved
embeddings by the cheap table step.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
from pathlib import Path

import numpy as np

from imagenet_sd.prompts.clip_tokenizer import CLIP_BOS_ID, CLIP_CONTEXT, CLIP_EOS_ID, CLIP_VOCAB_SIZE
from imagenet_sd.runtime import atomic_path

log = logging.getLogger("imagenet_sd.quality.clip_embed")

ZERO_SHOT_TEMPLATE = "a photo of a {}."  # CLIP's own zero-shot prompt for ImageNet classes
TRUNCATE = {"truncation": True, "max_length": CLIP_CONTEXT}  # long `c, d_c` prompts: as the generator saw them


def build_tiny_clip(settings: dict, tokenizer_dir: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """A randomly initialised CLIPModel (weights depend on settings['seed'] alone) with CLIP's tokenizer."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    hidden, layers, size = settings["hidden"], settings["layers"], settings["image_size"]
    common = dict(hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers)
    common["num_attention_heads"] = max(1, hidden // 8)
    text = dict(common, vocab_size=CLIP_VOCAB_SIZE, max_position_embeddings=CLIP_CONTEXT)
    text.update(bos_token_id=CLIP_BOS_ID, eos_token_id=CLIP_EOS_ID, pad_token_id=CLIP_EOS_ID)
    vision = dict(common, image_size=size, patch_size=settings["patch_size"])
    torch.manual_seed(settings["seed"])
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=hidden))
    images = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    processor = CLIPProcessor(image_processor=images, tokenizer=CLIPTokenizer.from_pretrained(tokenizer_dir))
    model.save_pretrained(dest, safe_serialization=True)
    processor.save_pretrained(dest)
    log.info("tiny CLIP %s built into %s", json.dumps(settings, sort_keys=True), dest)
    return Path(dest)


def read_chunk_images(tars: list[str]) -> tuple[list[str], list[bytes], list[str]]:
    """Keys, JPEG bytes and prompts of every image of the chunk tars, in key order."""
    found: dict[str, dict] = {}
    for tar_path in tars:
        with tarfile.open(tar_path) as tar:
            for info in tar:
                key, _, ext = Path(info.name).name.partition(".")
                if info.isfile() and ext in ("jpg", "json"):
                    found.setdefault(key, {})[ext] = tar.extractfile(info).read()
    missing = [k for k, fields in found.items() if len(fields) != 2]
    if missing:
        raise ValueError(f"images without both jpg and json in {tars}: {missing[:5]}")
    keys = sorted(found)
    return keys, [found[k]["jpg"] for k in keys], [json.loads(found[k]["json"])["prompt"] for k in keys]


def class_name(prompt_record: dict) -> str:
    """The class name c a prompt file gives its class (the sheet's override, else the recipe's lemmas)."""
    for entry in prompt_record["recipes"].values():
        if "fields" in entry:
            return entry["fields"]["c"]
    raise ValueError(f"prompt file of {prompt_record.get('class_key')} has no recipe with a class name")


def normalised(x) -> np.ndarray:
    x = x.float().cpu().numpy()
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def load_clip(model_dir, device: str, threads: int | None):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    if threads:
        torch.set_num_threads(threads)
    return CLIPModel.from_pretrained(model_dir).to(device).eval(), CLIPProcessor.from_pretrained(model_dir)


def embed_class(
    *, model_dir, tars, prompt_file, out, batch_size: int = 64, device: str = "cpu", threads: int | None = None
):
    """Image embeddings, each image's CLIP score with its own prompt, and the class name's text embedding.
    `device`: as runtime.pick_device reads it (`auto`: the GPU when there is one)."""
    import torch
    from PIL import Image

    from imagenet_sd.runtime import pick_device

    device = pick_device(device)
    model, processor = load_clip(model_dir, device, threads)
    name = class_name(json.loads(Path(prompt_file).read_text()))
    keys, jpegs, prompts = read_chunk_images(list(tars))
    images, scores = [], []
    with torch.inference_mode():
        for i in range(0, len(keys), batch_size):
            pixels = [Image.open(io.BytesIO(b)).convert("RGB") for b in jpegs[i : i + batch_size]]
            text = prompts[i : i + batch_size]
            batch = processor(text=text, images=pixels, return_tensors="pt", padding=True, **TRUNCATE)
            output = model(**{k: v.to(device) for k, v in batch.items()})
            image, prompt = normalised(output.image_embeds), normalised(output.text_embeds)
            images.append(image)
            scores.append(100.0 * np.maximum((image * prompt).sum(axis=1), 0.0))  # CLIPScore's scale, w = 100
        tokens = processor(text=[ZERO_SHOT_TEMPLATE.format(name)], return_tensors="pt", **TRUNCATE)
        # text_model + text_projection: what get_text_features computes, whose return type changed in transformers 5
        pooled = model.text_model(**{k: v.to(device) for k, v in tokens.items()}).pooler_output
        name_embedding = normalised(model.text_projection(pooled))[0]
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            keys=np.array(keys),
            images=np.concatenate(images).astype(np.float16),
            clip_score=np.concatenate(scores).astype(np.float32),
            name=np.array(name),
            name_embedding=name_embedding.astype(np.float32),
        )
    log.info("%d images of %s (%s) embedded into %s", len(keys), name, prompt_file, out)


def reference_files(source: dict, wnid: str) -> list[Path]:
    """The real images of one class a reference holds: a real clone's packed train images (the pack's seeded
    choice, imagenet_sd.data.realdata), or every image of an evaluation folder's class folder."""
    from imagenet_sd.data.realdata import choose, class_files

    folder = Path(source["path"]) / wnid
    if not folder.is_dir():
        raise FileNotFoundError(f"reference {source['name']!r}: no folder {folder} for class {wnid}")
    files = class_files(folder)
    if not files:
        raise ValueError(f"reference {source['name']!r}: no image in {folder} (class {wnid})")
    if "seed" in source:
        files, _ = choose(files, wnid, source["seed"], source["heldout_per_class"], source["images_per_class"])
    return files


def embed_reference(
    *, model_dir, source: dict, wnid: str, out, batch_size: int = 64, device: str = "cpu", threads: int | None = None
):
    """CLIP image embeddings of one class of a real reference set, as embed_class computes them (the same
    model, processor and projection), for the FD and KID of the clones measured against it."""
    import torch
    from PIL import Image

    from imagenet_sd.runtime import pick_device

    device = pick_device(device)
    model, processor = load_clip(model_dir, device, threads)
    files = reference_files(source, wnid)
    images = []
    with torch.inference_mode():
        for i in range(0, len(files), batch_size):
            pixels = [Image.open(p).convert("RGB") for p in files[i : i + batch_size]]
            batch = processor(images=pixels, return_tensors="pt")["pixel_values"].to(device)
            # vision_model + visual_projection: the image_embeds of CLIPModel's forward, as embed_class reads them
            images.append(normalised(model.visual_projection(model.vision_model(pixel_values=batch).pooler_output)))
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez(f, files=np.array([p.name for p in files]), images=np.concatenate(images).astype(np.float16))
    log.info("%d real images of %s (%s) embedded into %s", len(files), wnid, source["path"], out)
