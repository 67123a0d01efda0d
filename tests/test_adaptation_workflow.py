"""Adapting a generator on real images in the workflow (issue 22): keys, config errors, and the real Snakemake
on a tiny config: scikit-learn's digits packed as a real clone -> adapt -> generate from the adapted pipeline."""

import contextlib
import copy
import io
import json
import tarfile

import pytest
import torch
import yaml
from conftest import REPO, copy_workflow, planned_jobs, run_snakemake, write_config
from PIL import Image
from snakemake.utils import validate
from test_common_noise import OLD_KEYS

from imagenet_sd import paths
from imagenet_sd.adapt_job import check_prompt_files, pick_per_class, run_adapt, training_set
from imagenet_sd.config import ConfigError
from imagenet_sd.plan import build_plan
from imagenet_sd.prompts import image_prompt
from imagenet_sd.resume import TrainingStopped

torch.set_num_threads(1)

SCHEMA = str(REPO / "schemas/config.schema.yaml")
# The digits' own size: an 8x8 latent through a one-level VAE, 8x8 pixels (tests/test_adaptation.py).
DIGITS8 = {"seed": 0, "sample_size": 8, "unet_channels": [32, 64], "vae_channels": [32], "text_hidden": 32}
ADAPTATION = {
    "model": "resources/pipelines/digits8",
    "clone": "digits",
    "recipe": "c_dc",
    "images_per_class": 3,
    "vae_steps": 2,
    "unet_steps": 2,
    "batch_size": 8,
}
ADAPTED_GENERATOR = {
    "adaptation": "digits",
    "scheduler": "DDIM",
    "steps": 2,
    "guidance_scale": 2.0,
    "height": 8,
    "width": 8,
    "dtype": "float32",
    "chunk_size": 2,
    "batch_size": 2,
    "channels_last": False,
    "device": "cpu",
}
TINY_CONFIG = {
    "seed": 0,
    "class_sets": {"digits": {"sheet": "config/sheets/digits.tsv"}},
    "recipes": {"c_dc": {"family": "c, d_c"}},
    "pipelines": {"digits8": DIGITS8},
    "adaptations": {"digits": ADAPTATION},
    "generators": {"adapted": ADAPTED_GENERATOR},
    "clones": {
        "digits": {
            "class_set": "digits",
            "path": "resources/datasets/sklearn-digits",
            "images_per_class": 4,
            "heldout_per_class": 2,
            "shard_size": 16,
        },
    },
}


# The workflow test's: three digits (a prompts job each), the real clone's folder holds all ten.
FEW_DIGITS = "config/sheets/digits3.tsv"
WORKFLOW_CONFIG = {**TINY_CONFIG, "class_sets": {"digits": {"sheet": FEW_DIGITS}}}


def plan_of(config: dict):
    config = copy.deepcopy(config)
    validate(config, SCHEMA)
    return build_plan(config, check_wnids=False)


def with_adaptation(config: dict, **changes) -> dict:
    """`config` plus the digits adaptation (its entry changed by `changes`) and a generator adapted by it."""
    config = copy.deepcopy(config)
    config["class_sets"]["digits"] = {"sheet": "config/sheets/digits.tsv"}
    config["clones"]["digits"] = TINY_CONFIG["clones"]["digits"]
    config["recipes"]["c_dc"] = {"family": "c, d_c"}
    config.setdefault("pipelines", {})["digits8"] = DIGITS8
    config["adaptations"] = {"digits": {**ADAPTATION, **changes}}
    config["generators"]["adapted"] = ADAPTED_GENERATOR
    return config


@pytest.mark.parametrize("configfile", sorted(OLD_KEYS))
def test_generators_without_adaptation_keep_their_keys(configfile, monkeypatch):
    monkeypatch.chdir(REPO)
    config = with_adaptation(yaml.safe_load((REPO / configfile).read_text()))
    plan = plan_of(config)
    keys = {name: plan.generator_key(name) for name in OLD_KEYS[configfile]}
    assert keys == OLD_KEYS[configfile]
    assert plan.generator_key("adapted") not in keys.values()


@pytest.mark.parametrize(
    "change",
    [
        {"unet_steps": 3},
        {"seed": 1},
        {"images_per_class": None},
        {"recipe": "c"},
        {"model": "resources/pipelines/other8"},
    ],
)
def test_what_sets_the_weights_enters_the_adapted_generators_key(change, monkeypatch):
    monkeypatch.chdir(REPO)
    config = copy.deepcopy(TINY_CONFIG)
    config["recipes"]["c"] = {"family": "c"}
    config["pipelines"]["other8"] = {**DIGITS8, "seed": 1}
    before = plan_of(config).generator_key("adapted")
    config["adaptations"]["digits"].update(change)
    assert plan_of(config).generator_key("adapted") != before


def test_the_real_clones_images_enter_the_key_and_runtime_settings_do_not(monkeypatch):
    monkeypatch.chdir(REPO)
    config = copy.deepcopy(TINY_CONFIG)
    before = plan_of(config).generator_key("adapted")
    config["clones"]["digits"]["heldout_per_class"] = 3  # other train images
    assert plan_of(config).generator_key("adapted") != before
    config = copy.deepcopy(TINY_CONFIG)
    config["adaptations"]["digits"].update(save_every=1, device="cpu")
    assert plan_of(config).generator_key("adapted") == before


@pytest.mark.parametrize(
    "change, named",
    [
        ({"adaptations": {"digits": {**ADAPTATION, "clone": "nope"}}}, "adaptations.digits.clone"),
        ({"adaptations": {"digits": {**ADAPTATION, "recipe": "nope"}}}, "adaptations.digits.recipe"),
        ({"generators": {"adapted": {**ADAPTED_GENERATOR, "adaptation": "nope"}}}, "generators.adapted.adaptation"),
    ],
)
def test_a_bad_reference_is_an_error_naming_its_key(change, named, monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        plan_of({**TINY_CONFIG, **change})


def test_a_synthetic_clone_cannot_be_adapted_on(monkeypatch):
    monkeypatch.chdir(REPO)
    config = copy.deepcopy(TINY_CONFIG)
    config["generators"]["tiny"] = {**ADAPTED_GENERATOR, "adaptation": None, "model": "resources/pipelines/digits8"}
    del config["generators"]["tiny"]["adaptation"]
    config["clones"]["fake"] = {"class_set": "digits", "recipe": "c_dc", "generator": "tiny", "images_per_class": 2}
    config["adaptations"]["digits"]["clone"] = "fake"
    with pytest.raises(ConfigError, match=r"adaptations\.digits\.clone: 'fake' is a synthetic clone"):
        plan_of(config)


def first_chunk(workdir, config: dict) -> str:
    """The chunk of images [0, 2) of the first digit that the adapted generator writes."""
    with contextlib.chdir(workdir):  # the class sheet's path is relative to the workflow's folder
        plan = plan_of(config)
    entry = plan.clones["digits"].classes[0]
    return paths.chunk(plan.generator_key("adapted"), plan.recipe_key("c_dc"), "train", entry.key, 0, 2)


def adapted_folders(workdir) -> list[str]:
    return sorted(p.name for p in (workdir / "results/adapted").iterdir())


@pytest.fixture(scope="module")
def adapted_run(tmp_path_factory):
    """The tiny config run to one chunk of the adapted generator (packing, prompts, adapting on the way)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("adapt"), WORKFLOW_CONFIG)
    sheet = (REPO / "config/sheets/digits.tsv").read_text().splitlines()
    (workdir / FEW_DIGITS).write_text("\n".join(sheet[:4]) + "\n")
    chunk = first_chunk(workdir, WORKFLOW_CONFIG)
    run_snakemake(workdir, chunk)
    return workdir, chunk


def test_adapt_then_generate_from_the_adapted_pipeline(adapted_run):
    workdir, chunk = adapted_run
    (folder,) = adapted_folders(workdir)
    adapted = workdir / "results/adapted" / folder
    assert json.loads((adapted / "model_index.json").read_text())["_class_name"] == "StableDiffusionPipeline"
    curve = [json.loads(line) for line in (adapted / "losses.jsonl").read_text().splitlines()]
    assert [(c["phase"], c["step"]) for c in curve] == [("vae", 1), ("vae", 2), ("unet", 1), ("unet", 2)]
    assert not list(adapted.glob("*.resume.pt"))  # removed once the pipeline is saved
    stats = json.loads((workdir / chunk).with_suffix(".json").read_text())
    assert stats["model"] == f"results/adapted/{folder}"
    with tarfile.open(workdir / chunk) as tar:
        assert len([n for n in tar.getnames() if n.endswith(".jpg")]) == 2
    assert planned_jobs(workdir, chunk) == {}  # a rerun schedules nothing


def test_other_settings_adapt_beside_and_the_first_stay_valid(adapted_run):
    workdir, first = adapted_run
    (folder,) = adapted_folders(workdir)
    weights = workdir / "results/adapted" / folder / "unet/diffusion_pytorch_model.safetensors"
    before = weights.read_bytes()
    other = copy.deepcopy(WORKFLOW_CONFIG)
    other["adaptations"]["digits"]["unet_steps"] = 3
    write_config(workdir, other)
    second = first_chunk(workdir, other)
    assert second != first
    assert planned_jobs(workdir, second) == {"adapt": 1, "generate": 1}
    run_snakemake(workdir, second)
    assert len(adapted_folders(workdir)) == 2 and weights.read_bytes() == before
    write_config(workdir, WORKFLOW_CONFIG)
    assert planned_jobs(workdir, first) == {}


def test_a_stopped_adaptation_resumes_to_the_weights_of_one_straight_through(adapted_run, tmp_path):
    workdir, _ = adapted_run
    with contextlib.chdir(workdir):
        plan = plan_of(WORKFLOW_CONFIG)
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
        "settings": {"vae_steps": 2, "unet_steps": 2, "batch_size": 8},
        "device": "cpu",
    }
    straight, out = tmp_path / "straight", tmp_path / "resumed"
    run_adapt(**job, out_dir=str(straight), losses=str(straight / "losses.jsonl"))
    with pytest.raises(TrainingStopped):
        run_adapt(**job, out_dir=str(out), losses=str(out / "losses.jsonl"), stop_after=3)  # in the UNet phase
    assert (out / "adapt.resume.pt").is_file() and not (out / "model_index.json").exists()
    run_adapt(**job, out_dir=str(out), losses=str(out / "losses.jsonl"))
    assert not (out / "adapt.resume.pt").exists()
    assert (out / "losses.jsonl").read_text() == (straight / "losses.jsonl").read_text()
    name = "unet/diffusion_pytorch_model.safetensors"
    assert (out / name).read_bytes() == (straight / name).read_bytes()


def scene_record(wnid: str, name: str) -> dict:
    """A prompt file's record whose prompts differ by image (a scene drawn per image index)."""
    entry = {"family": "c, b", "template": "a {c} {b}", "fields": {"c": name}, "scenes": ["at dawn", "in fog"]}
    return {"format": 1, "wnid": wnid, "class_key": wnid, "recipe": "cb", "seed": 0, "recipes": {"cb": entry}}


def png(value: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (value,) * 3).save(out, format="PNG")
    return out.getvalue()


def test_image_i_of_a_class_is_captioned_as_train_image_i_of_that_class_is_prompted():
    records = [scene_record("n13742358", "zero"), scene_record("n13742573", "one")]
    samples = [{"cls": str(label).encode(), "png": png(40 * n)} for n, label in enumerate([1, 0, 1, 1, 0, 0, 1])]
    chosen = pick_per_class(samples, 2, 3)
    assert [(label, i) for label, i, _ in chosen] == [(1, 0), (0, 0), (1, 1), (1, 2), (0, 1), (0, 2)]
    pixels, captions, prompts = training_set(chosen, records, size=8)
    assert pixels.shape == (6, 3, 8, 8) and pixels.min() >= -1 and pixels.max() <= 1
    expected = [image_prompt(records[label], "train", i) for label, i, _ in chosen]
    assert [prompts[c] for c in captions] == expected
    assert len(set(expected)) > 2  # the scenes make the captions differ within a class


def test_a_prompt_file_of_another_class_is_refused_naming_it():
    records = [scene_record("n13742358", "zero"), scene_record("n13742573", "one")]
    with pytest.raises(ValueError, match=r"one\.json: prompts of n13742573, but class n13742358"):
        check_prompt_files(records[::-1], ["zero.json", "one.json"][::-1], ["n13742358", "n13742573"])
    with pytest.raises(ValueError, match=r"no image of class index\(es\) \[1\]"):
        pick_per_class([{"cls": b"0", "png": png(0)}], 2, None)
