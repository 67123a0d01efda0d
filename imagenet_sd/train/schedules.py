"""The per-step schedules and the data order of a training run, known before it starts.

The learning rate is linear warm-up then cosine decay, precomputed per step as in DINO. Each epoch's shard
order is drawn from (seed, epoch); loader workers (or ranks) read interleaved shards, so the number of steps
of every epoch follows from the shard sizes alone, and a run stopped after any step resumes exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from imagenet_sd.data.loader import stream_batch_counts
from imagenet_sd.seeds import derive_seed


def warmup_steps(t: dict, total_steps: int) -> int:
    """`warmup_fraction` of the run when set (robust to short runs), else `warmup_epochs` worth of steps."""
    if t["warmup_fraction"] is not None:
        return round(t["warmup_fraction"] * total_steps)
    return round(t["warmup_epochs"] * total_steps / t["epochs"])


def warmup_cosine_schedule(peak: float, total_steps: int, warmup_steps: int, final: float = 0.0) -> np.ndarray:
    """Per-step values: linear from peak/warmup to peak over `warmup_steps`, then cosine from peak towards `final`."""
    warmup_steps = min(warmup_steps, total_steps)
    warmup = peak * np.arange(1, warmup_steps + 1) / max(warmup_steps, 1)
    decay_steps = total_steps - warmup_steps
    cosine = final + 0.5 * (peak - final) * (1 + np.cos(np.pi * np.arange(decay_steps) / max(decay_steps, 1)))
    return np.concatenate([warmup, cosine])


def epoch_shard_order(num_shards: int, seed: int, epoch: int) -> list[int]:
    order = list(range(num_shards))
    random.Random(derive_seed("train-shards", seed, epoch)).shuffle(order)
    return order


def steps_in_epoch(counts: list[int], order: list[int], workers: int, batch_size: int) -> int:
    """Full batches an epoch yields: stream w reads shards order[w::workers] and drops its last partial batch."""
    return sum(stream_batch_counts(counts, order, max(workers, 1), batch_size))


@dataclass
class EpochPlan:
    shard_orders: list[list[int]]
    steps: list[int]

    @property
    def total_steps(self) -> int:
        return sum(self.steps)


def plan_epochs(counts: list[int], epochs: int, seed: int, workers: int, batch_size: int, ranks: int = 1) -> EpochPlan:
    """Shard order and steps of every epoch. With several ranks, rank r reads order[r::ranks] in batches of
    batch_size/ranks, and an epoch has the steps of the rank whose shards give the fewest."""
    if batch_size % ranks:
        raise ValueError(f"batch size {batch_size} does not split evenly across {ranks} devices")
    if len(counts) < ranks:
        raise ValueError(f"{len(counts)} shards cannot give each of {ranks} devices its own: use fewer devices")
    orders = [epoch_shard_order(len(counts), seed, e) for e in range(epochs)]
    steps = [
        min(steps_in_epoch(counts, order[r::ranks], workers, batch_size // ranks) for r in range(ranks))
        for order in orders
    ]
    if not steps[0]:
        raise ValueError(
            f"batch size {batch_size // ranks} is larger than the images each of {workers} loader "
            f"worker(s) reads per epoch ({sum(counts)} images in {len(counts)} shards, "
            f"{ranks} device(s))"
        )
    return EpochPlan(orders, steps)
