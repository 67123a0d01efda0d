"""Adapting a generator on real images in the workflow (issue 22), with the real Snakemake on a tiny config:
scikit-learn's digits packed as a real clone -> adapt -> generate from the adapted pipeline."""

import contextlib
import copy
import json
import tarfile

import pytest
import torch
from conftest import REPO, copy_workflow, planned_jobs, run_snakemake, write_config
from test_adaptation_keys import TINY_CONFIG, plan_of

from imagenet_sd import paths
from imagenet_sd.planning.adaptation import adaptation_key, adapted_folder
from imagenet_sd.train.adapt_job import run_adapt
from imagenet_sd.train.lora import LORA_WEIGHTS
from imagenet_sd.train.resume import TrainingStopped

torch.set_num_threads(1)
# Three digits (a prompts job each); the real clone's folder holds all ten.
FEW_DIGITS = "config/sheets/digits3.tsv"
WORKFLOW_CONFIG = {**TINY_CONFIG, "class_sets": {"digits": {"sheet": FEW_DIGITS}}}


def plan_in(workdir, config: dict):
    with contextlib.chdir(workdir):  # the class sheet's path is relative to the workflow's folder
        return plan_of(config)


def first_chunk(workdir, config: dict) -> str:
    """The chunk of images [0, 2) of the first digit that the adapted generator writes."""
    plan = plan_in(workdir, config)
    entry = plan.clones["digits"].classes[0]
    return paths.chunk(plan.generator_key("adapted"), plan.recipe_key("c_dc"), "train", entry.key, 0, 2)


def adapted_folders(workdir) -> list[str]:
    return sorted(p.name for p in (workdir / "results/adapted").iterdir())


@pytest.fixture(scope="module")
def adapted_run(tmp_path_factory):
    """The tiny config run to one chunk of the adapted generator (packing, prompts, adapting on the way) and
    the adaptation's loss curves for the report."""
    workdir = copy_workflow(tmp_path_factory.mktemp("adapt"), WORKFLOW_CONFIG)
    sheet = (REPO / "config/sheets/digits.tsv").read_text().splitlines()
    (workdir / FEW_DIGITS).write_text("\n".join(sheet[:4]) + "\n")
    chunk = first_chunk(workdir, WORKFLOW_CONFIG)
    key = adaptation_key(plan_in(workdir, WORKFLOW_CONFIG), "digits")
    run_snakemake(workdir, chunk, f"results/report/adaptations/{key}/losses.png")
    return workdir, chunk


def test_adapt_then_generate_from_the_adapted_pipeline(adapted_run):
    workdir, chunk = adapted_run
    (folder,) = adapted_folders(workdir)
    adapted = workdir / "results/adapted" / folder
    assert json.loads((adapted / "model_index.json").read_text())["_class_name"] == "StableDiffusionPipeline"
    curve = [json.loads(line) for line in (adapted / "losses.jsonl").read_text().splitlines()]
    assert [(c["phase"], c["step"]) for c in curve] == [("vae", 1), ("vae", 2), ("unet", 1), ("unet", 2)]
    assert not list(adapted.glob("*.resume.pt"))  # removed once the pipeline is saved
    assert (workdir / "results/report/adaptations" / folder / "losses.png").stat().st_size > 0
    stats = json.loads((workdir / chunk).with_suffix(".json").read_text())
    assert stats["model"] == f"results/adapted/{folder}"
    with tarfile.open(workdir / chunk) as tar:
        assert len([n for n in tar.getnames() if n.endswith(".jpg")]) == 2
    assert planned_jobs(workdir, chunk) == {}  # a rerun schedules nothing


@pytest.mark.parametrize("change", [{"unet_steps": 3}, {"vae_steps": 0, "lora": {"rank": 2}}], ids=["full", "lora"])
def test_other_settings_adapt_beside_and_the_first_stay_valid(adapted_run, change):
    workdir, first = adapted_run
    folders = adapted_folders(workdir)
    plan = plan_in(workdir, WORKFLOW_CONFIG)
    weights = workdir / adapted_folder(plan, "digits") / "unet/diffusion_pytorch_model.safetensors"
    before = weights.read_bytes()
    other = copy.deepcopy(WORKFLOW_CONFIG)
    other["adaptations"]["digits"].update(change)
    write_config(workdir, other)
    second = first_chunk(workdir, other)
    assert second != first
    assert planned_jobs(workdir, second) == {"adapt": 1, "generate": 1}
    run_snakemake(workdir, second)
    (new,) = set(adapted_folders(workdir)) - set(folders)
    assert weights.read_bytes() == before
    assert (workdir / "results/adapted" / new / LORA_WEIGHTS).is_file() == ("lora" in change)
    write_config(workdir, WORKFLOW_CONFIG)
    assert planned_jobs(workdir, first) == {}


FULL = {"vae_steps": 2, "unet_steps": 2, "batch_size": 8}
LORA = {"unet_steps": 3, "batch_size": 8, "lora": {"rank": 2, "dropout": 0.1}}  # the base VAE kept


@pytest.mark.parametrize("settings, stop_after", [(FULL, 3), (LORA, 2)], ids=["full", "lora"])  # in the UNet phase
def test_a_stopped_adaptation_resumes_to_the_weights_of_one_straight_through(
    adapted_run, tmp_path, settings, stop_after
):
    workdir, _ = adapted_run
    plan = plan_in(workdir, WORKFLOW_CONFIG)
    job = {
        "base_dir": str(workdir / "resources/pipelines/digits8"),
        "index": str(workdir / paths.SHARD_INDEX.format(clone="digits")),
        "shards_dir": str(workdir / paths.SHARDS.format(clone="digits")),
        "prompt_files": [
            str(workdir / paths.PROMPTS.format(recipe_key=plan.recipe_key("c_dc"), ckey=e.key))
            for e in plan.clones["digits"].classes
        ],
        "classes": [e.wnid for e in plan.clones["digits"].classes],
        "images_per_class": 3,
        "settings": settings,
        "device": "cpu",
    }
    straight, out = tmp_path / "straight", tmp_path / "resumed"
    run_adapt(**job, out_dir=str(straight), losses=str(straight / "losses.jsonl"))
    with pytest.raises(TrainingStopped):
        run_adapt(**job, out_dir=str(out), losses=str(out / "losses.jsonl"), stop_after=stop_after)
    assert (out / "adapt.resume.pt").is_file() and not (out / "model_index.json").exists()
    run_adapt(**job, out_dir=str(out), losses=str(out / "losses.jsonl"))
    assert not (out / "adapt.resume.pt").exists()
    assert (out / "losses.jsonl").read_text() == (straight / "losses.jsonl").read_text()
    for name in ["unet/diffusion_pytorch_model.safetensors", *([LORA_WEIGHTS] if "lora" in settings else [])]:
        assert (out / name).read_bytes() == (straight / name).read_bytes(), name


def test_a_lora_adaptation_writes_an_ordinary_pipeline_and_its_lora_beside(adapted_run, tmp_path):
    """The folder loads and generates as any pipeline; the VAE is the base's byte for byte."""
    from diffusers import StableDiffusionPipeline

    workdir, _ = adapted_run
    plan = plan_in(workdir, WORKFLOW_CONFIG)
    base = workdir / "resources/pipelines/digits8"
    run_adapt(
        base_dir=str(base),
        index=str(workdir / paths.SHARD_INDEX.format(clone="digits")),
        shards_dir=str(workdir / paths.SHARDS.format(clone="digits")),
        prompt_files=[
            str(workdir / paths.PROMPTS.format(recipe_key=plan.recipe_key("c_dc"), ckey=e.key))
            for e in plan.clones["digits"].classes
        ],
        classes=[e.wnid for e in plan.clones["digits"].classes],
        images_per_class=3,
        settings=LORA,
        out_dir=str(tmp_path / "lora"),
        losses=str(tmp_path / "lora" / "losses.jsonl"),
        device="cpu",
    )
    assert (tmp_path / "lora" / LORA_WEIGHTS).stat().st_size > 0
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / "lora")
    assert not getattr(pipe.unet, "peft_config", None)
    vae = "vae/diffusion_pytorch_model.safetensors"
    assert (tmp_path / "lora" / vae).read_bytes() == (base / vae).read_bytes()
    images = pipe(["zero"], height=8, width=8, num_inference_steps=2, output_type="np").images
    assert images.shape == (1, 8, 8, 3)
