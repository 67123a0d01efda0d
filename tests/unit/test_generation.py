"""The generate job on a real (tiny, random) diffusers pipeline: chunk tars, determinism, retries, stats."""

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from snakemake.utils import validate

from imagenet_sd.generate import generation as gen
from imagenet_sd.generate.chunks import ChunkIdentity
from imagenet_sd.generate.flops import flops_per_image
from imagenet_sd.generate.sd14 import SD14_TEXT, SD14_UNET, SD14_VAE, SD_SCHEDULER_CONFIG, sd_pipeline_from_configs
from imagenet_sd.generate.text2image import SCHEDULERS, load_pipeline, scheduler_from_config
from imagenet_sd.planning.clones import PIXEL_KEYS
from imagenet_sd.prompts.prompts import plain_record
from imagenet_sd.runtime import sha256_file
from imagenet_sd.seeds import image_seed

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]
WNID = "n01440764"
RECORD = plain_record(WNID, "c_only", {"family": "c", "template": "a photo of a {c}", "fields": {"c": "tench"}})


def generator_entry(**overrides) -> dict:
    """A generator entry with the schema's defaults filled in, as Snakemake hands it to the script."""
    entry = {
        "model": "tiny",
        "steps": 3,
        "guidance_scale": 2.0,
        "height": 16,
        "width": 16,
        "dtype": "float32",
        "device": "cpu",
        "batch_size": 4,
        "channels_last": False,
        **overrides,
    }
    config = {"generators": {"tiny": entry}}
    validate(config, str(ROOT / "schemas/config.schema.yaml"))
    return config["generators"]["tiny"]


def test_each_scheduler_the_schema_allows_is_the_diffusers_class_of_its_name_and_another_is_an_error():
    """A generator's `scheduler: X` loads diffusers' XScheduler with the pipeline's noise schedule."""
    schema = yaml.safe_load((ROOT / "schemas/config.schema.yaml").read_text())
    allowed = schema["properties"]["generators"]["additionalProperties"]["properties"]["scheduler"]["enum"]
    assert sorted(allowed) == sorted([*SCHEDULERS, "default"])
    for name in SCHEDULERS:
        scheduler = scheduler_from_config(name, SD_SCHEDULER_CONFIG)
        assert type(scheduler).__name__ == f"{name}Scheduler"
        assert scheduler.config.beta_end == SD_SCHEDULER_CONFIG["beta_end"]
    with pytest.raises(ValueError, match="unknown scheduler 'Euler'; known: DDIM, PNDM"):
        scheduler_from_config("Euler", SD_SCHEDULER_CONFIG)


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / f"{WNID}.json"
    path.write_text(json.dumps(RECORD))
    return path


def job_arguments(out: Path, model_dir, prompt_file, start=0, stop=4, **overrides) -> dict:
    """run_generate's arguments, as the generate rule's script passes them."""
    entry = generator_entry(**overrides)
    stem = out / f"{start:06d}-{stop:06d}"
    return {
        "prompt_file": str(prompt_file),
        "model_dir": str(model_dir),
        "tar_path": f"{stem}.tar",
        "stats_path": f"{stem}.json",
        "generator": "tiny",
        "settings": {**{k: entry[k] for k in PIXEL_KEYS}, "seed": 0},
        "runtime": {k: entry[k] for k in gen.RUNTIME_KEYS},
        "split": "train",
        "start": start,
        "stop": stop,
    }


def run_chunk(out: Path, model_dir, prompt_file, start=0, stop=4, **overrides) -> tuple[Path, dict]:
    arguments = job_arguments(out, model_dir, prompt_file, start, stop, **overrides)
    return Path(arguments["tar_path"]), gen.run_generate(**arguments)


def read_chunk(tar: Path) -> tuple[list[tarfile.TarInfo], dict, dict]:
    with tarfile.open(tar) as t:
        members = t.getmembers()
        data = {m.name: t.extractfile(m).read() for m in members}
    images = {n: np.asarray(Image.open(io.BytesIO(b))).astype(int) for n, b in data.items() if n.endswith(".jpg")}
    metas = {n: json.loads(b) for n, b in data.items() if n.endswith(".json")}
    return members, images, metas


@pytest.fixture(scope="module")
def chunk_b4(tiny_pipeline_dir, prompt_file, tmp_path_factory):
    return run_chunk(tmp_path_factory.mktemp("b4"), tiny_pipeline_dir, prompt_file, batch_size=4)


def test_batch_size_changes_pixels_by_one_rounding_step_at_most(tiny_pipeline_dir, prompt_file):
    pipe = load_pipeline(str(tiny_pipeline_dir), dtype="float32", device="cpu")
    identity = ChunkIdentity(RECORD, "tiny", "train")
    tasks = [identity.task(i) for i in range(4)]
    settings = generator_entry()
    one = np.concatenate(
        [gen.to_pixels(gen.render(pipe, [t], settings, gen.DenoiseClock(pipe.device))) for t in tasks]
    ).astype(int)
    four = gen.to_pixels(gen.render(pipe, tasks, settings, gen.DenoiseClock(pipe.device))).astype(int)
    # Same seeds and prompts; only the kernels' summation order differs with the batch (float32 outputs agree
    # to ~1e-6), which can flip the 8-bit rounding of a value lying that close to a boundary: by one level.
    assert np.abs(one - four).max() <= 1
    assert (one != four).mean() < 1e-3


@pytest.mark.parametrize("negative", ["", "blurry"])
def test_each_distinct_prompt_is_encoded_once_per_job_and_pixels_match_the_stock_call(tiny_pipeline_dir, negative):
    """Two classes' prompts over three batches: the text encoder runs for each distinct prompt and for the
    negative one once, where the stock call encodes every image's prompt and negative prompt each batch.
    The pixels are the stock call's up to one rounding level (the encoder's batch differs)."""
    pipe = load_pipeline(str(tiny_pipeline_dir), dtype="float32", device="cpu")
    calls = []
    hook = pipe.text_encoder.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    other = {**RECORD, "recipes": {"c_only": {**RECORD["recipes"]["c_only"], "fields": {"c": "goldfish"}}}}
    tasks = [ChunkIdentity(r, "tiny", "train").task(i) for r in (RECORD, other) for i in range(3)]
    settings = generator_entry(negative_prompt=negative)
    try:
        encoder = gen.PromptEncoder(pipe, settings)
        cached = [
            gen.render(pipe, batch, settings, gen.DenoiseClock(pipe.device), encoder) for batch in gen.batches(tasks, 2)
        ]
        assert calls == [1, 1, 1], calls  # "a photo of a tench", the negative (or empty) prompt, "... goldfish"
        calls.clear()
        stock = pipe(
            prompt=[t.prompt for t in tasks],
            negative_prompt=[negative] * len(tasks) if negative else None,  # ("" is unconditional)
            num_inference_steps=settings["steps"],
            guidance_scale=settings["guidance_scale"],
            height=settings["height"],
            width=settings["width"],
            generator=gen.noise_generators(tasks),
            output_type="pt",
        ).images
        assert calls == [6, 6]  # the stock call: every image's prompt, and its negative prompt
    finally:
        hook.remove()
    ours = gen.to_pixels(torch.cat(cached)).astype(int)
    theirs = gen.to_pixels(stock).astype(int)
    assert np.abs(ours - theirs).max() <= 1 and (ours != theirs).mean() < 1e-3


def test_chunk_with_batch_1_equals_batch_4_up_to_jpeg_rounding(chunk_b4, tiny_pipeline_dir, prompt_file, tmp_path):
    tar1, _ = run_chunk(tmp_path, tiny_pipeline_dir, prompt_file, batch_size=1)
    members1, images1, metas1 = read_chunk(tar1)
    members4, images4, metas4 = read_chunk(chunk_b4[0])
    assert [m.name for m in members1] == [m.name for m in members4]
    assert metas1 == metas4  # prompts, seeds, attempts: exact
    for name in images4:
        diff = np.abs(images1[name] - images4[name])
        # Raw pixels differ by at most one level (test above). A one-level change of one input pixel moves each
        # DCT coefficient of its 8x8 block by at most 1/4, so at most one quantisation step after rounding; at
        # quality 90 the steps are <= 24 (PIL's tables x 0.2), each adding <= step/4 = 6 levels to a decoded
        # pixel, plus the colour transform (x 1.8 for chroma). So: equal almost everywhere, bounded where not.
        assert diff.mean() < 0.5, name
        assert diff.max() <= 32, name


def test_tar_is_ordered_and_byte_identical_across_runs(chunk_b4, tiny_pipeline_dir, prompt_file, tmp_path):
    tar, _ = chunk_b4
    again, _ = run_chunk(tmp_path, tiny_pipeline_dir, prompt_file, batch_size=4)
    assert tar.read_bytes() == again.read_bytes()
    members, images, metas = read_chunk(tar)
    expected = [f"{WNID}_{i:06d}.{ext}" for i in range(4) for ext in ("jpg", "json")]
    assert [m.name for m in members] == expected
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == "" for m in members)
    meta = metas[f"{WNID}_000002.json"]
    assert meta["prompt"] == "a photo of a tench" and meta["index"] == 2 and meta["attempt"] == 0
    assert meta["seed"] == image_seed(0, "tiny", "c_only", WNID, "train", 2)
    assert meta["split"] == "train" and meta["wnid"] == WNID and meta["class_key"] == WNID
    assert meta["generator"] == "tiny" and meta["settings"]["steps"] == 3 and meta["failed"] is None
    assert images[f"{WNID}_000002.jpg"].shape == (16, 16, 3)
    assert not list(tar.parent.glob(".*partial"))


def test_stats_fields_are_present_and_sane(chunk_b4):
    tar, stats = chunk_b4
    assert json.loads(tar.with_suffix(".json").read_text()) == stats
    assert stats["images"] == 4 and stats["start"] == 0 and stats["stop"] == 4 and stats["split"] == "train"
    assert stats["failures"] == {"black": 0, "nan": 0} and stats["regenerated"] == 0 and stats["unresolved"] == 0
    seconds = stats["seconds"]
    assert set(seconds) == {"load", "warmup", "denoise", "decode", "write", "total"}
    assert all(v >= 0 for v in seconds.values()) and seconds["denoise"] > 0 and seconds["load"] > 0
    assert sum(v for k, v in seconds.items() if k != "total") <= seconds["total"] + 1e-3
    assert stats["images_per_second"] == pytest.approx(4 / seconds["total"], rel=1e-2)
    assert stats["device"] == "cpu" and stats["peak_memory_bytes"] > 0
    flops = stats["flops_per_image"]
    assert flops["passes_per_step"] == 2 and flops["steps"] == 3
    assert flops["total"] == 2 * (3 * flops["unet_forward"] + flops["text_encoder"]) + flops["vae_decode"] > 0
    assert stats["achieved_tflops"] > 0 and stats["mfu"] is None  # no tensor-core peak for a CPU
    assert {"torch", "diffusers", "transformers"} <= set(stats["versions"])
    assert stats["model"] == "tiny" and stats["revision"] is None
    assert stats["tar_sha256"] == sha256_file(tar) and stats["tar_bytes"] == tar.stat().st_size


def modified_pipeline(tiny_pipeline_dir, dest: Path, edit) -> Path:
    """The tiny pipeline with an edit to the VAE decoder's last layer, saved as a real pipeline folder."""
    pipe = load_pipeline(str(tiny_pipeline_dir), dtype="float32", device="cpu")
    with torch.no_grad():
        edit(pipe.vae.decoder.conv_out)
    pipe.save_pretrained(dest)
    return dest


@pytest.mark.parametrize("kind,bias", [("black", -10.0), ("nan", float("nan"))])
def test_images_failing_every_attempt_are_counted_and_flagged(kind, bias, tiny_pipeline_dir, prompt_file, tmp_path):
    broken = modified_pipeline(
        tiny_pipeline_dir, tmp_path / "broken", lambda conv: (conv.weight.zero_(), conv.bias.fill_(bias))
    )
    tar, stats = run_chunk(tmp_path, broken, prompt_file, stop=2, max_retries=2)
    assert stats["failures"][kind] == 2 * 3 and stats["regenerated"] == 2 * 2 and stats["unresolved"] == 2
    _, _, metas = read_chunk(tar)
    meta = metas[f"{WNID}_000001.json"]
    assert meta["failed"] == kind and meta["attempt"] == 2
    assert meta["seed"] == image_seed(0, "tiny", "c_only", WNID, "train", 1, attempt=2)


def raw_decoder_max(pipe, task, settings) -> float:
    """Largest value the VAE decoder outputs for this image before clamping (black = all below -1)."""
    latents = pipe(
        task.prompt,
        num_inference_steps=settings["steps"],
        guidance_scale=settings["guidance_scale"],
        height=16,
        width=16,
        generator=gen.noise_generators([task]),
        output_type="latent",
    ).images
    return pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample.max().item()


def test_black_image_is_redrawn_with_the_next_seed(tiny_pipeline_dir, prompt_file, tmp_path):
    pipe = load_pipeline(str(tiny_pipeline_dir), dtype="float32", device="cpu")
    identity, settings = ChunkIdentity(RECORD, "tiny", "train"), generator_entry()
    with torch.no_grad():
        for index in range(8):
            first, second = identity.task(index), identity.task(index, attempt=1)
            m0, m1 = raw_decoder_max(pipe, first, settings), raw_decoder_max(pipe, second, settings)
            if m1 - m0 > 0.05:
                break
        else:
            pytest.skip("no image whose second draw is brighter than its first among the first 8")
    # Shift the decoder's output so that this image's first draw is all below -1 (black after clamping) and
    # its second draw is not: blackness now depends on the seed, as a safety checker's blanking does.
    shift = (m0 + m1) / 2 + 1
    darker = modified_pipeline(tiny_pipeline_dir, tmp_path / "darker", lambda conv: conv.bias.sub_(shift))
    tar, stats = run_chunk(tmp_path, darker, prompt_file, start=index, stop=index + 1)
    assert stats["failures"]["black"] == 1 and stats["regenerated"] == 1 and stats["unresolved"] == 0
    _, _, metas = read_chunk(tar)
    meta = metas[f"{WNID}_{index:06d}.json"]
    assert meta["attempt"] == 1 and meta["failed"] is None and meta["seed"] == second.seed


KILLED_JOB = (
    "import json, sys; from imagenet_sd.generate.generation import run_generate; "
    "run_generate(**json.loads(sys.argv[1]))"
)


def test_killed_job_leaves_no_final_tar(tiny_pipeline_dir, prompt_file, tmp_path):
    kwargs = job_arguments(tmp_path, tiny_pipeline_dir, prompt_file, start=0, stop=500, batch_size=1)
    tar = Path(kwargs["tar_path"])
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    job = subprocess.Popen(
        [sys.executable, "-c", KILLED_JOB, json.dumps(kwargs)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size > 0 for p in tmp_path.glob(".*partial")):  # a member is being written
            assert job.poll() is None and time.monotonic() < deadline, "the job ended before it could be killed"
            time.sleep(0.05)
        job.send_signal(signal.SIGKILL)
        job.wait()
    finally:
        if job.poll() is None:
            job.kill()
    assert not tar.exists() and not tar.with_suffix(".json").exists()


def test_flop_count_of_sd14_matches_the_papers_arithmetic(clip_tokenizer_dir):
    """SD v1.4 (the GPU bench's configs, built on the meta device): ~0.8 TFLOP per UNet pass, ~83 per image."""
    pipe = sd_pipeline_from_configs(SD14_UNET, SD14_VAE, SD14_TEXT, clip_tokenizer_dir, device="meta")
    flops = flops_per_image(pipe, {"height": 512, "width": 512, "steps": 50, "guidance_scale": 7.5})
    assert flops["unet_forward"] == pytest.approx(0.80e12, rel=0.02)
    assert flops["total"] == pytest.approx(83e12, rel=0.02)


FULL_DISK_JOB = """
import json, sys
from imagenet_sd.generate.generation import run_generate
from imagenet_sd.runtime import DiskFull, one_line_errors, setup_logging
setup_logging(None)
with one_line_errors(DiskFull):  # as the generate rule's script runs it
    run_generate(**json.loads(sys.argv[1]))
"""


def test_a_full_disk_fails_the_job_naming_the_chunk_and_leaves_no_partial_file(
    chunk_b4, tiny_pipeline_dir, prompt_file, small_disk
):
    kwargs = job_arguments(small_disk.folder, tiny_pipeline_dir, prompt_file, start=0, stop=4)
    tar = Path(kwargs["tar_path"])
    assert chunk_b4[0].stat().st_size > small_disk.size  # the chunk does not fit
    job = small_disk.run(FULL_DISK_JOB, json.dumps(kwargs))
    assert job.returncode == 1 and "Traceback" not in job.stderr
    message = job.stderr.strip().splitlines()[-1]
    assert f"ERROR imagenet_sd: cannot write {tar}: " in message and small_disk.reason in message
    assert list(small_disk.folder.iterdir()) == []  # no tar, no stats, no partial file
    small_disk.grow()  # space freed: the same job writes the chunk a run with room writes
    assert small_disk.run(FULL_DISK_JOB, json.dumps(kwargs)).returncode == 0
    assert tar.read_bytes() == chunk_b4[0].read_bytes()
