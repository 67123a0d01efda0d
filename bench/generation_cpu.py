"""Overhead of the `generate` job's code over a bare diffusers loop, on the demo's tiny pipeline, on the CPU.

Both sides do the same work: load the pipeline from disk, render the same prompts with the same per-image
seeds, batch size and steps, and store every image as a JPEG of the same quality (the bare loop as files, the
job as one chunk tar with per-image JSON, plus its stats). Runs alternate (job, bare, bare, job, ...) to
cancel drift; the last line is the median of the per-pair ratios job / bare.

    .venv/bin/python bench/generation_cpu.py [--images 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imagenet_sd.generate.generation import RUNTIME_KEYS, run_generate  # noqa: E402
from imagenet_sd.generate.tiny_pipeline import build_tiny_pipeline  # noqa: E402
from imagenet_sd.planning.clones import build_plan  # noqa: E402
from imagenet_sd.prompts.clip_tokenizer import build_clip_tokenizer  # noqa: E402
from imagenet_sd.prompts.prompts import plain_record  # noqa: E402
from imagenet_sd.seeds import image_seed  # noqa: E402

WNID = "n01440764"
TENCH = {"c": "tench", "d_c": "freshwater dace-like game fish of Europe"}
RECORD = plain_record(WNID, "bench", {"family": "c, d_c", "template": "{c}, {d_c}", "fields": TENCH})


def demo_generator() -> tuple[dict, dict]:
    """The demo config's `tiny` generator (schema defaults filled) and its pipeline's settings."""
    from snakemake.utils import validate

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    validate(config, str(ROOT / "schemas/config.schema.yaml"))
    return config, config["generators"]["tiny"]


def clocks() -> tuple[float, float]:
    """Wall time, and CPU time of this process (all threads): the second is steadier on a shared machine."""
    return time.perf_counter(), time.process_time()


def elapsed(since: tuple[float, float]) -> tuple[float, float]:
    now = clocks()
    return now[0] - since[0], now[1] - since[1]


def run_job(work: Path, model_dir: Path, prompt_file: Path, settings: dict, entry: dict, n: int) -> tuple[float, float]:
    started = clocks()
    run_generate(
        prompt_file=prompt_file,
        model_dir=str(model_dir),
        tar_path=work / "chunk.tar",
        stats_path=work / "chunk.json",
        generator="tiny",
        settings=settings,
        runtime={k: entry[k] for k in RUNTIME_KEYS},
        split="train",
        start=0,
        stop=n,
    )
    return elapsed(started)


def run_bare(work: Path, model_dir: Path, settings: dict, entry: dict, n: int) -> tuple[float, float]:
    """What a researcher would write: from_pretrained, call the pipeline per batch, save JPEGs."""
    from diffusers import StableDiffusionPipeline

    from imagenet_sd.prompts.prompts import image_prompt

    started = clocks()
    pipe = StableDiffusionPipeline.from_pretrained(model_dir, dtype=torch.float32, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    batch = entry["batch_size"]
    for first in range(0, n, batch):
        indices = range(first, min(first + batch, n))
        generators = [torch.Generator().manual_seed(image_seed(0, "tiny", "bench", WNID, "train", i)) for i in indices]
        images = pipe(
            [image_prompt(RECORD, "train", i) for i in indices],
            num_inference_steps=settings["steps"],
            guidance_scale=settings["guidance_scale"],
            height=settings["height"],
            width=settings["width"],
            generator=generators,
        ).images
        for i, image in zip(indices, images):
            image.save(work / f"{WNID}_{i:06d}.jpg", quality=settings["jpeg_quality"])
    return elapsed(started)


def main(images: int, repeats: int) -> float:
    config, entry = demo_generator()
    plan = build_plan(config, check_wnids=False)
    settings = plan.pixel_settings("tiny")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = build_tiny_pipeline(
            config["pipelines"]["tiny-sd"], build_clip_tokenizer(tmp / "tokenizer"), tmp / "tiny-sd"
        )
        prompt_file = tmp / f"{WNID}.json"
        prompt_file.write_text(json.dumps(RECORD))
        (tmp / "job").mkdir()
        (tmp / "bare").mkdir()
        job = lambda: run_job(tmp / "job", model_dir, prompt_file, settings, entry, images)  # noqa: E731
        bare = lambda: run_bare(tmp / "bare", model_dir, settings, entry, images)  # noqa: E731
        job(), bare()  # first calls pay one-off costs (imports, oneDNN kernel creation) on both sides
        wall, cpu = [], []
        for r in range(repeats):
            if r % 2 == 0:
                t_job, t_bare = job(), bare()
            else:
                t_bare, t_job = bare(), job()
            wall.append(t_job[0] / t_bare[0])
            cpu.append(t_job[1] / t_bare[1])
            print(
                f"pair {r}: job {t_job[0]:.2f} s (cpu {t_job[1]:.2f} s), bare {t_bare[0]:.2f} s "
                f"(cpu {t_bare[1]:.2f} s), wall ratio {wall[-1]:.3f}, cpu ratio {cpu[-1]:.3f}",
                flush=True,
            )
    ratio = statistics.median(wall)
    print(
        f"{images} images, batch {entry['batch_size']}, {settings['steps']} steps, "
        f"{settings['height']}x{settings['width']}, {torch.get_num_threads()} threads; "
        f"median cpu-time ratio {statistics.median(cpu):.3f}"
    )
    print(f"overhead ratio: {ratio:.3f}")
    return ratio


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16, help="images per run (one chunk)")
    parser.add_argument("--repeats", type=int, default=7, help="alternating (job, bare) pairs")
    args = parser.parse_args()
    main(args.images, args.repeats)
