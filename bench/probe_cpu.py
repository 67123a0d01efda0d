"""Probe fit time vs number of training samples on CPU, to size probe jobs.

One scikit-learn L-BFGS logistic-regression fit (the `probe` rule makes `trials` + 1 of them) and one torch
SGD epoch of the linear probe (the `probe_linear` rule makes trials x epochs + epochs of them), on Gaussian
class clusters in 2048 dimensions, as many classes as a small transfer set. Prints seconds and the ratio to
the smallest size, measured side by side in one run.

Usage: .venv/bin/python bench/probe_cpu.py [--sizes 500 1000 2000 4000] [--classes 50] [--threads 2]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from imagenet_sd.evaluate.probes import fit_linear, fit_logistic  # noqa: E402

SGD = {"batch_size": 1024, "momentum": 0.9, "epochs": 1}


def problem(n: int, classes: int, dim: int = 2048, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1, (classes, dim)).astype(np.float32)
    y = rng.integers(0, classes, n)
    return means[y] + rng.normal(0, 2, (n, dim)).astype(np.float32), y


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(sizes: list[int], classes: int, threads: int, c: float) -> None:
    torch.set_num_threads(threads)
    fit_logistic(*problem(200, classes), c, 50)  # imports and first-call costs stay out of the first row
    rows = []
    for n in sizes:
        x, y = problem(n, classes)
        logistic = timed(lambda x=x, y=y: fit_logistic(x, y, c, 2000))
        epoch = timed(lambda x=x, y=y: fit_linear(x, y, classes, 1.0, 1e-6, SGD, 0, torch.device("cpu")))
        rows.append((n, logistic, epoch))
    base = rows[0]
    print(f"{classes} classes, 2048-d features, {threads} thread(s), logistic C={c}")
    print("| n train | logistic fit (s) | ratio | x31 fits (min) | SGD epoch (s) | ratio |")
    print("|---|---|---|---|---|---|")
    for n, logistic, epoch in rows:
        print(
            f"| {n:,} | {logistic:.2f} | {logistic / base[1]:.2f} | {31 * logistic / 60:.1f} | {epoch:.3f} | "
            f"{epoch / base[2]:.2f} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    parser.add_argument("--classes", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--c", type=float, default=1.0)
    args = parser.parse_args()
    main(args.sizes, args.classes, args.threads, args.c)
