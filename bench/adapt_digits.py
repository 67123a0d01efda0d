"""Feasibility of issue 22 on a CPU: adapt the demo's tiny text-to-image pipeline on scikit-learn's real digits,
generate a synthetic digits clone from the digits' class prompts, and score a classifier trained only on it
on real held-out digits (beside one trained on the real training split).

    OMP_NUM_THREADS=1 nice python bench/adapt_digits.py --nltk NLTK_DATA_ROOT

The defaults are the cheapest settings measured to pass (bench/RESULTS.md): 8x8 images (the digits' own
size) through a one-level VAE, 200 VAE steps, 1,000 UNet steps at lr 3e-3 with the text encoder frozen,
DDIM 10 steps at guidance 5. Stages print wall and CPU seconds; the score here is a quick stand-in
(logistic regression on 8x8 pixels); bench/digits_classifier.py trains a ResNet on the saved images.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from imagenet_sd.data.realdata import DIGIT_WNIDS
from imagenet_sd.generate.tiny_pipeline import build_tiny_pipeline
from imagenet_sd.prompts.clip_tokenizer import build_clip_tokenizer
from imagenet_sd.train.adaptation import adapt_pipeline

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def digit_prompts(nltk_root: str | None) -> list[str]:
    """`c, d_c` of each digit's synset (the demo's recipe), or the bare name without WordNet."""
    if not nltk_root:
        return NAMES
    from imagenet_sd.prompts.wordnet import open_wordnet, synset_of

    wn = open_wordnet(nltk_root)
    return [f"{n}, {synset_of(wn, w).definition()}" for n, w in zip(NAMES, DIGIT_WNIDS)]


def split_digits(seed: int, test_fraction: float):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)  # ink = 1
    return train_test_split(x, d.target, test_size=test_fraction, stratify=d.target, random_state=seed)


def to_pixels(x8: np.ndarray, size: int) -> torch.Tensor:
    """8x8 ink maps -> RGB in [-1, 1] at `size` (bilinear, as the loader would resize)."""
    t = torch.from_numpy(x8)[:, None]
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return (t * 2 - 1).repeat(1, 3, 1, 1)


@torch.no_grad()
def generate(folder: Path, prompts: list[str], per_class: int, size: int, steps: int, guidance: float, seed: int):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    images, labels = [], []
    for c, prompt in enumerate(prompts):
        gens = [torch.Generator().manual_seed(seed * 100003 + c * 1009 + i) for i in range(per_class)]
        out = pipe(
            [prompt] * per_class,
            height=size,
            width=size,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=gens,
            output_type="np",
        ).images
        images.append(out.mean(-1))  # RGB -> gray, in [0, 1]
        labels += [c] * per_class
    return np.concatenate(images), np.array(labels)


def to8(gray: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(gray.astype(np.float32))[:, None]
    return F.adaptive_avg_pool2d(t, 8)[:, 0].numpy()


def logistic_score(x_train, y_train, x_test, y_test) -> float:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000).fit(x_train.reshape(len(x_train), -1), y_train)
    return clf.score(x_test.reshape(len(x_test), -1), y_test)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=8)
    p.add_argument("--vae-channels", type=int, nargs="+", default=[32])
    p.add_argument("--unet-channels", type=int, nargs="+", default=[32, 64])
    p.add_argument("--vae-steps", type=int, default=200)
    p.add_argument("--unet-steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--sample-steps", type=int, default=10)
    p.add_argument("--guidance", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-fraction", type=float, default=0.3)
    p.add_argument("--nltk", default=None, help="an nltk_data root with WordNet 3.0; default: bare names")
    p.add_argument("--permute", action="store_true", help="shift the prompt of every class by one (must -> chance)")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    t0 = time.time()
    work = Path(tempfile.mkdtemp(prefix="adapt_digits_"))
    prompts = digit_prompts(args.nltk)
    print("prompts:", prompts[:2], "...")
    x_train, x_test, y_train, y_test = split_digits(args.seed, args.test_fraction)
    print(f"real train {len(x_train)}, real test {len(x_test)}")
    print(f"[real] logistic on 8x8: {logistic_score(x_train, y_train, x_test, y_test):.3f}")

    build_clip_tokenizer(work / "tokenizer")
    levels = len(args.vae_channels)
    settings = dict(
        seed=args.seed,
        sample_size=args.size // 2 ** (levels - 1),
        unet_channels=args.unet_channels,
        vae_channels=args.vae_channels,
        text_hidden=32,
        text_layers=2,
        scheduler="DDIM",
    )
    build_tiny_pipeline(settings, work / "tokenizer", work / "base")
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(work / "base")
    pixels = to_pixels(x_train, args.size)
    t1, c1 = time.time(), time.process_time()
    labels = torch.from_numpy(y_train)
    if args.permute:
        labels = (labels + 1) % 10
    settings = {
        "vae_steps": args.vae_steps,
        "unet_steps": args.unet_steps,
        "unet_lr": args.lr,
        "batch_size": args.batch,
        "seed": args.seed,
    }
    losses = adapt_pipeline(pipe, pixels, labels, prompts, settings)
    print(
        f"adapt: {time.time() - t1:.0f}s wall, {time.process_time() - c1:.0f}s cpu; final loss "
        f"vae {np.mean(losses['vae'][-50:]):.4f}, unet {np.mean(losses['unet'][-100:]):.4f}; "
        f"scaling {pipe.vae.config.scaling_factor:.3f}"
    )
    pipe.save_pretrained(work / "adapted", safe_serialization=True)
    t3, c3 = time.time(), time.process_time()
    gen_x, gen_y = generate(
        work / "adapted", prompts, args.per_class, args.size, args.sample_steps, args.guidance, args.seed + 1
    )
    print(f"generate {len(gen_x)} images: {time.time() - t3:.0f}s wall, {time.process_time() - c3:.0f}s cpu")
    np.save(work / "generated.npy", gen_x)
    synth = logistic_score(to8(gen_x), gen_y, x_test, y_test)
    print(f"[synthetic] logistic on 8x8, {args.per_class}/class: {synth:.3f}")
    print(f"total {time.time() - t0:.0f}s wall, {time.process_time():.0f}s cpu; work dir {work}")


if __name__ == "__main__":
    main()
