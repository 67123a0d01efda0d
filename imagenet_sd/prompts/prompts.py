"""Prompt recipes of the paper over WordNet fields, and the per-class prompt file generation reads.

Notation of the paper (docs/paper.md): c = class name, h_c = hypernym, d_c = definition (gloss), b = a Places365 scene.
A prompt file holds one class's fields for its recipe (and every recipe a `mix` draws from), the templates,
the scene list and the weights: everything the prompt of image i needs, and nothing that depends on how
many images there are. `image_prompt(record, split, i)` is then a pure function of (seed, recipe, class,
split, i); per-image choices (scene, mix member) come from `seeds.prompt_seed`, not from a random state.
"""

from __future__ import annotations

import functools
import json
import operator
import re
import string
from pathlib import Path

from imagenet_sd.config import ConfigError, resolve_entry
from imagenet_sd.paths import SPLITS
from imagenet_sd.seeds import SEED_BITS, prompt_seed

FORMAT = 1  # of the prompt file; load_prompt_file refuses other formats
# Bump when an edit of this module changes the prompt text of an unchanged recipe. It belongs in the recipe
# key (imagenet_sd.planning.clones: Plan.prompt_settings), so the new prompts and their images are written
# beside the old ones; an edit that changes no prompt leaves it alone and regenerates nothing.
PROMPTS_VERSION = 1
FIELDS = ("c", "h_c", "d_c", "b")
N_EXAMPLES = 5  # example prompts stored in the prompt file (train indices 0..4), for people and the summary

FAMILY_TEMPLATES = {
    "c": "{c}",
    "c, h_c": "{c}, {h_c}",
    "c, d_c": "{c}, {d_c}",
    "c, h_c inside b": "{c}, {h_c} inside {b}",
    "multiple c, h_c": "{multiple} {c}, {h_c}",
}


class PromptError(ValueError):
    """A recipe or prompt file problem; the message names the recipe, field or file."""


# ---- recipes ------------------------------------------------------------------------------------
def recipe_settings(name: str, recipe: dict) -> dict:
    """A recipe's settings checked by the config schema and completed with its defaults."""
    try:
        return resolve_entry("recipes", name, recipe)
    except ConfigError as error:
        raise PromptError(str(error)) from None


def recipe_template(name: str, settings: dict) -> str:
    """The recipe's template over {c}, {h_c}, {d_c}, {b}; checked to name no other field."""
    if settings["family"] == "template":
        template = settings["template"]
    else:
        template = FAMILY_TEMPLATES[settings["family"]].replace("{multiple}", settings["multiple"])
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as error:
        raise PromptError(f"recipes.{name}.template {template!r}: {error}") from None
    bad = names - set(FIELDS)
    if bad:
        raise PromptError(
            f"recipes.{name}.template {template!r}: unknown field(s) "
            f"{', '.join('{' + b + '}' for b in sorted(bad))}; allowed: {{c}}, {{h_c}}, {{d_c}}, {{b}}"
        )
    return template


def scene_files(recipes: dict) -> list[str]:
    """Scene lists read by any of `recipes` (name -> settings): inputs of the `prompts` job."""
    files = set()
    for name, recipe in recipes.items():
        settings = recipe_settings(name, recipe)
        if settings["family"] != "mix" and "b" in template_fields(recipe_template(name, settings)):
            files.add(str(settings["scenes"]))
    return sorted(files)


def template_fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


# ---- WordNet fields ---------------------------------------------------------------------------------
def lemma_text(lemma_names, which: str) -> str:
    """`first` lemma or `all` lemmas joined with ', '; WordNet's underscores read as spaces."""
    names = [n.replace("_", " ") for n in lemma_names]
    return names[0] if which in ("first", "first_lemma") else ", ".join(names)


def synset_facts(wn, wnid: str) -> dict:
    """What WordNet says about a noun synset: the raw material of c, h_c and d_c."""
    from imagenet_sd.prompts.wordnet import hypernyms_in_file_order, synset_of

    synset = synset_of(wn, wnid)
    return {
        "name": synset.name(),
        "lemmas": synset.lemma_names(),
        "definition": synset.definition(),
        "hypernyms": [
            {"wnid": f"n{h.offset():08d}", "name": h.name(), "lemmas": h.lemma_names()}
            for h in hypernyms_in_file_order(wn, synset)
        ],
    }


def class_fields(facts: dict, settings: dict, name_override: str | None) -> dict:
    """c, h_c and d_c of one class under one recipe's settings. The sheet's name override wins for c."""
    hypernyms = facts["hypernyms"]
    return {
        "c": name_override or lemma_text(facts["lemmas"], settings["lemmas"]),
        "h_c": lemma_text(hypernyms[0]["lemmas"], settings["hypernym"]) if hypernyms else "",
        "d_c": facts["definition"],
    }


# ---- scenes -----------------------------------------------------------------------------------------
def scene_text(line: str, scene_format: str = "comma") -> str:
    """A Places365 category in plain words: `/a/apartment_building/outdoor 8` -> "apartment building, outdoor".

    Lines not starting with `/` are taken as already plain words (a user's own scene list).
    """
    line = line.strip()
    if not line.startswith("/"):
        return line
    parts = [p.replace("_", " ") for p in line.split()[0].strip("/").split("/")[1:]]
    if scene_format == "name" or len(parts) == 1:
        return parts[0]
    if scene_format == "paren":
        return f"{parts[0]} ({', '.join(parts[1:])})"
    return ", ".join(parts)


def read_scenes(path: str | Path, scene_format: str = "comma") -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise PromptError(f"scene list not found: {path} (recipe key `scenes`)")
    scenes = [scene_text(line, scene_format) for line in path.read_text().splitlines() if line.strip()]
    if not scenes:
        raise PromptError(f"scene list {path} is empty")
    return scenes


# ---- tokens -----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def load_tokenizer(path: str):
    """The tokenizer that counts tokens: a folder with tokenizer_config.json (any transformers tokenizer,
    e.g. a diffusers pipeline's `tokenizer/`), or CLIP's vocab.json + merges.txt."""
    folder = Path(path)
    if not folder.is_dir():
        raise PromptError(f"tokenizer folder not found: {folder} (recipe key `tokenizer`)")
    if (folder / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(folder))
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(folder))


def token_counts(tokenizer, texts: list[str]) -> list[int]:
    """Tokens the text encoder would see, start and end tokens included (CLIP reads at most 77)."""
    if not texts:
        return []
    # verbose=False: counting long prompts is the point here, not an indexing error to warn about
    encoded = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)
    return [len(ids) for ids in encoded["input_ids"]]


def cut_at_words(text: str, n_words: int) -> str:
    """The first n words of text, without a dangling separator or an unclosed parenthesis."""
    cut = " ".join(text.split()[:n_words])
    if cut.count("(") > cut.count(")"):
        cut = cut[: cut.rfind("(")]
    return cut.rstrip(" ,;:-")


def shorten_definition(template: str, fields: dict, scenes: list[str] | None, tokenizer, max_tokens: int) -> str:
    """The longest word prefix of d_c with which every prompt of the template (any scene) fits max_tokens."""

    def fits(d_c: str) -> bool:
        values = {**fields, "d_c": d_c}
        prompts = {tidy(template.format(**values, b=b)) for b in (scenes or [""])}
        return max(token_counts(tokenizer, sorted(prompts))) <= max_tokens

    words = fields["d_c"].split()
    if fits(fields["d_c"]):
        return fields["d_c"]
    lo, hi = 0, len(words)  # fits(cut(lo)) assumed (or nothing fits); not fits(cut(hi))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(cut_at_words(fields["d_c"], mid)):
            lo = mid
        else:
            hi = mid
    return cut_at_words(fields["d_c"], lo)


# ---- the prompt file --------------------------------------------------------------------------------
def tidy(prompt: str) -> str:
    """Single spaces, no space before a comma, no dangling separator (an empty field leaves none)."""
    prompt = re.sub(r"\s+", " ", prompt)
    prompt = re.sub(r"\s+,", ",", prompt)
    prompt = re.sub(r",(\s*,)+", ",", prompt)
    return prompt.strip(" ,;:")


def build_record(
    wn,
    *,
    wnid: str,
    class_key: str,
    name: str | None,
    recipe: str,
    recipes: dict,
    seed: int,
    tokenizer_loader=load_tokenizer,
) -> dict:
    """The prompt file of one class under `recipe` (`recipes` holds it and every recipe it mixes)."""
    if recipe not in recipes:
        raise PromptError(f"recipe {recipe!r} is not among the recipes given ({sorted(recipes)})")
    facts = synset_facts(wn, wnid)
    entries = {}
    pending = [recipe]
    while pending:
        rname = pending.pop()
        if rname in entries:
            continue
        if rname not in recipes:
            raise PromptError(f"recipes.{recipe}: mixes recipe {rname!r}, which was not given")
        settings = recipe_settings(rname, recipes[rname])
        entry = {"family": settings["family"], "settings": settings}
        if settings["family"] == "mix":
            entry["members"] = [[m, float(w)] for m, w in sorted(settings["mix"].items())]
            pending += [m for m, _ in entry["members"]]
        else:
            template = recipe_template(rname, settings)
            fields = class_fields(facts, settings, name)
            scenes = (
                read_scenes(settings["scenes"], settings["scene_format"]) if "b" in template_fields(template) else None
            )
            if settings["overflow"] == "shorten" and "d_c" in template_fields(template):
                tokenizer = tokenizer_loader(str(settings["tokenizer"]))
                fields["d_c"] = shorten_definition(template, fields, scenes, tokenizer, settings["max_tokens"])
            entry.update(template=template, fields=fields)
            if scenes is not None:
                entry["scenes"] = scenes
        entries[rname] = entry
    top = entries[recipe]["settings"]
    record = {
        "format": FORMAT,
        "prompts_version": PROMPTS_VERSION,
        "wnid": wnid,
        "class_key": class_key,
        "name_override": name,
        "recipe": recipe,
        "seed": seed,
        "synset": facts,
        "recipes": entries,
        "max_tokens": top["max_tokens"],
        "tokenizer": str(top["tokenizer"]),
        "wordnet_version": wn.get_version(),
    }
    record["examples"] = {split: [image_prompt(record, split, i) for i in range(N_EXAMPLES)] for split in SPLITS}
    return record


def write_prompt_file(path: str | Path, record: dict) -> None:
    from imagenet_sd.runtime import write_json

    write_json(path, record)


def load_prompt_file(path: str | Path) -> dict:
    """A prompt file written by the `prompts` rule, checked enough to fail early and clearly."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise PromptError(f"cannot read prompt file {path}: {error}") from None
    if record.get("format") != FORMAT:
        raise PromptError(
            f"prompt file {path} has format {record.get('format')!r}, expected {FORMAT}; rerun the `prompts` rule"
        )
    missing = [k for k in ("wnid", "class_key", "recipe", "seed", "recipes") if k not in record]
    if missing or record["recipe"] not in record["recipes"]:
        raise PromptError(f"prompt file {path} is incomplete (missing {missing or [record['recipe']]})")
    return record


def plain_record(wnid: str, recipe: str, entry: dict, seed: int = 0) -> dict:
    """The least prompt record that image_prompt and the generate job read: class `wnid` under one plain recipe
    `entry` ({family, template, fields}), without WordNet facts; for benchmarks and tests of generation."""
    return {
        "format": FORMAT,
        "wnid": wnid,
        "class_key": wnid,
        "name_override": None,
        "recipe": recipe,
        "seed": seed,
        "recipes": {recipe: entry},
    }


def image_prompt(record: dict, split: str, index: int) -> str:
    """The prompt of image `index` of split `split`: a pure function of (seed, recipe, class, split, index)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    index = operator.index(index)  # any integer type (numpy's too); a float is a TypeError
    if index < 0:
        raise ValueError(f"image index must be non-negative, not {index}")
    return _render(record, record["recipe"], split, index)


def _render(record: dict, recipe: str, split: str, index: int) -> str:
    entry = record["recipes"][recipe]
    if entry["family"] == "mix":
        # One uniform draw in [0, total) from this recipe's seed picks the member; the member then makes its
        # own choices from its own seed, so its prompts are the ones it would give on its own.
        u = prompt_seed(record["seed"], recipe, record["wnid"], split, index) / 2**SEED_BITS
        x = u * sum(w for _, w in entry["members"])
        for member, weight in entry["members"]:  # noqa: B007 - the member drawn is used after the loop
            if x < weight:
                break
            x -= weight
        return _render(record, member, split, index)
    values = dict(entry["fields"])
    if "scenes" in entry:
        scenes = entry["scenes"]
        values["b"] = scenes[prompt_seed(record["seed"], recipe, record["wnid"], split, index) % len(scenes)]
    return tidy(entry["template"].format(**values))


# ---- the summary ------------------------------------------------------------------------------------
def split_prompts(record: dict, split: str, n_images: int) -> list[str]:
    return [image_prompt(record, split, i) for i in range(n_images)]


def truncation(record: dict, n_images: int, tokenizer=None) -> dict:
    """Of the first n_images train prompts: how many exceed the recipe's max_tokens (the text encoder
    truncates them), and the longest count. Each distinct prompt is tokenized once."""
    tokenizer = tokenizer or load_tokenizer(record["tokenizer"])
    prompts = split_prompts(record, "train", n_images)
    distinct = sorted(set(prompts))
    counts = dict(zip(distinct, token_counts(tokenizer, distinct)))
    limit = record["max_tokens"]
    return {
        "truncated": sum(1 for p in prompts if counts[p] > limit),
        "distinct_prompts": len(distinct),
        "max_tokens_seen": max(counts.values(), default=0),
        "max_tokens": limit,
    }
