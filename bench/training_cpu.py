"""CPU cost per image of a training loader worker: the old per-image pipeline vs the new one, side by side.

Old: decode with PIL, DINO's multi-crop (1 global + 8 local bicubic random-resized crops, colour jitter,
grayscale, blur, solarisation, normalisation) per image, float32 batches collated (imagenet_sd.train.transforms).
New: what a worker does now (imagenet_sd.data.loader.decode_samples): decode to uint8 and stack; crops and colour
augmentations run batched on the training device and cost the loader nothing.

Both sides read the same in-memory samples (JPEGs of the stored size, quality 90) on one thread; process CPU
time is measured in alternating rounds and the last line is the median per-round ratio new / old.

    .venv/bin/python bench/training_cpu.py [--size 512] [--images 64] [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imagenet_sd.data.loader import decode_samples  # noqa: E402
from imagenet_sd.train.transforms import MultiCrop  # noqa: E402


def photo_like_jpeg(size: int, rng: np.random.Generator) -> bytes:
    """A JPEG with smooth regions, edges and noise, so it compresses and decodes like a photograph."""
    low = rng.uniform(0, 255, (size // 16, size // 16, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(low).resize((size, size), Image.BICUBIC), dtype=np.float32)
    img = img + rng.normal(0, 12, img.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def old_pipeline(samples: list[dict], transform) -> None:
    views = [transform(Image.open(io.BytesIO(s["jpg"])).convert("RGB")) for s in samples]
    [torch.stack(crops) for crops in zip(*views)], torch.tensor([int(s["cls"]) for s in samples])


def new_pipeline(samples: list[dict], _transform) -> None:
    decode_samples(samples)


def cpu_seconds(fn, samples, transform) -> float:
    start = time.process_time()
    fn(samples, transform)
    return time.process_time() - start


def main(size: int, images: int, rounds: int) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    samples = [{"jpg": photo_like_jpeg(size, rng), "cls": str(i % 10).encode()} for i in range(images)]
    transform = MultiCrop(224, 8, 96)
    print(
        f"{images} JPEGs of {size}x{size} ({sum(len(s['jpg']) for s in samples) / images / 1024:.0f} KiB each), "
        f"1 x 224 + 8 x 96 crops, one thread",
        flush=True,
    )
    cpu_seconds(old_pipeline, samples[:4], transform), cpu_seconds(new_pipeline, samples[:4], transform)  # warm-up
    ratios, old_ms, new_ms = [], [], []
    for r in range(rounds):
        pair = ((old_pipeline, old_ms), (new_pipeline, new_ms))
        for fn, times in pair if r % 2 == 0 else pair[::-1]:
            times.append(1e3 * cpu_seconds(fn, samples, transform) / images)
        ratios.append(new_ms[-1] / old_ms[-1])
        print(
            f"round {r}: old {old_ms[-1]:.2f} ms/img, new {new_ms[-1]:.2f} ms/img, ratio {ratios[-1]:.3f}", flush=True
        )
    old, new = statistics.median(old_ms), statistics.median(new_ms)
    print(f"old: {old:.2f} ms CPU per image = {1e3 / old:.0f} images/s per worker core")
    print(f"new: {new:.2f} ms CPU per image = {1e3 / new:.0f} images/s per worker core")
    print(f"cpu cost ratio: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="stored image side (the full-scale configs' choice)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    main(**vars(parser.parse_args()))
