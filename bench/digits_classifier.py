"""Quick stand-in for the demo's training recipe on digits: torchvision ResNet from scratch on 8x8 digits
upsampled to `--resolution`, trained on the real split or on a generated .npy (gray in [0, 1], labels in blocks
of `--per-class`), scored on the real held-out split. Prints accuracy and CPU seconds.

    OMP_NUM_THREADS=1 python bench/digits_classifier.py --arch resnet18 --resolution 32 --epochs 10
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision


def load_bench():
    spec = importlib.util.spec_from_file_location("adapt_digits", Path(__file__).with_name("adapt_digits.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepare(x8: np.ndarray, resolution: int) -> torch.Tensor:
    t = torch.from_numpy(x8.astype(np.float32))[:, None]
    t = F.interpolate(t, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return ((t - 0.5) / 0.5).repeat(1, 3, 1, 1)


def augment(x: torch.Tensor, g: torch.Generator, pad: int, flip: bool) -> torch.Tensor:
    """Random translation by up to `pad` pixels, and with `flip` the repository recipe's horizontal flips
    (off by default: a mirrored digit is not a digit)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad,) * 4, value=-1.0)
    dx, dy = torch.randint(0, 2 * pad + 1, (2,), generator=g).tolist()
    x = padded[:, :, dy : dy + h, dx : dx + w]
    if flip:
        flips = torch.rand(n, generator=g) < 0.5
        x = torch.where(flips[:, None, None, None], x.flip(-1), x)
    return x


def train(x, y, args) -> torch.nn.Module:
    torch.manual_seed(args.seed)
    model = getattr(torchvision.models, args.arch)(num_classes=10)
    steps = args.epochs * ((len(x) + args.batch - 1) // args.batch)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.2)
    g = torch.Generator().manual_seed(args.seed)
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), args.batch):
            idx = order[i : i + args.batch]
            loss = F.cross_entropy(model(augment(x[idx], g, args.resolution // 8, args.flip)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def score(model, x, y) -> float:
    return float((model(x).argmax(1) == y).float().mean())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--generated", help="a generated .npy (N, 8, 8); default: the real training split")
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--flip", action="store_true", help="random horizontal flips, as the repository's recipes do")
    args = p.parse_args()
    bench = load_bench()
    x_train, x_test, y_train, y_test = bench.split_digits(0, 0.3)
    if args.generated:
        x_train = bench.to8(np.load(args.generated))
        y_train = np.repeat(np.arange(10), args.per_class)
    c0, t0 = time.process_time(), time.time()
    model = train(prepare(x_train, args.resolution), torch.from_numpy(y_train), args)
    acc = score(model, prepare(x_test, args.resolution), torch.from_numpy(y_test))
    source = args.generated or "real train split"
    print(
        f"{args.arch} {args.resolution}px {args.epochs} epochs on {len(x_train)} ({source}): top-1 {acc:.3f} "
        f"on {len(x_test)} real held-out; {time.process_time() - c0:.0f}s cpu, {time.time() - t0:.0f}s wall"
    )


if __name__ == "__main__":
    main()
