"""Prompt recipes over real WordNet: families, options, per-image determinism, token limits, the summary."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import load_script

from imagenet_sd.planning.keys import class_key
from imagenet_sd.prompts.prompts import (
    PromptError,
    build_record,
    image_prompt,
    load_prompt_file,
    load_tokenizer,
    read_scenes,
    recipe_settings,
    scene_text,
    token_counts,
    truncation,
    write_prompt_file,
)
from imagenet_sd.prompts.wordnet import materialise, open_wordnet
from imagenet_sd.prompts.wordnet_sources import HOW_TO_GET, find_source, wordnet_dir

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_COPY = REPO / "resources/nltk_data"  # where the `wordnet` rule materialises WordNet
SCENES = str(REPO / "data/places365_categories.txt")
CRANE_BIRD, CRANE_MACHINE, IRON = "n02012849", "n03126707", "n03584829"
WORLD_WAR_II = "n01312096"  # not an ImageNet class; its gloss alone is far beyond 77 CLIP tokens


def local_wordnet() -> Path | None:
    """An nltk_data root holding WordNet, found as the workflow finds it but without downloading: the copy the
    `wordnet` rule made, else find_source's (NLTK_DATA's roots, Debian's files) materialised by the fixture."""
    return WORKFLOW_COPY if (wordnet_dir(WORKFLOW_COPY) / "lexnames").is_file() else None


pytestmark = pytest.mark.skipif(
    local_wordnet() is None and find_source() is None,
    reason="no WordNet on this machine: " + HOW_TO_GET,
)


@pytest.fixture(scope="module")
def nltk_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wn") / "nltk_data"
    materialise(root, nltk_data=local_wordnet())  # None: find_source's, as the `wordnet` rule does
    return root


@pytest.fixture(scope="module")
def wn(nltk_data):
    return open_wordnet(nltk_data)


@pytest.fixture(scope="module")
def tokenizer_dir(clip_tokenizer_dir) -> str:
    return str(clip_tokenizer_dir)


def make(wn, wnid, recipe, name=None, seed=0, **recipes):
    """The prompt record of `wnid` under recipe `recipe` (given by family, or in `recipes`)."""
    recipes = recipes or {recipe: {"family": recipe}}
    for settings in recipes.values():
        settings.setdefault("scenes", SCENES)
    return build_record(
        wn, wnid=wnid, class_key=class_key(wnid, name), name=name, recipe=recipe, recipes=recipes, seed=seed
    )


def prompts(record, n, split="train"):
    return [image_prompt(record, split, i) for i in range(n)]


# ---- families ---------------------------------------------------------------------------------------
def test_the_papers_families(wn):
    bird = "large long-necked wading bird of marshes and plains in many parts of the world"
    assert prompts(make(wn, CRANE_BIRD, "c"), 3) == ["crane"] * 3
    assert image_prompt(make(wn, CRANE_BIRD, "c, h_c"), "train", 0) == "crane, wading bird"
    assert image_prompt(make(wn, CRANE_BIRD, "c, d_c"), "train", 0) == f"crane, {bird}"
    assert image_prompt(make(wn, CRANE_BIRD, "multiple c, h_c"), "train", 0) == "multiple crane, wading bird"
    scenes = set(read_scenes(SCENES))
    for prompt in prompts(make(wn, CRANE_BIRD, "c, h_c inside b"), 20):
        head, scene = prompt.split(" inside ", 1)
        assert head == "crane, wading bird" and scene in scenes


def test_polysemy_is_resolved_by_the_hypernym(wn):
    bird, machine = make(wn, CRANE_BIRD, "c, h_c"), make(wn, CRANE_MACHINE, "c, h_c")
    assert image_prompt(make(wn, CRANE_BIRD, "c"), "train", 0) == image_prompt(make(wn, CRANE_MACHINE, "c"), "train", 0)
    assert image_prompt(bird, "train", 0) == "crane, wading bird"
    assert image_prompt(machine, "train", 0) == "crane, lifting device"


def test_lemma_and_hypernym_options(wn):
    recipes = {"r": {"family": "c, h_c", "lemmas": "all", "hypernym": "all_lemmas"}}
    assert (
        image_prompt(make(wn, IRON, "r", **recipes), "train", 0)
        == "iron, smoothing iron, home appliance, household appliance"
    )
    recipes = {"r": {"family": "c, h_c", "lemmas": "first", "hypernym": "first_lemma"}}
    assert image_prompt(make(wn, IRON, "r", **recipes), "train", 0) == "iron, home appliance"


def test_name_override_wins_over_wordnet(wn):
    recipes = {"r": {"family": "c, h_c", "lemmas": "all"}}
    record = make(wn, IRON, "r", name="clothes iron", **recipes)
    assert image_prompt(record, "train", 0) == "clothes iron, home appliance"
    assert record["class_key"] == class_key(IRON, "clothes iron") != IRON
    assert record["name_override"] == "clothes iron"


def test_free_template_over_every_field(wn):
    recipes = {"t": {"family": "template", "template": "a photo of a {c} ({h_c}: {d_c}) in a {b}"}}
    prompt = image_prompt(make(wn, CRANE_MACHINE, "t", **recipes), "heldout", 7)
    assert prompt.startswith("a photo of a crane (lifting device: lifts and moves heavy objects;")
    assert prompt.split(") in a ", 1)[1] in set(read_scenes(SCENES))


def test_template_with_an_unknown_field_is_named(wn):
    with pytest.raises(PromptError, match=r"recipes\.t\.template .*\{colour\}"):
        make(wn, CRANE_BIRD, "t", t={"family": "template", "template": "a {colour} {c}"})


def test_any_wordnet_noun_works_not_only_imagenet(wn):
    imagenet = {line.split("\t")[1] for line in (REPO / "data/imagenet1k_synsets.tsv").read_text().splitlines()[1:]}
    assert WORLD_WAR_II not in imagenet and "n09918248" not in imagenet
    assert image_prompt(make(wn, "n09918248", "c, h_c"), "train", 0) == "child, offspring"
    assert image_prompt(make(wn, WORLD_WAR_II, "c, h_c"), "train", 0) == "World War II, world war"


# ---- scenes -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "line, fmt, text",
    [
        ("/a/apartment_building/outdoor 8", "comma", "apartment building, outdoor"),
        ("/a/apartment_building/outdoor 8", "paren", "apartment building (outdoor)"),
        ("/a/apartment_building/outdoor 8", "name", "apartment building"),
        ("/u/underwater/ocean_deep 342", "comma", "underwater, ocean deep"),
        ("/b/beach 48", "paren", "beach"),
        ("city street at night", "comma", "city street at night"),  # a user's own list, plain words
    ],
)
def test_scene_names_read_as_plain_words(line, fmt, text):
    assert scene_text(line, fmt) == text


def test_all_365_places_scenes_are_read():
    scenes = read_scenes(SCENES)
    assert len(scenes) == len(set(scenes)) == 365
    assert all("/" not in s and "_" not in s for s in scenes)


def test_scene_per_image_is_seeded_reproducible_and_varied(wn):
    record = make(wn, CRANE_BIRD, "c, h_c inside b")
    train = prompts(record, 300)
    assert train == prompts(make(wn, CRANE_BIRD, "c, h_c inside b"), 300)
    assert [image_prompt(record, "train", i) for i in reversed(range(300))] == train[::-1]  # order-free
    assert len(set(train)) > 150  # 300 draws from 365 scenes
    heldout = prompts(record, 300, "heldout")
    assert sum(a != b for a, b in zip(train, heldout)) > 250
    assert sum(a != b for a, b in zip(train, prompts(make(wn, CRANE_BIRD, "c, h_c inside b", seed=1), 300))) > 250
    # another class draws other scenes at the same indices
    other = prompts(make(wn, CRANE_MACHINE, "c, h_c inside b"), 300)
    assert sum(a.split(" inside ")[1] != b.split(" inside ")[1] for a, b in zip(train, other)) > 250


# ---- mix ----------------------------------------------------------------------------------------
def test_mix_draws_members_by_weight_and_each_member_keeps_its_prompts(wn):
    recipes = {
        "m": {"family": "mix", "mix": {"plain": 1, "scene": 3}},
        "plain": {"family": "c, h_c"},
        "scene": {"family": "c, h_c inside b"},
    }
    record = make(wn, CRANE_BIRD, "m", **recipes)
    assert set(record["recipes"]) == {"m", "plain", "scene"}
    mixed = prompts(record, 400)
    share_plain = mixed.count("crane, wading bird") / len(mixed)
    assert 0.17 < share_plain < 0.33
    alone = prompts(make(wn, CRANE_BIRD, "scene", **{"scene": {"family": "c, h_c inside b"}}), 400)
    assert all(m == a for m, a in zip(mixed, alone) if m != "crane, wading bird")


def test_mix_of_a_recipe_not_given_is_an_error(wn):
    with pytest.raises(PromptError, match="nope"):
        make(wn, CRANE_BIRD, "m", m={"family": "mix", "mix": {"nope": 1}})


# ---- the prompt file ----------------------------------------------------------------------------
def test_prompt_file_is_deterministic_and_independent_of_the_image_count(wn, tmp_path):
    recipes = {
        "m": {"family": "mix", "mix": {"plain": 1, "scene": 1}},
        "plain": {"family": "c, d_c"},
        "scene": {"family": "c, h_c inside b"},
    }
    write_prompt_file(tmp_path / "a.json", make(wn, CRANE_BIRD, "m", **recipes))
    write_prompt_file(tmp_path / "b.json", make(wn, CRANE_BIRD, "m", **recipes))
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    record = load_prompt_file(tmp_path / "a.json")
    assert record["wnid"] == CRANE_BIRD and record["recipe"] == "m" and record["seed"] == 0
    assert record["examples"]["train"] == prompts(record, 5)
    assert "images" not in json.dumps(record)  # nothing about how many images a clone asks for
    assert image_prompt(record, "train", 1_000_000)  # any index, no rewrite


def test_image_prompt_rejects_bad_split_and_index(wn):
    record = make(wn, CRANE_BIRD, "c")
    with pytest.raises(ValueError, match="split"):
        image_prompt(record, "val", 0)
    with pytest.raises(ValueError, match="index"):
        image_prompt(record, "train", -1)


def test_load_prompt_file_refuses_other_formats(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"format": 0}))
    with pytest.raises(PromptError, match="format"):
        load_prompt_file(tmp_path / "p.json")


def test_recipe_settings_take_every_default_from_the_schema():
    schema = yaml.safe_load((REPO / "schemas/config.schema.yaml").read_text())
    properties = schema["properties"]["recipes"]["additionalProperties"]["properties"]
    settings = recipe_settings("plain", {})
    assert set(settings) == set(properties)
    for key, spec in properties.items():
        assert settings[key] == spec.get("default"), key
    with pytest.raises(PromptError, match=r"recipes.plain: unknown key\(s\) \['lemma'\]"):
        recipe_settings("plain", {"lemma": "all"})


def test_prompts_script_writes_identical_bytes_twice(nltk_data, tmp_path):
    main = load_script("prompts").main
    recipe = {"name": "scene", "recipes": {"scene": {"family": "c, h_c inside b", "scenes": SCENES}}}
    for out in ("a.json", "b.json"):
        main(
            output=str(tmp_path / out), wnid=IRON, name="clothes iron", recipe=recipe, seed=3, nltk_data=str(nltk_data)
        )
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]  # no partial files left
    record = load_prompt_file(tmp_path / "a.json")
    assert record["class_key"] == class_key(IRON, "clothes iron")
    assert image_prompt(record, "train", 0).startswith("clothes iron, home appliance inside ")


# ---- tokens -------------------------------------------------------------------------------------
def test_shorten_cuts_the_definition_to_fit_77_tokens(wn, tokenizer_dir):
    tokenizer = load_tokenizer(tokenizer_dir)
    full = make(wn, WORLD_WAR_II, "r", r={"family": "c, d_c", "tokenizer": tokenizer_dir})
    assert token_counts(tokenizer, [image_prompt(full, "train", 0)])[0] > 77
    short = make(wn, WORLD_WAR_II, "r", r={"family": "c, d_c", "overflow": "shorten", "tokenizer": tokenizer_dir})
    prompt = image_prompt(short, "train", 0)
    assert token_counts(tokenizer, [prompt])[0] <= 77
    d_c = short["recipes"]["r"]["fields"]["d_c"]
    assert d_c and short["synset"]["definition"].startswith(d_c) and prompt == f"World War II, {d_c}"


def test_shorten_fits_with_every_scene(wn, tokenizer_dir):
    tokenizer = load_tokenizer(tokenizer_dir)
    recipes = {
        "r": {
            "family": "template",
            "template": "{c}, {d_c}, inside {b}",
            "overflow": "shorten",
            "max_tokens": 30,
            "tokenizer": tokenizer_dir,
        }
    }
    record = make(wn, CRANE_MACHINE, "r", **recipes)
    counts = token_counts(tokenizer, sorted(set(prompts(record, 400))))
    assert max(counts) <= 30 and max(counts) >= 25  # cut at a word boundary, not much shorter than needed


def test_truncate_leaves_the_prompt_and_the_summary_counts_it(wn, tokenizer_dir):
    recipes = {
        "m": {"family": "mix", "mix": {"long": 1, "short": 1}, "tokenizer": tokenizer_dir},
        "long": {"family": "c, d_c"},
        "short": {"family": "c"},
    }
    record = make(wn, WORLD_WAR_II, "m", **recipes)
    assert record["recipes"]["long"]["fields"]["d_c"] == record["synset"]["definition"]
    result = truncation(record, 50)
    n_long = sum(p != "World War II" for p in prompts(record, 50))
    assert 0 < n_long < 50 and result["truncated"] == n_long and result["max_tokens_seen"] > 77
    assert result["distinct_prompts"] == 2


def test_prompt_summary_table(nltk_data, tokenizer_dir, tmp_path):
    script = load_script("prompts")
    recipe = {"name": "cd", "recipes": {"cd": {"family": "c, d_c", "tokenizer": tokenizer_dir}}}
    files = {}
    for wnid in (CRANE_BIRD, WORLD_WAR_II):
        files[wnid] = str(tmp_path / f"{wnid}.json")
        script.main(output=files[wnid], wnid=wnid, name=None, recipe=recipe, seed=0, nltk_data=str(nltk_data))
    clones = {
        "big": {"prompts": [files[CRANE_BIRD], files[WORLD_WAR_II]], "images_per_class": 6},
        "small": {"prompts": [files[WORLD_WAR_II]], "images_per_class": 4},
    }
    out = tmp_path / "tables/prompts.csv"
    load_script("prompt_summary").main(clones=clones, output=str(out))
    rows = list(csv.DictReader(out.open()))
    assert [(r["clone"], r["wnid"], r["images"], r["truncated"]) for r in rows] == [
        ("big", CRANE_BIRD, "6", "0"),
        ("big", WORLD_WAR_II, "6", "6"),
        ("small", WORLD_WAR_II, "4", "4"),
    ]
    assert rows[0]["recipe"] == "cd" and rows[0]["example_1"].startswith("crane, large long-necked")
    assert Counter(r["max_tokens"] for r in rows) == {"77": 3}


def test_scene_files_are_those_of_recipes_that_use_b():
    from imagenet_sd.prompts.prompts import scene_files

    recipes = {
        "m": {"family": "mix", "mix": {"a": 1, "b": 1}},
        "a": {"family": "c, h_c inside b"},
        "b": {"family": "template", "template": "{c} at {b}", "scenes": "mine.txt"},
        "c": {"family": "c, d_c"},
    }
    assert scene_files(recipes) == ["data/places365_categories.txt", "mine.txt"]
    assert scene_files({"c": {"family": "c"}}) == []
