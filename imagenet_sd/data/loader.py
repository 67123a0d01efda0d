"""Reading a clone's WebDataset shards for training: loader workers that only read, shuffle and decode, and
hand over uint8 batches (crops and colour augmentations happen batched on the training device, see
imagenet_sd.train.gpu_augment).

Data order is a pure function of (seed, epoch, rank) and the number of loader streams: stream s of an
epoch reads shards order[s::streams] and shuffles their samples in a buffer seeded by (seed, epoch, rank,
s); the main process takes the streams' batches round-robin (batch 0 of every stream, then batch 1, ...,
skipping streams that ran out). So the batches of an epoch and their order are known up front, and a run
stopped after any step resumes exactly: each stream skips the batches already trained on (without decoding
them) and the worker processes are rotated so that the stream due next is read first.

Workers persist across epochs: the epoch, the rotation and the skips reach them through a small shared
tensor that the main process writes before starting each epoch's iteration.
"""

from __future__ import annotations

import random
import signal
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import webdataset as wds

from imagenet_sd.data.images import decode_rgb
from imagenet_sd.seeds import derive_seed


@dataclass
class Batch:
    images: torch.Tensor  # uint8 (n, 3, H, W); smaller images padded at the bottom right
    sizes: torch.Tensor  # (n, 2) true height, width
    labels: torch.Tensor
    stream: int
    index: int  # batch number within its stream this epoch

    def pin_memory(self) -> Batch:
        """Called by the DataLoader's pin-memory thread (GPU runs): page-locked images copy asynchronously."""
        self.images, self.labels = self.images.pin_memory(), self.labels.pin_memory()
        return self


def stream_batch_counts(counts: list[int], shards: list[int], streams: int, batch_size: int) -> list[int]:
    """Full batches each stream yields from `shards` (indices into `counts`); each drops its last partial batch."""
    return [sum(counts[i] for i in shards[s::streams]) // batch_size for s in range(streams)]


def round_robin(batch_counts: list[int]) -> list[tuple[int, int]]:
    """The epoch's batches in training order, as (stream, index)."""
    longest = max(batch_counts, default=0)
    return [(s, i) for i in range(longest) for s, n in enumerate(batch_counts) if i < n]


def resume_point(batch_counts: list[int], position: int) -> tuple[int, list[int]]:
    """(rotation, batches each stream skips) to continue an epoch after `position` trained batches."""
    order = round_robin(batch_counts)
    skips = [0] * len(batch_counts)
    for stream, _ in order[:position]:
        skips[stream] += 1
    return (order[position][0] if position < len(order) else 0), skips


def decode_samples(samples: list[dict]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """JPEG (or, from a real clone packed as it is, PNG) bytes -> uint8 RGB images, decoded as the evaluation
    decodes them (imagenet_sd.data.images), padded to the batch's largest by repeating edges; sizes; labels."""
    images = [decode_rgb(s["jpg"] if "jpg" in s else s["png"]) for s in samples]
    sizes = torch.tensor([img.shape[1:] for img in images])
    height, width = sizes.max(0).values.tolist()
    if any(img.shape[1:] != (height, width) for img in images):
        images = [
            F.pad(img[None].float(), (0, width - img.shape[2], 0, height - img.shape[1]), mode="replicate")[0].to(
                torch.uint8
            )
            for img in images
        ]
    labels = torch.tensor([int(s["cls"]) for s in samples], dtype=torch.long)
    return torch.stack(images), sizes, labels


class ShardStreams(torch.utils.data.IterableDataset):
    """One epoch of one rank's shards as `streams` streams of batches; worker w reads stream (w + rotation)."""

    def __init__(
        self,
        shard_paths: list[str],
        epoch_orders: list[list[int]],
        *,
        streams: int,
        batch_size: int,
        shuffle_buffer: int,
        seed: int,
        rank: int = 0,
    ):
        self.shard_paths, self.epoch_orders, self.streams = shard_paths, epoch_orders, streams
        self.batch_size, self.shuffle_buffer, self.seed, self.rank = batch_size, shuffle_buffer, seed, rank
        self.control = torch.zeros(2 + streams, dtype=torch.long).share_memory_()  # epoch, rotation, skips

    def set_epoch(self, epoch: int, rotation: int = 0, skips: list[int] | None = None) -> None:
        self.control.copy_(torch.tensor([epoch, rotation, *(skips or [0] * self.streams)]))

    def samples(self, epoch: int, stream: int):
        order = self.epoch_orders[epoch]
        urls = [self.shard_paths[i] for i in order[stream :: self.streams]]
        rng = random.Random(derive_seed("train-samples", self.seed, epoch, self.rank, stream))
        pipeline = wds.DataPipeline(
            wds.SimpleShardList(urls),
            wds.tarfile_to_samples(),
            wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=rng),
        )
        return iter(pipeline)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        epoch, rotation, *skips = self.control.tolist()
        stream = ((info.id if info else 0) + rotation) % self.streams
        group, index = [], 0
        for sample in self.samples(epoch, stream):
            group.append(sample)
            if len(group) < self.batch_size:
                continue
            if index >= skips[stream]:  # skipped batches are read (for the shuffle) but never decoded
                yield Batch(*decode_samples(group), stream=stream, index=index)
            group, index = [], index + 1


def worker_init(_worker_id: int) -> None:
    """Loader workers leave the stop signals to the training process (which saves and exits) and use one
    thread each: the job's cores are shared among them."""
    for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    torch.set_num_threads(1)


def make_loader(dataset: ShardStreams, workers: int, pin_memory: bool) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        worker_init_fn=worker_init,
        prefetch_factor=2 if workers else None,
    )


def close_loader(loader: torch.utils.data.DataLoader) -> None:
    """Stop the persistent workers now. Left to garbage collection, they may outlive the exit handler of
    multiprocessing, which stops daemon processes with SIGTERM (ignored by these workers) and then waits."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
    loader._iterator = None


def epoch_batches(loader, dataset: ShardStreams, epoch: int, batch_counts: list[int], position: int, steps: int):
    """Batches `position` to `steps` of the epoch in round-robin order. The DataLoader already delivers its
    workers' batches round-robin; the buffer only guards that order, so it holds at most a few batches."""
    rotation, skips = resume_point(batch_counts, position)
    dataset.set_epoch(epoch, rotation, skips)
    batches, pending = iter(loader), {}
    for key in round_robin(batch_counts)[position:steps]:
        while key not in pending:
            batch = next(batches)
            pending[(batch.stream, batch.index)] = batch
        yield pending.pop(key)
