"""Adapting a generator on real images (issue 22), without Snakemake: the adapted generator's key, the config
errors of `adaptations`, and how the adapt job captions the real images. The workflow itself:
tests/workflow/test_adaptation_workflow.py."""

import copy
import io
import re

import pytest
import torch
import yaml
from conftest import REPO
from PIL import Image
from snakemake.utils import validate
from snakemake_interface_common.exceptions import WorkflowError
from test_common_noise import OLD_KEYS

from imagenet_sd.config import ConfigError
from imagenet_sd.planning.adaptation import adapted_folder, card_entry
from imagenet_sd.planning.clones import build_plan
from imagenet_sd.prompts.prompts import image_prompt
from imagenet_sd.quality.cards import licence
from imagenet_sd.train.adapt_job import check_prompt_files, pick_per_class, training_set

torch.set_num_threads(1)

SCHEMA = str(REPO / "schemas/config.schema.yaml")
# The digits' own size: an 8x8 latent through a one-level VAE, 8x8 pixels (tests/unit/test_adaptation.py).
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


def test_an_adapted_clones_card_names_the_base_models_licence_and_the_real_images_terms(monkeypatch):
    monkeypatch.chdir(REPO)
    config = copy.deepcopy(TINY_CONFIG)
    config["clones"]["digits"]["license"] = "CC BY 4.0"
    config["adaptations"]["digits"]["model"] = "CompVis/stable-diffusion-v1-4"
    plan = plan_of(config)
    entry = card_entry(plan, "digits")
    assert plan.pixel_settings("adapted")["model"] == f"results/adapted/{entry['key']}"
    text = licence({"generator": {"model": "CompVis/stable-diffusion-v1-4"}, "pipeline": None, "adaptation": entry})
    assert "CreativeML OpenRAIL-M" in text and "real clone digits" in text and text.endswith("CC BY 4.0")


# The adapted generator's keys as computed before `lora` existed: TINY_CONFIG's (vae_steps 2), and with its
# vae_steps left to the default (200). A full fine-tuning keeps them.
KEYS_BEFORE_LORA = {2: "adapted-766cb0fe", None: "adapted-d1a88350"}


@pytest.mark.parametrize("vae_steps", sorted(KEYS_BEFORE_LORA, key=str))
@pytest.mark.parametrize("lora", ["absent", None])
def test_a_full_fine_tuning_keeps_its_key_and_a_lora_adapts_beside_it(vae_steps, lora, monkeypatch):
    monkeypatch.chdir(REPO)
    config = copy.deepcopy(TINY_CONFIG)
    entry = config["adaptations"]["digits"]
    if vae_steps is None:
        del entry["vae_steps"]
    if lora != "absent":
        entry.update(lora=lora, autocast=None)
    full = plan_of(config)
    assert full.generator_key("adapted") == KEYS_BEFORE_LORA[vae_steps]
    entry.update(lora={}, vae_steps=0)
    with_lora = plan_of(config)
    assert with_lora.generator_key("adapted") != full.generator_key("adapted")
    assert adapted_folder(with_lora, "digits") != adapted_folder(full, "digits")


def lora_key(monkeypatch, vae_steps=None, **lora) -> str:
    monkeypatch.chdir(REPO)
    config = copy.deepcopy(TINY_CONFIG)
    config["adaptations"]["digits"]["lora"] = lora
    del config["adaptations"]["digits"]["vae_steps"]
    if vae_steps is not None:
        config["adaptations"]["digits"]["vae_steps"] = vae_steps
    return plan_of(config).generator_key("adapted")


@pytest.mark.parametrize("change", [{"rank": 8}, {"alpha": 8}, {"target_modules": ["to_q", "to_v"]}, {"dropout": 0.1}])
def test_the_lora_settings_enter_the_key(change, monkeypatch):
    assert lora_key(monkeypatch, **change) != lora_key(monkeypatch)


def test_autocast_enters_the_key(monkeypatch):
    monkeypatch.chdir(REPO)
    config = copy.deepcopy(TINY_CONFIG)
    before = plan_of(config).generator_key("adapted")
    config["adaptations"]["digits"]["autocast"] = "bfloat16"
    assert plan_of(config).generator_key("adapted") != before


def test_a_lora_written_with_its_defaults_or_a_zero_vae_steps_has_the_same_key(monkeypatch):
    defaults = {"rank": 4, "alpha": 4, "target_modules": ["to_q", "to_k", "to_v", "to_out.0"], "dropout": 0.0}
    assert lora_key(monkeypatch, **defaults) == lora_key(monkeypatch) == lora_key(monkeypatch, vae_steps=0)


@pytest.mark.parametrize(
    "lora, vae_steps, named",
    [
        ({"rank": 0}, None, "adaptations.digits.lora.rank"),
        ({"alpha": 0}, None, "adaptations.digits.lora.alpha"),
        ({"target_modules": []}, None, "adaptations.digits.lora.target_modules"),
        ({"dropout": 1}, None, "adaptations.digits.lora.dropout"),
        ({"rnak": 4}, None, "adaptations.digits.lora: unknown setting"),
        ({}, 5, "adaptations.digits.vae_steps: 5 with `lora`"),
    ],
)
def test_bad_lora_settings_are_config_errors_naming_the_key(lora, vae_steps, named, monkeypatch):
    monkeypatch.chdir(REPO)
    config = copy.deepcopy(TINY_CONFIG)
    config["adaptations"]["digits"].update(lora={}, vae_steps=0)
    validate(config, SCHEMA)  # a config the schema passed, then changed: the planner checks it too
    config["adaptations"]["digits"].update(lora=lora, vae_steps=vae_steps or 0)
    with pytest.raises(ConfigError, match=re.escape(named)):
        build_plan(copy.deepcopy(config), check_wnids=False)
    if vae_steps is None:  # the schema (Snakemake's validation) names the same key in its own words
        config["adaptations"]["digits"]["lora"] = lora
        with pytest.raises(WorkflowError, match=re.escape(named_in_schema(named))):
            plan_of(config)


def named_in_schema(named: str) -> str:
    return "instance" + "".join(f"['{part}']" for part in named.split(":")[0].split("."))
