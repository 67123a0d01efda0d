"""Supervised training of a torchvision ResNet from scratch on a clone's WebDataset shards.

The recipe (t-ReX / the paper): SGD with momentum, weight decay on weights only (not on BatchNorm parameters
and biases), LR = lr x batch/256 with linear warm-up then cosine decay, precomputed per step as in DINO;
DINO's multi-crop augmentation where every crop carries the image's label and the loss is averaged over all
crops; a linear or cosine-softmax head, optionally after a projector that the checkpoint leaves out.
`train()` is the whole recipe; the functions above it are its parts.

Loader workers only decode (imagenet_sd.data.loader); crops and colour augmentations run batched on the training
device (imagenet_sd.train.gpu_augment), drawn from a generator seeded per step. Data order is a pure function of
the seed, so the steps of every epoch are known before training starts, and a run stopped after any step
(a stop signal, see imagenet_sd.train.resume) continues exactly as the uninterrupted run would.

On several devices (`devices` > 1) the job spawns one process per GPU (DistributedDataParallel, no
torchrun): rank r reads shards order[r::ranks] of each epoch with its own loader workers and trains on
batch_size/ranks images per step, so a step still consumes `batch_size` images and the LR schedule is
unchanged. Every rank takes the same number of steps per epoch (the fewest any rank's shards give).
BatchNorm statistics are synchronised across GPUs (SyncBatchNorm) unless `sync_batchnorm` is off. Rank 0
alone writes the metrics and checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from imagenet_sd.config import resolve_entry, schema_defaults
from imagenet_sd.data.loader import ShardStreams, close_loader, epoch_batches, make_loader, stream_batch_counts
from imagenet_sd.progress import Progress
from imagenet_sd.runtime import atomic_path, versions
from imagenet_sd.seeds import derive_seed
from imagenet_sd.train.distributed import rank_and_ranks
from imagenet_sd.train.gpu_augment import augment_batch, view_policies
from imagenet_sd.train.models import MultiCropNet, attach_head, build_model, crops_cross_entropy, export_state
from imagenet_sd.train.resume import StopSignals, TrainingStopped, load_resume, resume_path, save_resume
from imagenet_sd.train.schedules import EpochPlan, plan_epochs, warmup_cosine_schedule, warmup_steps
from imagenet_sd.train.train_log import MetricsLog, Tally

log = logging.getLogger(__name__)
NULL_LOG = logging.getLogger("imagenet_sd.train.training.other_ranks")  # progress of ranks > 0 stays quiet
NULL_LOG.disabled = True


# ---- settings ------------------------------------------------------------------------------------
def training_defaults() -> dict:
    """Defaults of a `trainings` entry, read from the config schema (the one place they are written)."""
    return schema_defaults("trainings")


def resolve_training(training: dict, name: str = "training") -> dict:
    """A training entry checked by the config schema and completed with its defaults."""
    return resolve_entry("trainings", name, training)


# ---- model, loss, optimiser ----------------------------------------------------------------------------
def parameter_groups(model: torch.nn.Module, weight_decay: float, decay_norm_and_bias: bool) -> list[dict]:
    """Weight decay on weight matrices and kernels only; BatchNorm parameters and biases (1-d) go undecayed."""
    params = [p for p in model.parameters() if p.requires_grad]
    if decay_norm_and_bias:
        return [{"params": params, "weight_decay": weight_decay}]
    return [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]


def build_network(t: dict, num_classes: int, device: torch.device, ranks: int):
    """(model as trained, the module a step calls, optimiser). Same initial weights on every rank."""
    torch.manual_seed(t["seed"])
    model = attach_head(build_model(t["arch"], num_classes), t)
    if ranks > 1 and t["sync_batchnorm"] and device.type == "cuda":  # SyncBatchNorm runs on GPUs only
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    if t["channels_last"] and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        parameter_groups(model, t["weight_decay"], t["decay_norm_and_bias"]), lr=0.0, momentum=t["momentum"]
    )
    net = MultiCropNet(torch.compile(model) if t["compile"] else model)
    if ranks > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device] if device.type == "cuda" else None, gradient_as_bucket_view=True
        )
    return model, net, optimizer


# ---- the loop ------------------------------------------------------------------------------------------
@dataclass
class Run:
    """Everything the loop needs, built once by train()."""

    t: dict
    model: torch.nn.Module
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    plan: EpochPlan
    lr: np.ndarray
    dataset: ShardStreams
    loader: torch.utils.data.DataLoader
    shard_counts: list[int]
    metrics: MetricsLog
    checkpoint: Path
    identity: dict
    stop: StopSignals
    step: int = 0
    rank: int = 0
    ranks: int = 1
    last_save: float = field(default_factory=time.monotonic)

    @property
    def stop_step(self) -> int:
        return min(self.plan.total_steps, self.t["max_steps"] or self.plan.total_steps)

    @property
    def log_every(self) -> int:
        return max(1, min(50, self.plan.steps[0] // 10))


def train_step(run: Run, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a uint8 batch: augment on the device, forward all crops, backward, update.
    Returns the loss and how many global crops (the first view) were classified right."""
    for group in run.optimizer.param_groups:
        group["lr"] = float(run.lr[run.step])
    on_gpu = run.device.type == "cuda"
    images = batch.images.to(run.device, non_blocking=True)
    labels = batch.labels.to(run.device, non_blocking=True)
    generator = torch.Generator().manual_seed(derive_seed("augment", run.t["seed"], run.rank, run.step))
    crops = augment_batch(images, batch.sizes, view_policies(run.t), generator)
    if run.t["channels_last"] and on_gpu:
        crops = [c.contiguous(memory_format=torch.channels_last) for c in crops]
    with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.t["amp"] and on_gpu):
        logits = run.net(crops)
    loss = crops_cross_entropy(logits, labels)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    return loss, (logits[: len(labels)].argmax(1) == labels).sum()


def stop_or_save(run: Run) -> tuple[bool, bool]:
    """(a stop signal arrived, a periodic save is due), agreed by all ranks (checked every 10 steps there)."""
    due = run.rank == 0 and time.monotonic() - run.last_save >= 60 * run.t["save_every_minutes"]
    flags = [run.stop.received is not None, due]
    if run.ranks > 1:
        if run.step % 10:
            return False, False
        agreed = torch.tensor(flags, dtype=torch.int32, device=run.device)
        torch.distributed.all_reduce(agreed, op=torch.distributed.ReduceOp.MAX)
        flags = agreed.tolist()
    return bool(flags[0]), bool(flags[1])


def save_state(run: Run, epoch: int, position: int, epoch_tally: Tally) -> None:
    """The resume state: continue with batch `position` of `epoch` (rank 0 writes, all ranks check the loss)."""
    epoch_tally.summary(run.ranks)  # never save weights trained on a non-finite loss
    if run.rank == 0:
        save_resume(
            {
                "identity": run.identity,
                "epoch": epoch,
                "batch": position,
                "step": run.step,
                "model": run.model.state_dict(),
                "optimizer": run.optimizer.state_dict(),
                "metrics": run.metrics.lines,
                "epoch_sums": [
                    epoch_tally.loss.item(),
                    epoch_tally.correct.item(),
                    epoch_tally.batches,
                    epoch_tally.images,
                ],
            },
            run.checkpoint,
        )
    run.last_save = time.monotonic()


def train_epoch(run: Run, epoch: int, position: int, epoch_tally: Tally) -> None:
    """Batches `position`.. of the epoch (or until the run's last step), logging and saving as they go."""
    shards = run.plan.shard_orders[epoch][run.rank :: run.ranks]
    counts = stream_batch_counts(run.shard_counts, shards, run.dataset.streams, run.dataset.batch_size)
    interval = Tally.zero(run.device)
    for batch in epoch_batches(run.loader, run.dataset, epoch, counts, position, run.plan.steps[epoch]):
        loss, correct = train_step(run, batch)
        position, run.step = position + 1, run.step + 1
        for tally in (interval, epoch_tally):
            tally.add(loss, correct, len(batch.labels))
        if run.step % run.log_every == 0 or run.step == run.stop_step:
            run.metrics.write(
                event="step", step=run.step, epoch=epoch, lr=float(run.lr[run.step - 1]), **interval.summary(run.ranks)
            )
            interval = Tally.zero(run.device)
        stop, due = stop_or_save(run)
        if stop or due:
            save_state(run, epoch, position, epoch_tally)
        if stop:
            raise TrainingStopped(
                f"stopped by {run.stop.received} after step {run.step} (epoch {epoch}, batch {position} of "
                f"{run.plan.steps[epoch]}); {resume_path(run.checkpoint)} continues from there. The job fails "
                "on purpose: its retry (or the next run) resumes it"
            )
        if run.step >= run.stop_step:
            return


def run_epochs(run: Run, state: dict | None) -> float:
    """All remaining epochs; returns the last epoch's mean loss."""
    epoch, position, mean_loss = (state["epoch"], state["batch"], float("nan")) if state else (0, 0, float("nan"))
    progress = Progress("train", run.stop_step, unit="steps", logger=log if run.rank == 0 else NULL_LOG)
    progress.done = run.step
    while epoch < run.t["epochs"] and run.step < run.stop_step:
        before = run.step
        tally = Tally.zero(run.device)
        if state and epoch == state["epoch"]:
            loss, correct, tally.batches, tally.images = state["epoch_sums"]
            tally.loss += loss
            tally.correct += correct
        train_epoch(run, epoch, position, tally)
        progress.update(run.step - before)
        summary = tally.summary(run.ranks)
        mean_loss = summary["loss"]
        run.metrics.write(
            event="epoch",
            epoch=epoch,
            step=run.step,
            loss=mean_loss,
            train_top1=summary["top1"],
            seconds=time.perf_counter() - tally.since,
            img_per_s=summary["img_per_s"],
        )
        epoch, position = epoch + 1, 0
        if epoch < run.t["epochs"] and run.step < run.stop_step:
            save_state(run, epoch, 0, Tally.zero(run.device))
    return mean_loss


# What a checkpoint's `head` says of its format; models.load_checkpoint_model rebuilds the head as trained.
HEAD_FORMATS = {
    "linear": "fc = Linear(in_features, num_classes, bias=False) (linear head)",
    "cosine": "fc = Linear(in_features, num_classes, bias=False): the cosine head folded in (class weights "
    "normalised / training.temperature), for plain torchvision; its logits carry the feature norm, so loading "
    "rebuilds the cosine head from it",
}
PROJECTOR_FORMAT = "{head} head after a projector, in head_state_dict; state_dict is the encoder"


def save_final(run: Run, classes: list[str], mean_loss: float, data_id: str) -> dict:
    state_dict, head_state = export_state(run.model, run.t)
    final = {
        "state_dict": state_dict,
        "head_state_dict": head_state,
        "arch": run.t["arch"],
        "num_classes": len(classes),
        "classes": list(classes),
        "head": HEAD_FORMATS[run.t["head"]] if head_state is None else PROJECTOR_FORMAT.format(head=run.t["head"]),
        "training": run.t,
        "step": run.step,
        "final_loss": mean_loss,
        "data": data_id,
        "versions": versions(),
    }
    # saved through a file object: given a path, torch.save names the zip's folder after the (random) temporary
    # file, and the same training gave other bytes on every run
    with atomic_path(run.checkpoint) as tmp, open(tmp, "wb") as file:
        torch.save(final, file)
    resume_path(run.checkpoint).unlink(missing_ok=True)
    return final


# ---- the recipe ----------------------------------------------------------------------------------------
def resume_identity(t: dict, classes: list[str], data_id: str, workers: int, ranks: int) -> dict:
    """What the weights depend on (how often states are saved does not): a resume state must match it."""
    return {
        "training": {k: v for k, v in t.items() if k != "save_every_minutes"},
        "classes": list(classes),
        "data": data_id,
        "loader_streams": max(workers, 1),
        "devices": ranks,
    }


def shard_streams(shard_paths: list[str], plan: EpochPlan, t: dict, workers: int, rank: int, ranks: int):
    """This rank's shards of every epoch, read by `workers` interleaved loader streams."""
    return ShardStreams(
        shard_paths,
        [order[rank::ranks] for order in plan.shard_orders],
        streams=max(workers, 1),
        batch_size=t["batch_size"] // ranks,
        shuffle_buffer=t["shuffle_buffer"],
        seed=t["seed"],
        rank=rank,
    )


def describe(t: dict, classes, shard_counts, plan: EpochPlan, workers: int, device, ranks: int) -> str:
    """The run in one log line."""
    peak_lr = t["lr"] * t["batch_size"] / 256
    return (
        f"{t['arch']}, {t['head']} head, {len(classes)} classes, {sum(shard_counts)} images in {len(shard_counts)} "
        f"shards, {plan.total_steps} steps ({plan.steps[0]} in the first epoch), peak lr {peak_lr:.4g}, "
        f"{warmup_steps(t, plan.total_steps)} warm-up steps, {workers} workers, device {device} x {ranks}, "
        f"amp {t['amp'] and device.type == 'cuda'}"
    )


def train(
    *,
    shard_paths: list[str],
    shard_counts: list[int],
    classes: list[str],
    training: dict,
    checkpoint,
    metrics,
    workers: int,
    device: torch.device,
    data_id: str = "",
) -> dict | None:
    """Train `training` on the shards; write metrics.jsonl and the checkpoint. Returns the final checkpoint dict.

    Inside a torch.distributed process group (see `imagenet_sd.train.distributed.run_on_devices`) every rank runs
    this on its share of the data; rank 0 writes the files and returns the checkpoint dict, the others None.
    """
    t = resolve_training(training)
    rank, ranks = rank_and_ranks()
    torch.backends.cudnn.benchmark = device.type == "cuda"
    model, net, optimizer = build_network(t, len(classes), device, ranks)
    plan = plan_epochs(shard_counts, t["epochs"], t["seed"], workers, t["batch_size"], ranks)
    peak_lr = t["lr"] * t["batch_size"] / 256
    lr = warmup_cosine_schedule(peak_lr, plan.total_steps, warmup_steps(t, plan.total_steps))
    identity = resume_identity(t, classes, data_id, workers, ranks)
    state = load_resume(checkpoint, identity)
    if state:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    dataset = shard_streams(shard_paths, plan, t, workers, rank, ranks)
    log.info(describe(t, classes, shard_counts, plan, workers, device, ranks))
    with StopSignals() as stop:
        run = Run(
            t,
            model,
            net,
            optimizer,
            device,
            plan,
            lr,
            dataset,
            make_loader(dataset, workers, pin_memory=device.type == "cuda"),
            list(shard_counts),
            MetricsLog(metrics if rank == 0 else None, state["metrics"] if state else ()),
            Path(checkpoint),
            identity,
            stop,
            step=state["step"] if state else 0,
            rank=rank,
            ranks=ranks,
        )
        try:
            mean_loss = run_epochs(run, state)
        finally:
            run.metrics.close()
            close_loader(run.loader)
    return save_final(run, classes, mean_loss, data_id) if rank == 0 else None


def data_signature(index: dict) -> str:
    """What identifies the training data: the shard list with counts and hashes (for resume checks)."""
    shards = [[s["name"], s["count"], s["sha256"]] for s in index["shards"]]
    return hashlib.sha256(json.dumps([index["classes"], shards]).encode()).hexdigest()
