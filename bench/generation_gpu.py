"""Stable Diffusion v1.4 generation speed on one GPU: eager fp16 baseline vs the project's fastest settings.

SD v1.4's architecture (UNet, VAE, CLIP ViT-L/14 text encoder, PNDM scheduler) is built from its public
component configs (imagenet_sd/generate/sd14.py), with random weights: nothing is downloaded. 512x512, 50 steps,
classifier-free guidance (scale 7.5), batch 1/8/32/64. For each batch size it prints images/s, MFU against a
bf16 matmul peak measured in the same run, peak memory, and the largest pixel difference to the baseline.
Both sides render through the `generate` job's code (`imagenet_sd.generate.generation.render`, per-image seeds): the
eager side hands diffusers the prompt strings (the stock call, encoded every batch); the fast side keeps each
distinct prompt's embeddings between batches, as a job does, and adds `imagenet_sd.generate.text2image.make_fast`:
channels_last, fused QKV and torch.compile.
Budget: under 8 minutes on an H100 (`--budget-s` skips what would not fit and says so).

    python bench/generation_gpu.py                 # on a GPU node
    python bench/generation_gpu.py --smoke         # tiny sizes on the CPU: checks the code runs
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imagenet_sd.generate import generation as gen  # noqa: E402
from imagenet_sd.generate.chunks import ImageTask  # noqa: E402
from imagenet_sd.generate.flops import flops_per_image  # noqa: E402
from imagenet_sd.generate.sd14 import SD14_TEXT, SD14_UNET, SD14_VAE, sd_pipeline_from_configs  # noqa: E402
from imagenet_sd.generate.text2image import DTYPES, make_fast  # noqa: E402
from imagenet_sd.prompts.clip_tokenizer import build_clip_tokenizer  # noqa: E402

# SD v1.4's shapes, shrunk, for a CPU smoke run.
SMOKE_UNET = {
    **SD14_UNET,
    "sample_size": 8,
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "cross_attention_dim": 32,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
}
SMOKE_VAE = {
    **SD14_VAE,
    "sample_size": 16,
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "down_block_types": ["DownEncoderBlock2D"] * 2,
    "up_block_types": ["UpDecoderBlock2D"] * 2,
}
SMOKE_TEXT = {**SD14_TEXT, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4}

PROMPTS = [
    "tench, freshwater dace-like game fish of Europe and western Asia noted for ability to survive outside water",
    "goldfish, small golden or orange-red freshwater fishes of Eurasia used as pond or aquarium fishes",
    "great white shark, large aggressive shark widespread in warm seas",
]


@dataclass
class Setup:
    device: torch.device
    dtype: str
    unet: dict
    vae: dict
    text: dict
    size: int
    steps: int
    batches: list[int]
    compile: bool


def full_setup() -> Setup:
    return Setup(torch.device("cuda"), "float16", SD14_UNET, SD14_VAE, SD14_TEXT, 512, 50, [64, 32, 8, 1], True)


def smoke_setup() -> Setup:
    return Setup(torch.device("cpu"), "float32", SMOKE_UNET, SMOKE_VAE, SMOKE_TEXT, 16, 2, [2, 1], False)


def build_sd14(setup: Setup, tokenizer_dir: Path):
    """StableDiffusionPipeline with SD v1.4's components, random weights, on the device in the bench dtype."""
    pipe = sd_pipeline_from_configs(setup.unet, setup.vae, setup.text, tokenizer_dir, setup.device, DTYPES[setup.dtype])
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_fast_settings(pipe, setup: Setup, cache_dir: Path) -> None:
    """The project's output-preserving speed settings (what a generator entry turns on)."""
    make_fast(pipe, "sdpa", channels_last=True, fuse_qkv=True, compile=setup.compile, compile_cache=str(cache_dir))


def matmul_peak_tflops(device: torch.device, smoke: bool) -> float:
    """Best sustained bf16 (CPU smoke: fp32) matmul throughput, the MFU denominator."""
    n, dtype = (512, torch.float32) if smoke else (8192, torch.bfloat16)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(3 if smoke else 10):
        gen.synchronize(device)
        started = time.perf_counter()
        for _ in range(5):
            a @ b
        gen.synchronize(device)
        best = min(best, (time.perf_counter() - started) / 5)
    return 2 * n**3 / best / 1e12


def tasks_for(batch: int) -> list[ImageTask]:
    return [ImageTask(i, PROMPTS[i % len(PROMPTS)], seed=1000 + i) for i in range(batch)]


def timed_render(pipe, tasks, settings, device, prompts) -> tuple[float, np.ndarray]:
    gen.synchronize(device)
    started = time.perf_counter()
    pixels = gen.to_pixels(gen.render(pipe, tasks, settings, gen.DenoiseClock(device), prompts))
    return time.perf_counter() - started, pixels


def measure(pipe, setup: Setup, batch: int, warmups: int, repeats: int, job_path: bool) -> dict:
    """The stock call (prompt strings, encoded every batch) or, with `job_path`, the job's: embeddings of each
    distinct prompt encoded once and kept between batches."""
    settings = {"steps": setup.steps, "guidance_scale": 7.5, "height": setup.size, "width": setup.size}
    prompts = gen.PromptEncoder(pipe, settings, cache=job_path)
    tasks = tasks_for(batch)
    if setup.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(setup.device)
    for _ in range(warmups):
        timed_render(pipe, tasks, settings, setup.device, prompts)
    runs = [timed_render(pipe, tasks, settings, setup.device, prompts) for _ in range(repeats)]
    seconds = statistics.median(t for t, _ in runs)
    memory = torch.cuda.max_memory_allocated(setup.device) if setup.device.type == "cuda" else None
    return {
        "batch": batch,
        "seconds": seconds,
        "images_per_second": batch / seconds,
        "peak_memory": memory,
        "pixels": runs[-1][1],
    }


def report(name: str, result: dict, flops: dict | None, peak: float, baseline: dict | None) -> str:
    ips = result["images_per_second"]
    mfu = flops["total"] * ips / 1e12 / peak if flops else float("nan")
    memory = f"{result['peak_memory'] / 2**30:.1f} GiB" if result["peak_memory"] is not None else "n/a"
    line = f"{name:9s} batch {result['batch']:3d}: {ips:7.3f} img/s  MFU {mfu:6.1%}  peak memory {memory}"
    if baseline is not None:
        diff = np.abs(result["pixels"].astype(int) - baseline["pixels"].astype(int))
        speedup = ips / baseline["images_per_second"]
        line += f"  max pixel diff {diff.max()} (mean {diff.mean():.3f})  speed-up {speedup:.2f}x"
    return line


def run_side(name, pipe, setup, flops, peak, deadline, baselines=None) -> dict:
    results = {}
    for batch in setup.batches:
        if time.monotonic() > deadline:
            print(f"{name:9s} batch {batch:3d}: skipped (time budget spent)", flush=True)
            continue
        # Compiled graphs are static in the batch: each new batch size pays its compilation in the warm-up.
        warmups = 1 if (setup.compile and name == "fast") or not results else 0
        repeats = 1 if batch >= 32 else 2
        results[batch] = measure(pipe, setup, batch, warmups, repeats, job_path=name == "fast")
        base = baselines.get(batch) if baselines is not None else None
        print(report(name, results[batch], flops, peak, base), flush=True)
    return results


def main(smoke: bool, budget_s: float) -> None:
    started = time.monotonic()
    setup = smoke_setup() if smoke else full_setup()
    torch.set_grad_enabled(False)
    with tempfile.TemporaryDirectory() as tmp:
        pipe = build_sd14(setup, build_clip_tokenizer(Path(tmp) / "tokenizer"))
        settings = {"steps": setup.steps, "guidance_scale": 7.5, "height": setup.size, "width": setup.size}
        flops = flops_per_image(pipe, settings)
        peak = matmul_peak_tflops(setup.device, smoke)
        name = torch.cuda.get_device_name(setup.device) if setup.device.type == "cuda" else "cpu"
        print(
            f"device {name}; measured matmul peak {peak:.4g} TFLOP/s; "
            f"{flops['total'] / 1e12:.4g} TFLOP per image ({setup.steps} steps, guidance, {setup.size}px); "
            f"arithmetic limit {peak / (flops['total'] / 1e12):.3g} img/s",
            flush=True,
        )
        deadline = started + budget_s
        baselines = run_side("eager", pipe, setup, flops, peak, deadline)
        one = [b for b in (1, min(setup.batches)) if b in baselines][:1]
        if one and max(baselines) in baselines and one[0] != max(baselines):
            diff = np.abs(
                baselines[one[0]]["pixels"][0].astype(int) - baselines[max(baselines)]["pixels"][0].astype(int)
            )
            print(f"eager image 0, batch {one[0]} vs batch {max(baselines)}: max pixel diff {diff.max()}", flush=True)
        make_fast_settings(pipe, setup, Path(tmp) / "compile-cache")
        run_side("fast", pipe, setup, flops, peak, deadline, baselines)
    print(f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (checks the code path)")
    parser.add_argument(
        "--budget-s", type=float, default=390, help="skip measurements that start after this many seconds"
    )
    args = parser.parse_args()
    main(args.smoke, args.budget_s)
