"""Common random numbers (a generator's `common_noise`): ablation cells that differ only in guidance or in
recipe start each image from the same initial noise; off (the default), keys and seeds are those of before."""

import copy
import json

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, toy_config
from snakemake.utils import validate
from test_generation import RECORD, WNID, read_chunk

from imagenet_sd.generate import generation as gen
from imagenet_sd.generate.chunks import ChunkIdentity
from imagenet_sd.generate.text2image import load_pipeline
from imagenet_sd.planning.clones import build_plan

torch.set_num_threads(1)
SCHEMA = str(REPO / "schemas/config.schema.yaml")
# Generator keys of shipped configs as the code before `common_noise` computed them: their chunk files must
# keep their names (the rerun contract), so the setting's default must leave every key as it was.
OLD_KEYS = {
    "config.yaml": {"tiny": "tiny-aaee63f1"},
    "config/toy_imagenet.yaml": {"tiny": "tiny-aaee63f1"},
    "config/ablation_in100.yaml": {"sd14-g2": "sd14-g2-80129091", "sd14-g75": "sd14-g75-abc1d023"},
}
# A seed the code before `common_noise` gave image 3 of the tiny generator (attempts 0 and 2).
OLD_SEEDS = {0: 200193435896735570, 2: 7365312437969230653}
OTHER_RECIPE = {
    **RECORD,
    "recipe": "c_drawing",
    "recipes": {"c_drawing": {"family": "c", "template": "a drawing of a {c}", "fields": {"c": "tench"}}},
}


def guidance_ablation(common_noise: bool):
    """The demo config with two generators that differ only in guidance (2.0 and 7.5)."""
    config = copy.deepcopy(toy_config())
    tiny = {**config["generators"]["tiny"], "steps": 2, "height": 16, "width": 16, "common_noise": common_noise}
    config["generators"] = {"g2": tiny, "g75": {**tiny, "guidance_scale": 7.5}}
    for clone in config["clones"].values():
        if "generator" in clone:
            clone["generator"] = "g2"
    validate(config, SCHEMA)
    return build_plan(config, check_wnids=False)


@pytest.fixture(scope="module")
def pipe(tiny_pipeline_dir):
    return load_pipeline(str(tiny_pipeline_dir), dtype="float32", device="cpu")


def initial_latents(pipe, plan, generator: str, record: dict, split: str = "train", indices=(0, 1, 2)):
    """The latents the pipeline starts from for these images of a generate job of `generator`."""
    settings = plan.pixel_settings(generator)
    identity = ChunkIdentity.of_job(record, generator, split, settings)
    tasks = [identity.task(i) for i in indices]
    shape = (pipe.unet.config.in_channels, settings["height"], settings["width"])
    return pipe.prepare_latents(len(tasks), *shape, torch.float32, torch.device("cpu"), gen.noise_generators(tasks))


def test_with_common_noise_guidance_and_recipe_cells_start_from_the_same_noise(pipe):
    plan = guidance_ablation(common_noise=True)
    g2 = initial_latents(pipe, plan, "g2", RECORD)
    assert torch.equal(g2, initial_latents(pipe, plan, "g75", RECORD))
    assert torch.equal(g2, initial_latents(pipe, plan, "g75", OTHER_RECIPE))
    assert not torch.equal(g2[0], g2[1])  # each index its own noise
    assert not torch.equal(g2, initial_latents(pipe, plan, "g2", RECORD, split="heldout"))
    shifted = initial_latents(pipe, plan, "g75", RECORD, indices=(1, 2, 3))
    assert torch.equal(g2[1:], shifted[:2])  # keyed by the index, not by the position in a job


def test_without_common_noise_each_generator_and_recipe_draws_its_own_noise(pipe):
    plan = guidance_ablation(common_noise=False)
    g2 = initial_latents(pipe, plan, "g2", RECORD)
    assert not torch.equal(g2, initial_latents(pipe, plan, "g75", RECORD))
    assert not torch.equal(g2, initial_latents(pipe, plan, "g2", OTHER_RECIPE))


@pytest.mark.parametrize("configfile", sorted(OLD_KEYS))
def test_off_leaves_the_generator_keys_of_shipped_configs_as_they_were(configfile, monkeypatch):
    monkeypatch.chdir(REPO)
    config = yaml.safe_load((REPO / configfile).read_text())
    validate(config, SCHEMA)
    plan = build_plan(config, check_wnids=False)
    assert {name: plan.generator_key(name) for name in OLD_KEYS[configfile]} == OLD_KEYS[configfile]
    for name in OLD_KEYS[configfile]:
        config["generators"][name]["common_noise"] = True
        assert build_plan(config, check_wnids=False).generator_key(name) != OLD_KEYS[configfile][name]


def test_off_leaves_the_image_seeds_as_they_were():
    identity = ChunkIdentity.of_job(RECORD, "tiny", "train", {"common_noise": False})
    assert {attempt: identity.seed(3, attempt) for attempt in OLD_SEEDS} == OLD_SEEDS
    common = ChunkIdentity.of_job(RECORD, "tiny", "train", {"common_noise": True})
    assert all(common.seed(3, attempt) != seed for attempt, seed in OLD_SEEDS.items())


def test_generate_jobs_of_two_guidance_cells_record_the_same_seeds_and_differ_in_pixels(tmp_path, tiny_pipeline_dir):
    plan = guidance_ablation(common_noise=True)
    prompt_file = tmp_path / f"{WNID}.json"
    prompt_file.write_text(json.dumps(RECORD))
    chunks = {}
    for name in ("g2", "g75"):
        entry = plan.config["generators"][name]
        tar = tmp_path / plan.generator_key(name) / "000000-000002.tar"
        tar.parent.mkdir()
        gen.run_generate(
            prompt_file=prompt_file,
            model_dir=str(tiny_pipeline_dir),
            tar_path=tar,
            stats_path=tar.with_suffix(".json"),
            generator=name,
            settings=plan.pixel_settings(name),
            runtime={k: entry[k] for k in gen.RUNTIME_KEYS},
            split="train",
            start=0,
            stop=2,
        )
        chunks[name] = read_chunk(tar)[1:]
    (images2, metas2), (images75, metas75) = chunks["g2"], chunks["g75"]
    assert [m["seed"] for m in metas2.values()] == [m["seed"] for m in metas75.values()]
    assert all(m["settings"]["common_noise"] is True for m in metas2.values())
    assert any(not np.array_equal(images2[k], images75[k]) for k in images2)  # guidance still acts
