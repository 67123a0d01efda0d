"""Supervised training of a torchvision ResNet from scratch on a clone's WebDataset shards.

The recipe (t-ReX / the paper): SGD with momentum, LR = lr x batch/256 with linear warm-up then cosine
decay, precomputed per step as in DINO; DINO's multi-crop augmentation where every crop carries the
image's label and the loss is averaged over all crops. `train()` is the whole recipe on one screen; the
functions above it are its parts.

Data order is a pure function of the seed: each epoch's shard order is drawn in the main process from
(seed, epoch), each loader worker reads every n-th shard of it and shuffles samples in a buffer seeded by
(seed, epoch, worker), and augmentations draw from torch generators the loader seeds from the main one.
So the number of steps of every epoch is known before training starts, and a run resumed at an epoch
boundary continues exactly as the uninterrupted run would.

On several devices (`devices` > 1) the job spawns one process per GPU (DistributedDataParallel, no
torchrun): rank r reads shards order[r::ranks] of each epoch with its own loader workers and trains on
batch_size/ranks images per step, so a step still consumes `batch_size` images and the LR schedule is
unchanged. Every rank takes the same number of steps per epoch (the fewest any rank's shards give).
BatchNorm statistics are per rank, as in the usual multi-GPU ResNet recipe. Rank 0 alone writes the
metrics and checkpoints.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import webdataset as wds

from imagenet_sd.distributed import gather_objects, mean_over_ranks, rank_and_ranks
from imagenet_sd.models import build_model
from imagenet_sd.runtime import atomic_path, schema_defaults, versions
from imagenet_sd.seeds import derive_seed
from imagenet_sd.transforms import train_transform

log = logging.getLogger(__name__)

# ---- settings ------------------------------------------------------------------------------------
def training_defaults() -> dict:
    """Defaults of a `trainings` entry, read from the config schema (the one place they are written)."""
    return schema_defaults("trainings")


def resolve_training(training: dict) -> dict:
    """A training entry with the schema's defaults filled in; unknown keys are errors."""
    defaults = training_defaults()
    unknown = set(training) - set(defaults)
    if unknown:
        raise ValueError(f"unknown training setting(s) {sorted(unknown)}; known: {sorted(defaults)}")
    return {**defaults, **training}


# ---- schedules and data order ------------------------------------------------------------------------
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
    """Full batches an epoch yields: worker w reads shards order[w::workers] and drops its last partial batch."""
    workers = max(workers, 1)
    return sum(sum(counts[i] for i in order[w::workers]) // batch_size for w in range(workers))


@dataclass
class EpochPlan:
    shard_orders: list[list[int]]
    steps: list[int]

    @property
    def total_steps(self) -> int:
        return sum(self.steps)


def plan_epochs(counts: list[int], epochs: int, seed: int, workers: int, batch_size: int,
                ranks: int = 1) -> EpochPlan:
    """Shard order and steps of every epoch. With several ranks, rank r reads order[r::ranks] in batches of
    batch_size/ranks, and an epoch has the steps of the rank whose shards give the fewest."""
    if batch_size % ranks:
        raise ValueError(f"batch size {batch_size} does not split evenly across {ranks} devices")
    if len(counts) < ranks:
        raise ValueError(f"{len(counts)} shards cannot give each of {ranks} devices its own: use fewer devices")
    orders = [epoch_shard_order(len(counts), seed, e) for e in range(epochs)]
    steps = [min(steps_in_epoch(counts, order[r::ranks], workers, batch_size // ranks) for r in range(ranks))
             for order in orders]
    if not steps[0]:
        raise ValueError(f"batch size {batch_size // ranks} is larger than the images each of {workers} loader "
                         f"worker(s) reads per epoch ({sum(counts)} images in {len(counts)} shards, "
                         f"{ranks} device(s))")
    return EpochPlan(orders, steps)


# ---- data loading ------------------------------------------------------------------------------------
def worker_id() -> int:
    info = torch.utils.data.get_worker_info()
    return info.id if info is not None else 0


def seeded_shuffle(samples, bufsize: int, seed: int):
    """webdataset's sample shuffle buffer with a generator seeded per (run seed + epoch, worker)."""
    rng = random.Random(derive_seed("train-samples", seed, worker_id()))
    return wds.shuffle(bufsize, initial=bufsize, rng=rng)(samples)


def collate_crops(samples):
    """[(crops, label), ...] -> ([batch of crop 0, batch of crop 1, ...], labels)."""
    crops, labels = zip(*samples)
    return [torch.stack(views) for views in zip(*crops)], torch.tensor(labels, dtype=torch.long)


def make_loader(shard_paths: list[str], transform, *, batch_size: int, workers: int, shuffle_buffer: int,
                seed: int, pin_memory: bool = False):
    """One epoch over `shard_paths` in the given order: shards split across workers, samples shuffled in a buffer."""
    pipeline = wds.DataPipeline(
        wds.SimpleShardList(shard_paths),
        wds.split_by_worker,
        wds.tarfile_to_samples(),
        functools.partial(seeded_shuffle, bufsize=shuffle_buffer, seed=seed),
        wds.decode("pil"),
        wds.to_tuple("jpg;png", "cls"),  # a real clone packs PNGs as they are
        wds.map_tuple(transform, int),
        wds.batched(batch_size, collation_fn=collate_crops, partial=False),
    )
    return wds.WebLoader(pipeline, batch_size=None, num_workers=workers, pin_memory=pin_memory)


# ---- one step, one epoch -----------------------------------------------------------------------------
def multicrop_logits(model, crops: list[torch.Tensor]) -> torch.Tensor:
    """One forward per crop resolution (crops of a size batched together), logits in crop order."""
    logits, start = [], 0
    while start < len(crops):
        end = start
        while end < len(crops) and crops[end].shape[-2:] == crops[start].shape[-2:]:
            end += 1
        logits.append(model(torch.cat(crops[start:end])))
        start = end
    return torch.cat(logits)


class MultiCropNet(torch.nn.Module):
    """The model applied to a list of crops (DINO's MultiCropWrapper): one module call per step, which is what
    DistributedDataParallel wraps. `backbone` is the torchvision model, whose state_dict is saved."""

    def __init__(self, backbone: torch.nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, crops: list[torch.Tensor]) -> torch.Tensor:
        return multicrop_logits(self.backbone, crops)


def crops_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every crop's logits (crop-major) against its image's label, averaged over crops and images."""
    return F.cross_entropy(logits.float(), labels.repeat(len(logits) // len(labels)))


def multicrop_loss(model, crops: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every crop against its image's label, averaged over crops and images."""
    return crops_cross_entropy(multicrop_logits(model, crops), labels)


class MetricsLog:
    """metrics.jsonl: one JSON line per logged step and per epoch, flushed as written (runs are watched live).

    `path` None: nothing is written (ranks other than 0).
    """

    def __init__(self, path, lines=()):
        self.lines = list(lines)
        self.file = None
        if path is None:
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "w")  # noqa: SIM115 - closed in close()
        for line in self.lines:
            self.file.write(json.dumps(line) + "\n")
        self.file.flush()

    def write(self, **record):
        self.lines.append(record)
        if self.file is None:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        log.info(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))

    def close(self):
        if self.file is not None:
            self.file.close()


def train_one_epoch(net, optimizer, loader, *, epoch: int, step: int, epoch_steps: int, lr_schedule,
                    stop_step: int, device, amp: bool, channels_last: bool, metrics: MetricsLog,
                    log_every: int) -> tuple[int, float, int, float]:
    """Train `epoch_steps` steps (or until `stop_step`); returns (step, mean loss, batches, seconds).

    `net` maps a list of crops to logits (a MultiCropNet, or its DistributedDataParallel wrapper); losses
    logged are means over the ranks, images/s counts the images of all ranks.
    """
    net.train()
    ranks = rank_and_ranks()[1]
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    loss_sum, batches, images, tick = torch.zeros((), device=device), 0, 0, time.perf_counter()
    epoch_start = tick
    for crops, labels in loader:
        if step >= stop_step or batches >= epoch_steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = float(lr_schedule[step])
        crops = [c.to(device, non_blocking=True, memory_format=memory_format) for c in crops]
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = crops_cross_entropy(net(crops), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step, batches, images = step + 1, batches + 1, images + len(labels) * ranks
        loss_sum += loss.detach()
        if step % log_every == 0 or step == stop_step:
            now = time.perf_counter()
            metrics.write(event="step", step=step, epoch=epoch, loss=mean_over_ranks(loss).item(),
                          lr=float(lr_schedule[step - 1]), img_per_s=images / (now - tick))
            images, tick = 0, now
    mean_loss = mean_over_ranks(loss_sum / max(batches, 1)).item()
    seconds = time.perf_counter() - epoch_start
    return step, mean_loss, batches, seconds


# ---- checkpoints -------------------------------------------------------------------------------------
def save_atomic(obj, path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def cpu_state_dict(model) -> dict:
    return {k: v.detach().to("cpu", memory_format=torch.contiguous_format) for k, v in model.state_dict().items()}


def resume_path(checkpoint) -> Path:
    return Path(checkpoint).with_suffix(".resume.pt")


def load_resume(path: Path, identity: dict):
    """The state saved at the end of an epoch by an interrupted run of the same training on the same data."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("identity") != identity:
        log.info("ignoring %s: it belongs to another training or other data", path)
        return None
    log.info("resuming from %s after epoch %d (step %d)", path, state["epoch"], state["step"])
    return state


# ---- the recipe ----------------------------------------------------------------------------------------
def train(*, shard_paths: list[str], shard_counts: list[int], classes: list[str], training: dict, checkpoint,
          metrics, workers: int, device: torch.device, data_id: str = "") -> dict | None:
    """Train `training` on the shards; write metrics.jsonl and the checkpoint. Returns the final checkpoint dict.

    Inside a torch.distributed process group (see `imagenet_sd.distributed.run_on_devices`) every rank runs this on its share of
    the data; rank 0 writes the files and returns the checkpoint dict, the other ranks return None.
    """
    t = resolve_training(training)
    rank, ranks = rank_and_ranks()
    on_gpu = device.type == "cuda"
    amp, channels_last = t["amp"] and on_gpu, t["channels_last"] and on_gpu
    torch.manual_seed(t["seed"])

    model = build_model(t["arch"], len(classes)).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=t["momentum"], weight_decay=t["weight_decay"])
    net = MultiCropNet(model)
    if ranks > 1:
        torch.manual_seed(derive_seed("train-rank", t["seed"], rank))  # each rank its own augmentations
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device] if on_gpu else None)

    plan = plan_epochs(shard_counts, t["epochs"], t["seed"], workers, t["batch_size"], ranks)
    peak_lr = t["lr"] * t["batch_size"] / 256
    warmup_steps = round(t["warmup_epochs"] * plan.total_steps / t["epochs"])
    lr_schedule = warmup_cosine_schedule(peak_lr, plan.total_steps, warmup_steps)
    stop_step = min(plan.total_steps, t["max_steps"] or plan.total_steps)
    log_every = max(1, min(50, plan.steps[0] // 10))
    transform = train_transform(t)
    log.info("%s, %d classes, %d images in %d shards, %d steps (%d per epoch), peak lr %.4g, %d warm-up steps, "
             "%d workers, device %s x %d, amp %s", t["arch"], len(classes), sum(shard_counts), len(shard_paths),
             stop_step, plan.steps[0], peak_lr, warmup_steps, workers, device, ranks, amp)

    identity = {"training": t, "classes": list(classes), "data": data_id, "workers": workers}
    if ranks > 1:
        identity["devices"] = ranks
    state, start_epoch, step = load_resume(resume_path(checkpoint), identity), 0, 0
    if state:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"] if ranks == 1 else state["rng"][rank])
        start_epoch, step = state["epoch"] + 1, state["step"]
    metrics_log = MetricsLog(metrics if rank == 0 else None, state["metrics"] if state else ())

    epoch, mean_loss = start_epoch - 1, float("nan")
    try:
        for epoch in range(start_epoch, t["epochs"]):
            if step >= stop_step:
                break
            shards = plan.shard_orders[epoch][rank::ranks]
            loader = make_loader([shard_paths[i] for i in shards], transform, batch_size=t["batch_size"] // ranks,
                                 workers=workers, shuffle_buffer=t["shuffle_buffer"],
                                 seed=derive_seed(t["seed"], epoch, *([rank] if ranks > 1 else [])),
                                 pin_memory=on_gpu)
            step, mean_loss, batches, seconds = train_one_epoch(
                net, optimizer, loader, epoch=epoch, step=step, epoch_steps=plan.steps[epoch],
                lr_schedule=lr_schedule, stop_step=stop_step, device=device, amp=amp, channels_last=channels_last,
                metrics=metrics_log, log_every=log_every)
            metrics_log.write(event="epoch", epoch=epoch, step=step, loss=mean_loss, seconds=seconds,
                              img_per_s=batches * t["batch_size"] / max(seconds, 1e-9))
            if epoch + 1 < t["epochs"] and step < stop_step:
                rng = torch.get_rng_state() if ranks == 1 else gather_objects(torch.get_rng_state())
                if rank == 0:
                    save_atomic({"identity": identity, "epoch": epoch, "step": step, "state_dict": model.state_dict(),
                                 "optimizer": optimizer.state_dict(), "rng": rng,
                                 "metrics": metrics_log.lines}, resume_path(checkpoint))
    finally:
        metrics_log.close()

    if rank != 0:
        return None
    final = {
        "state_dict": cpu_state_dict(model),
        "arch": t["arch"],
        "num_classes": len(classes),
        "classes": list(classes),
        "head": "fc = Linear(in_features, num_classes, bias=False)",
        "training": t,
        "epoch": epoch,
        "step": step,
        "final_loss": mean_loss,
        "data": data_id,
        "versions": versions(),
    }
    save_atomic(final, checkpoint)
    resume_path(checkpoint).unlink(missing_ok=True)
    return final


def data_signature(index: dict) -> str:
    """What identifies the training data: the shard list with counts and hashes (for resume checks)."""
    shards = [[s["name"], s["count"], s["sha256"]] for s in index["shards"]]
    return hashlib.sha256(json.dumps([index["classes"], shards]).encode()).hexdigest()

