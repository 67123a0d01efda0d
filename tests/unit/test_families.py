"""Generator families after SD 1.x (SD 2.x, SD-Turbo, SDXL, SDXL-Turbo, PixArt-alpha, SD3, FLUX.1-schnell)
as tiny random pipelines run by the real generate job: detection, the prompt cache, FLOPs against a profiler
count, config checks, the job's architecture check and keys."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_PIPELINE, toy_config
from snakemake.utils import validate
from test_generation import RECORD, WNID, generator_entry, job_arguments, read_chunk, run_chunk
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from imagenet_sd.config import ConfigError
from imagenet_sd.generate import generation as gen
from imagenet_sd.generate.chunks import ChunkIdentity
from imagenet_sd.generate.families import FAMILIES, detect_architecture
from imagenet_sd.generate.flops import flops_per_image
from imagenet_sd.generate.text2image import load_pipeline
from imagenet_sd.generate.tiny_pipeline import build_tiny_pipeline
from imagenet_sd.planning.adaptation import generator_family
from imagenet_sd.planning.clones import build_plan

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]
NEW = ("sd2", "sd-turbo", "sdxl", "sdxl-turbo", "pixart-alpha", "sd3", "flux-schnell")


def family_settings(family: str) -> dict:
    scheduler = (
        "EulerAncestralDiscrete" if family == "sdxl-turbo" else "EulerDiscrete" if family == "sd-turbo" else "DDIM"
    )
    return {**TINY_PIPELINE, "family": family, "scheduler": scheduler}


def sampling(family: str, **overrides) -> dict:
    """Pixel settings the family is made for: one step, Turbo and FLUX.1-schnell without guidance, the others
    guided; SD3 and FLUX with their own flow-matching scheduler."""
    turbo = FAMILIES[family].distilled
    own = {"scheduler": "default"} if FAMILIES[family].flow_matching else {}
    return {"steps": 1, "guidance_scale": 0.0 if turbo else 2.0, **own, **overrides}


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory, clip_tokenizer_dir, tiny_pipeline_dir) -> dict:
    root = tmp_path_factory.mktemp("families")
    built = {f: build_tiny_pipeline(family_settings(f), clip_tokenizer_dir, root / f) for f in NEW}
    return {"sd1": tiny_pipeline_dir, **built}


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / f"{WNID}.json"
    path.write_text(json.dumps(RECORD))
    return path


# Batch independence where the sampler differs (v-prediction DDIM; ancestral Euler draws noise every step);
# sd-turbo and sdxl share their architecture with those two and run one job each (a load is most of a job).
@pytest.mark.parametrize(
    ("family", "compare_batches"),
    [
        ("sd2", True),
        ("sd-turbo", False),
        ("sdxl", False),
        ("sdxl-turbo", True),
        ("pixart-alpha", True),
        ("sd3", True),
        ("flux-schnell", True),
    ],
)
def test_the_generate_job_runs_each_family_independently_of_batch_size(
    family, compare_batches, family_dirs, prompt_file, tmp_path
):
    model = family_dirs[family]
    assert detect_architecture(model) == FAMILIES[family].architecture
    assert json.loads((model / "model_index.json").read_text())["_class_name"] == FAMILIES[family].pipeline
    tar2, stats = run_chunk(tmp_path / "b2", model, prompt_file, stop=2, batch_size=2, **sampling(family))
    _, images2, metas2 = read_chunk(tar2)
    assert len(images2) == 2 and stats["images"] == 2
    assert stats["flops_per_image"]["passes_per_step"] == (1 if FAMILIES[family].distilled else 2)
    if compare_batches:
        tar1, _ = run_chunk(tmp_path / "b1", model, prompt_file, stop=2, batch_size=1, **sampling(family))
        _, images1, metas1 = read_chunk(tar1)
        assert metas1 == metas2
        for name in images2:
            assert np.abs(images1[name] - images2[name]).mean() < 0.5, name


@pytest.mark.parametrize("negative", ["", "blurry"])
@pytest.mark.parametrize("family", ["sdxl", "pixart-alpha", "sd3", "flux-schnell"])
def test_prompt_cache_gives_the_stock_calls_pixels(family, negative, family_dirs):
    if FAMILIES[family].distilled and negative:
        pytest.skip("a guidance-distilled model takes no negative prompt (the config check refuses it)")
    pipe = load_pipeline(str(family_dirs[family]), dtype="float32", device="cpu")
    settings = generator_entry(negative_prompt=negative, **sampling(family))
    tasks = [ChunkIdentity(RECORD, "tiny", "train").task(i) for i in range(2)]
    encoder = gen.PromptEncoder(pipe, settings)
    assert encoder.cached
    ours = gen.to_pixels(gen.render(pipe, tasks, settings, gen.DenoiseClock(pipe.device), encoder)).astype(int)
    stock = gen.PromptEncoder(pipe, settings, cache=False)
    theirs = gen.to_pixels(gen.render(pipe, tasks, settings, gen.DenoiseClock(pipe.device), stock)).astype(int)
    assert np.abs(ours - theirs).max() <= 1 and (ours != theirs).mean() < 1e-2


# A Turbo model has its base's architecture; FLUX.1-schnell is counted as made (1 pass, no negative prompt).
@pytest.mark.parametrize("family", ("sd1", "sd2", "sdxl", "pixart-alpha", "sd3", "flux-schnell"))
def test_flops_per_image_match_a_profiler_count_of_the_pipeline(family, family_dirs):
    """The model's count (denoiser x steps x passes + text encoders x passes + VAE decode) against every
    FLOP the profiler sees in one stock pipeline call for one image (a negative prompt: every pass encodes).
    Attention runs on SDPA's math backend: the profiler has no FLOP formula for the fused CPU kernel."""
    pipe = load_pipeline(str(family_dirs[family]), dtype="float32", device="cpu")
    assert type(pipe).__name__ == FAMILIES[family].pipeline
    turbo = FAMILIES[family].distilled
    settings = generator_entry(negative_prompt="" if turbo else "blurry", **sampling(family))
    counted = flops_per_image(pipe, settings)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        gen.render(
            pipe,
            [ChunkIdentity(RECORD, "t", "train").task(0)],
            settings,
            gen.DenoiseClock(pipe.device),
            gen.PromptEncoder(pipe, settings, cache=False),
        )
    assert counted["total"] == pytest.approx(counter.get_total_flops(), rel=1e-6)


def family_config(pipeline_family: str, **generator) -> dict:
    config = copy.deepcopy(toy_config())
    config["pipelines"]["tiny-sd"]["family"] = pipeline_family
    config["generators"]["tiny"].update(generator)
    validate(config, str(ROOT / "schemas/config.schema.yaml"))
    return config


def test_generator_key_changes_with_pixel_settings_only(monkeypatch):
    monkeypatch.chdir(ROOT)
    key = build_plan(family_config("sdxl-turbo", **sampling("sdxl-turbo"))).generator_key("tiny")
    faster = family_config("sdxl-turbo", batch_size=64, family="sdxl-turbo", **sampling("sdxl-turbo"))
    assert build_plan(faster).generator_key("tiny") == key
    assert build_plan(family_config("sdxl-turbo", **sampling("sdxl-turbo", steps=2))).generator_key("tiny") != key
    assert build_plan(family_config("sdxl", **sampling("sdxl-turbo"))).generator_key("tiny") != key
    assert build_plan(copy.deepcopy(toy_config())).generator_key("tiny") != key


@pytest.mark.parametrize(
    ("family", "setting", "key"),
    [
        ("sdxl-turbo", {"guidance_scale": 2.0}, "guidance_scale"),
        ("sd-turbo", {"guidance_scale": [0.0, 1.5]}, "guidance_scale"),
        ("sd-turbo", {"negative_prompt": "blurry"}, "negative_prompt"),
        ("sdxl-turbo", {"steps": 8}, "steps"),
        ("flux-schnell", {"guidance_scale": 3.5}, "guidance_scale"),
        ("flux-schnell", {"negative_prompt": "blurry"}, "negative_prompt"),
        ("flux-schnell", {"steps": 28}, "steps"),
        ("flux-schnell", {"scheduler": "EulerDiscrete"}, "scheduler"),
        ("sd3", {"scheduler": "DDIM"}, "scheduler"),
    ],
)
def test_what_a_family_cannot_do_is_refused_naming_the_key(family, setting, key, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError, match=rf"generators\.tiny\.{key}:"):
        build_plan(family_config(family, **{**sampling(family), **setting}))


def test_a_hub_id_or_the_generators_family_declares_a_turbo_model(monkeypatch):
    monkeypatch.chdir(ROOT)
    config = family_config("sd1")
    config["generators"]["hub"] = {**config["generators"]["tiny"], "model": "stabilityai/sdxl-turbo", "steps": 1}
    with pytest.raises(ConfigError, match=r"generators\.hub\.guidance_scale:"):
        build_plan(config)
    config["generators"]["hub"].update(model="/somewhere/my-sd-turbo", family="sd-turbo")
    with pytest.raises(ConfigError, match=r"generators\.hub\.guidance_scale:"):
        build_plan(config)
    config["generators"]["hub"].update(guidance_scale=0.0)
    build_plan(config)


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("stabilityai/stable-diffusion-3-medium-diffusers", "sd3"),
        ("stabilityai/stable-diffusion-3.5-medium", "sd3"),
        ("stabilityai/stable-diffusion-3.5-large", "sd3"),
        ("black-forest-labs/FLUX.1-schnell", "flux-schnell"),
    ],
)
def test_sd3_and_flux_hub_ids_are_checked_as_their_family(model, family, monkeypatch):
    """SD3 takes guidance but only its own scheduler; FLUX.1-schnell neither guidance nor more than 4 steps."""
    monkeypatch.chdir(ROOT)
    config = family_config("sd1")
    config["generators"]["hub"] = {**config["generators"]["tiny"], "model": model, **sampling(family, steps=4)}
    build_plan(config)
    config["generators"]["hub"]["scheduler"] = "DDIM"
    with pytest.raises(ConfigError, match=rf"generators\.hub\.scheduler: DDIM, but {family} samples by flow"):
        build_plan(config)
    config["generators"]["hub"].update(scheduler="default", guidance_scale=3.5, steps=28)
    if FAMILIES[family].distilled:
        with pytest.raises(ConfigError, match=r"generators\.hub\.guidance_scale: 3.5 > 1"):
            build_plan(config)
    else:
        build_plan(config)


def test_a_pixart_clone_needs_a_recipe_counting_its_120_tokens(monkeypatch):
    monkeypatch.chdir(ROOT)
    config = family_config("pixart-alpha")
    with pytest.raises(ConfigError, match=r"recipes\.c_dc\.max_tokens: 77.* reads 120 tokens"):
        build_plan(config)
    config["recipes"]["c_dc"]["max_tokens"] = 120
    build_plan(config)


@pytest.mark.parametrize(
    ("declared", "built", "theirs"), [("sdxl-turbo", "sd2", "sd2 or sd-turbo"), ("flux-schnell", "sd3", "sd3")]
)
def test_the_generate_job_refuses_a_pipeline_of_another_family(
    declared, built, theirs, family_dirs, prompt_file, tmp_path
):
    """The config checks ran against the declared family: a folder of another architecture stops the job
    before it loads, naming the generator and both families, and writes nothing."""
    arguments = job_arguments(tmp_path, family_dirs[built], prompt_file, stop=1, **sampling(declared))
    with pytest.raises(ConfigError, match=rf"generator tiny is declared family {declared} .* of family {theirs}:"):
        gen.run_generate(**arguments, family=declared)
    assert not list(tmp_path.iterdir())
    gen.run_generate(
        **job_arguments(tmp_path, family_dirs[built], prompt_file, stop=1, **sampling(built)), family=built
    )


def test_the_family_a_generate_job_checks_is_the_one_the_config_declares():
    config = family_config("sdxl")
    assert generator_family(config, "tiny") == "sdxl"
    assert generator_family(copy.deepcopy(toy_config()), "tiny") == "sd1"  # a tiny pipeline without `family`
    config["generators"]["hub"] = {**config["generators"]["tiny"], "model": "black-forest-labs/FLUX.1-schnell"}
    assert generator_family(config, "hub") == "flux-schnell"
    config["generators"]["hub"]["model"] = "/somewhere/a-pipeline"
    assert generator_family(config, "hub") is None
    config["generators"]["hub"]["family"] = "sd3"
    assert generator_family(config, "hub") == "sd3"
