"""Training throughput on one GPU: GPU-only step rate, loader-only rate, end-to-end rate, MFU, GPU JPEG decode.

ResNet-50, the full-scale recipe (1 global 224 + 8 local 96 crops, DINO augmentations batched on the GPU,
bf16 autocast, channels_last, batch 256), on synthetic shards of photo-like JPEGs at the stored size (512 by
default, the full-scale configs' choice). Nothing is downloaded. Each line is measured in this run:

- gpu-only: the training step (augmentations + forward/backward/update) on uint8 batches already on the GPU;
  also the model step alone on pre-augmented crops, so the augmentations' share shows;
- loader-only: `--workers` loader processes reading and decoding the shards, nothing else;
- end-to-end: `imagenet_sd.train.training.train` itself on the shards (its metrics' img/s after warm-up);
- MFU: FLOPs of one step counted by torch's FlopCounterMode, against a bf16 matmul peak measured here;
- decode: nvJPEG batch decode on the GPU (torchvision.io.decode_jpeg, device="cuda") vs one CPU core.

Goal (H100, 16 cores): >= 2,000 images/s end to end, within 5% of gpu-only. Budget: under 5 minutes.

    python bench/training_gpu.py                # on a GPU node
    python bench/training_gpu.py --smoke        # tiny sizes on the CPU, seconds: checks the code runs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training_cpu import photo_like_jpeg  # noqa: E402

from imagenet_sd.data.loader import ShardStreams, close_loader, epoch_batches, make_loader, stream_batch_counts  # noqa: E402
from imagenet_sd.runtime import add_tar_member  # noqa: E402
from imagenet_sd.train import training as tr  # noqa: E402
from imagenet_sd.train.gpu_augment import augment_batch, view_policies  # noqa: E402

FULL = {
    "arch": "resnet50",
    "batch_size": 256,
    "resolution": 224,
    "local_crops": 8,
    "local_resolution": 96,
    "epochs": 1,
    "lr": 0.1,
    "warmup_fraction": 0.0,
    "shuffle_buffer": 1000,
    "save_every_minutes": 1e6,
}
SMOKE = {
    "arch": "resnet18",
    "batch_size": 4,
    "resolution": 32,
    "local_crops": 2,
    "local_resolution": 16,
    "epochs": 1,
    "lr": 0.1,
    "warmup_fraction": 0.0,
    "shuffle_buffer": 16,
    "save_every_minutes": 1e6,
}


def write_shards(folder: Path, images: int, size: int, per_shard: int, classes: int) -> tuple[list[str], list[int]]:
    """Shards in the pack rule's format (key.jpg, key.cls); a few distinct JPEGs repeated (decoding cost is real)."""
    rng = np.random.default_rng(0)
    jpegs = [photo_like_jpeg(size, rng) for _ in range(min(images, 64))]
    paths, counts = [], []
    for start in range(0, images, per_shard):
        path = folder / f"shard-{start // per_shard:06d}.tar"
        n = min(per_shard, images - start)
        with tarfile.open(path, "w") as tar:
            for i in range(start, start + n):
                add_tar_member(tar, f"img{i:08d}.jpg", jpegs[i % len(jpegs)])
                add_tar_member(tar, f"img{i:08d}.cls", str(i % classes).encode())
        paths.append(str(path))
        counts.append(n)
    return paths, counts


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / steps


def gpu_only(t: dict, device, size: int, steps: int, flops_out: dict) -> tuple[float, float]:
    """(images/s of the full training step, images/s of the model step alone) on batches already on the device."""
    model, net, optimizer = tr.build_network(t, 1000, device, 1)
    n = t["batch_size"]
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, device=device)
    sizes, labels = torch.tensor([[size, size]] * n), torch.randint(0, 1000, (n,), device=device)
    gen = torch.Generator().manual_seed(0)
    amp = device.type == "cuda"

    def model_step(crops):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = tr.crops_cross_entropy(net(crops), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def crops():
        out = augment_batch(images, sizes, view_policies(t), gen)
        return [c.contiguous(memory_format=torch.channels_last) for c in out] if amp else out

    fixed = crops()
    with FlopCounterMode(display=False) as counter:
        model_step(fixed)
    flops_out["per_image"] = counter.get_total_flops() / n
    full = timed(lambda: model_step(crops()), device, steps, warmup=3)
    alone = timed(lambda: model_step(fixed), device, steps, warmup=2)
    return n / full, n / alone


def loader_only(paths, counts, t: dict, workers: int, batches: int) -> float:
    orders = [list(range(len(paths)))]
    dataset = ShardStreams(
        paths, orders, streams=max(workers, 1), batch_size=t["batch_size"], shuffle_buffer=100, seed=0
    )
    loader = make_loader(dataset, workers, pin_memory=torch.cuda.is_available())
    per_stream = stream_batch_counts(counts, orders[0], max(workers, 1), t["batch_size"])
    seen, start = 0, None
    for i, batch in enumerate(epoch_batches(loader, dataset, 0, per_stream, 0, sum(per_stream))):
        if i == max(workers, 1):  # every worker has started
            start, seen = time.perf_counter(), 0
        seen += len(batch.labels)
        if i >= batches:
            break
    close_loader(loader)
    return seen / (time.perf_counter() - start)


def end_to_end(paths, counts, t: dict, workers: int, device, folder: Path, steps: int) -> float:
    t = t | {"max_steps": steps, "workers": workers}
    if device.type == "cuda":  # as the train job does: the workers get the cores
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - workers))
    tr.train(
        shard_paths=paths,
        shard_counts=counts,
        classes=[str(i) for i in range(1000)],
        training=t,
        checkpoint=folder / "c.pt",
        metrics=folder / "m.jsonl",
        workers=workers,
        device=device,
    )
    lines = [json.loads(line) for line in (folder / "m.jsonl").read_text().splitlines()]
    rates = [m["img_per_s"] for m in lines if m["event"] == "step"]
    return float(np.median(rates[len(rates) // 2 :]))  # second half: past cudnn autotuning and worker start


def matmul_peak_tflops(device, smoke: bool) -> float:
    n = 256 if smoke else 8192
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / timed(lambda: a @ b, device, steps=3 if smoke else 20, warmup=2) / 1e12


def decode_rates(size: int, n: int) -> str:
    rng = np.random.default_rng(1)
    data = [torch.frombuffer(bytearray(photo_like_jpeg(size, rng)), dtype=torch.uint8) for _ in range(n)]
    from torchvision.io import decode_jpeg

    cpu = n / timed(lambda: [decode_jpeg(d) for d in data], torch.device("cpu"), steps=1, warmup=1)
    if not torch.cuda.is_available():
        return f"decode {size}px: CPU {cpu:.0f} img/s per core; no GPU for nvJPEG"
    gpu = n / timed(lambda: decode_jpeg(data, device="cuda"), torch.device("cuda"), steps=5, warmup=2)
    return f"decode {size}px: CPU {cpu:.0f} img/s per core, nvJPEG batch of {n} {gpu:.0f} img/s"


def main(smoke: bool, size: int, workers: int) -> None:
    device = torch.device("cpu" if smoke or not torch.cuda.is_available() else "cuda")
    if smoke:
        torch.set_num_threads(1)
    t = tr.resolve_training(SMOKE if smoke else FULL)
    size = 48 if smoke else size
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (smoke)"
    print(
        f"device {name}; {os.cpu_count()} CPU cores; {workers} loader workers; stored size {size}px; "
        f"batch {t['batch_size']}; torch {torch.__version__}",
        flush=True,
    )
    flops: dict = {}
    step_rate, model_rate = gpu_only(t, device, size, steps=2 if smoke else 20, flops_out=flops)
    peak = matmul_peak_tflops(device, smoke)
    mfu = step_rate * flops["per_image"] / 1e12 / peak
    print(
        f"gpu-only: {step_rate:.4g} img/s with augmentations, {model_rate:.4g} img/s model step alone; "
        f"{flops['per_image'] / 1e9:.3g} GFLOP per image; matmul peak {peak:.3g} TFLOP/s; MFU {mfu:.1%}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        images = 64 if smoke else 60 * t["batch_size"]
        paths, counts = write_shards(Path(tmp), images, size, per_shard=16 if smoke else 640, classes=1000)
        print(
            f"loader-only: {loader_only(paths, counts, t, workers, batches=4 if smoke else 40):.4g} img/s", flush=True
        )
        e2e = end_to_end(paths, counts, t, workers, device, Path(tmp), steps=4 if smoke else 50)
        print(f"end-to-end: {e2e:.4g} img/s = {e2e / step_rate:.1%} of gpu-only", flush=True)
    print(decode_rates(size, 8 if smoke else 256), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (checks the code runs)")
    parser.add_argument("--size", type=int, default=512, help="stored image side")
    parser.add_argument("--workers", type=int, default=max(1, min(12, (os.cpu_count() or 2) - 2)))
    main(**vars(parser.parse_args()))
