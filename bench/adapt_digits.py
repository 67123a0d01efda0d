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

from imagenet_sd.clip_tokenizer import build_clip_tokenizer
from imagenet_sd.realdata import DIGIT_WNIDS
from imagenet_sd.tiny_pipeline import build_tiny_pipeline

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def digit_prompts(nltk_root: str | None) -> list[str]:
    """`c, d_c` of each digit's synset (the demo's recipe), or the bare name without WordNet."""
    if not nltk_root:
        return NAMES
    from imagenet_sd.wordnet import open_wordnet, synset_of

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


def train_vae(vae, pixels: torch.Tensor, steps: int, batch: int, seed: int, lr: float = 2e-3) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr)
    losses = []
    vae.train()
    for step in range(steps):
        idx = torch.randint(len(pixels), (batch,), generator=g)
        x = pixels[idx]
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        rec = vae.decode(z).sample
        kl = post.kl().mean() / x[0].numel()
        loss = F.mse_loss(rec, x) + 1e-4 * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 100 == 0:
            print(f"  vae step {step} loss {np.mean(losses[-100:]):.4f}", flush=True)
    vae.eval()
    return losses


def tokens(pipe, prompts: list[str]) -> torch.Tensor:
    return pipe.tokenizer(
        prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


def train_unet(pipe, latents, labels, prompts, steps, batch, seed, lr=1e-3, drop=0.1, train_text=False) -> list[float]:
    from diffusers import DDPMScheduler

    noise_sched = DDPMScheduler.from_config(pipe.scheduler.config)
    unet = pipe.unet
    g = torch.Generator().manual_seed(seed)
    ids = tokens(pipe, [*prompts, ""])
    params = list(unet.parameters()) + (list(pipe.text_encoder.parameters()) if train_text else [])
    pipe.text_encoder.train(train_text)
    opt = torch.optim.AdamW(params, lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    losses = []
    unet.train()
    for step in range(steps):
        idx = torch.randint(len(latents), (batch,), generator=g)
        z0 = latents[idx]
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(noise_sched.config.num_train_timesteps, (batch,), generator=g)
        zt = noise_sched.add_noise(z0, noise, t)
        with torch.set_grad_enabled(train_text):
            emb = pipe.text_encoder(ids)[0]
        cond, uncond = emb[:-1], emb[-1:]
        text = cond[labels[idx]]
        dropped = torch.rand(batch, generator=g) < drop  # classifier-free guidance needs the empty prompt too
        text = torch.where(dropped[:, None, None], uncond.expand_as(text), text)
        pred = unet(zt, t, encoder_hidden_states=text).sample
        loss = F.mse_loss(pred, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 100 == 0:
            print(f"  unet step {step} loss {np.mean(losses[-100:]):.4f}", flush=True)
    unet.eval()
    pipe.text_encoder.eval()
    return losses


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
    p.add_argument("--train-text", action="store_true", help="train the text encoder with the UNet")
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
    vae_losses = train_vae(pipe.vae, pixels, args.vae_steps, args.batch, args.seed)
    with torch.no_grad():
        mean = pipe.vae.encode(pixels).latent_dist.mean
        rec = pipe.vae.decode(mean).sample
    scale = float(1 / mean.std())
    pipe.vae.register_to_config(scaling_factor=scale)
    print(
        f"vae: {time.time() - t1:.0f}s wall, {time.process_time() - c1:.0f}s cpu, "
        f"final loss {np.mean(vae_losses[-50:]):.4f}, "
        f"rec mse {F.mse_loss(rec, pixels).item():.4f}, scaling {scale:.3f}"
    )
    t2, c2 = time.time(), time.process_time()
    labels = torch.from_numpy(y_train)
    if args.permute:
        labels = (labels + 1) % 10
    unet_losses = train_unet(
        pipe,
        mean * scale,
        labels,
        prompts,
        args.unet_steps,
        args.batch,
        args.seed,
        lr=args.lr,
        train_text=args.train_text,
    )
    print(
        f"unet: {time.time() - t2:.0f}s wall, {time.process_time() - c2:.0f}s cpu, "
        f"final loss {np.mean(unet_losses[-100:]):.4f}"
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
