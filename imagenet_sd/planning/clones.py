"""The Plan of a config: its clones (class set x recipe x generator, or a real folder), the generator and
recipe keys, the chunk and prompt paths of every clone, and the checks of the config's cross references.

Snakemake's rules call into this module; it has no Snakemake dependency so tests import it directly.
Paths (imagenet_sd.paths) are keyed by what determines their content: a generated chunk by generator key,
recipe key, class key, split and image range, and by nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from imagenet_sd import paths
from imagenet_sd.config import ConfigError
from imagenet_sd.data.realdata import check_folder
from imagenet_sd.generate.families import check_generators
from imagenet_sd.planning.adaptation import adapted_folder, built_pipeline_for, check_adaptations
from imagenet_sd.planning.keys import chunk_ranges, short_hash
from imagenet_sd.planning.sheets import ClassEntry, check_sheet_wnids, read_sheets
from imagenet_sd.prompts.prompts import PROMPTS_VERSION

# Generator settings that change pixels. Everything else (batch size, chunk size, compile, attention,
# device) is a runtime choice and stays out of the output key.
PIXEL_KEYS = (
    "model",
    "revision",
    "variant",
    "scheduler",
    "steps",
    "guidance_scale",
    "negative_prompt",
    "height",
    "width",
    "dtype",
    "output_version",
    "jpeg_quality",
    "storage_size",
    "safety_checker",
    "max_retries",
)
# Recipe settings that change prompt text (`tokenizer` is only a means of counting tokens).
PROMPT_KEYS = (
    "family",
    "template",
    "mix",
    "lemmas",
    "hypernym",
    "scenes",
    "max_tokens",
    "overflow",
    "multiple",
    "scene_format",
)


@dataclass
class Clone:
    name: str
    classes: list[ClassEntry]
    images_per_class: int | None  # a real clone without a cap packs every image of its folder
    heldout_per_class: int
    shard_size: int
    # A generated clone's; a real clone has none of them.
    recipe: str | None = None
    recipe_key: str | None = None
    generator: str | None = None
    generator_key: str | None = None
    chunk_size: int = 1
    curation: dict | None = None  # generate oversample x images_per_class train images, pack the best
    source: dict | None = None  # a real clone: {path, jpeg_quality, storage_size} of its ImageFolder train set

    @property
    def real(self) -> bool:
        return self.source is not None

    def count(self, split: str) -> int:
        """Images generated per class (curation packs images_per_class of the train ones)."""
        if split == "train":
            return self.images_per_class * (self.curation["oversample"] if self.curation else 1)
        return self.heldout_per_class

    def chunks(self, split: str) -> list[tuple[int, int]]:
        return chunk_ranges(self.count(split), self.chunk_size)


@dataclass
class Plan:
    config: dict
    clones: dict[str, Clone] = field(default_factory=dict)
    sheets: dict[str, list[ClassEntry]] = field(default_factory=dict)
    _indexes: dict = field(default_factory=dict, repr=False)  # wildcard value -> name or class entry

    # ---- keys -------------------------------------------------------------------------------
    def pixel_settings(self, generator: str) -> dict:
        """Everything that determines a generated image's pixels, besides recipe, class and index."""
        g = self.config["generators"][generator]
        settings = {k: g.get(k) for k in PIXEL_KEYS}
        if settings["safety_checker"] == "off":  # off is false (as YAML reads a bare off): the same key
            settings["safety_checker"] = False
        settings["seed"] = self.config["seed"]
        if g.get("common_noise"):  # in the key only when on: keys (and files) of every other generator stay
            settings["common_noise"] = True
        if g.get("adaptation"):  # the adapted folder's path holds the adaptation's key; others' keys stay
            settings["model"] = adapted_folder(self, g["adaptation"])
        built = self.built_pipeline(generator)
        if built:
            settings["pipeline"] = self.config["pipelines"][built]
        return settings

    def generator_key(self, generator: str) -> str:
        return f"{generator}-{short_hash(self.pixel_settings(generator))}"

    def prompt_settings(self, recipe: str) -> dict:
        r = self.config["recipes"][recipe]
        settings = {k: r.get(k) for k in PROMPT_KEYS}
        settings["seed"] = self.config["seed"]
        settings["prompts_version"] = PROMPTS_VERSION
        if r.get("family") == "mix":
            settings["mix"] = {name: [w, self.prompt_settings(name)] for name, w in sorted(r["mix"].items())}
        return settings

    def recipe_key(self, recipe: str) -> str:
        return f"{recipe}-{short_hash(self.prompt_settings(recipe))}"

    def built_pipeline(self, generator: str) -> str | None:
        """Name of the tiny pipeline the `tiny_pipeline` rule builds for this generator, if any."""
        return built_pipeline_for(self.config, generator)

    # ---- lookups by wildcard (indexed once: input functions call them for every job) -------------
    def _index(self, kind: str) -> dict:
        cache = self._indexes
        if kind not in cache:
            if kind == "generator":
                cache[kind] = {self.generator_key(name): name for name in self.config["generators"]}
            elif kind == "recipe":
                cache[kind] = {self.recipe_key(name): name for name in self.config["recipes"]}
            else:
                cache[kind] = {entry.key: entry for entries in self.sheets.values() for entry in entries}
        return cache[kind]

    def by_generator_key(self, key: str) -> str:
        try:
            return self._index("generator")[key]
        except KeyError:
            raise KeyError(f"no generator in the config has key {key}") from None

    def by_recipe_key(self, key: str) -> str:
        try:
            return self._index("recipe")[key]
        except KeyError:
            raise KeyError(f"no recipe in the config has key {key}") from None

    def class_entry(self, key: str) -> ClassEntry:
        try:
            return self._index("class")[key]
        except KeyError:
            raise KeyError(f"no class sheet has class key {key}") from None

    # ---- paths ------------------------------------------------------------------------------
    def clone_chunks(self, clone: str, split: str, stats: bool = False) -> list[str]:
        c = self.clones[clone]
        if c.real:
            return []
        return [
            paths.chunk(c.generator_key, c.recipe_key, split, e.key, a, b, stats)
            for e in c.classes
            for a, b in c.chunks(split)
        ]

    def clone_prompts(self, clone: str) -> list[str]:
        c = self.clones[clone]
        if c.real:
            return []
        return [paths.PROMPTS.format(recipe_key=c.recipe_key, ckey=e.key) for e in c.classes]


def recipe_dependencies(config: dict, recipe: str, trail=()) -> list[str]:
    """Recipes a `mix` recipe draws from (recursively), with a clear error on unknown names or cycles."""
    r = config["recipes"][recipe]
    if r.get("family") != "mix":
        return []
    deps = []
    for name in r["mix"]:
        if name not in config["recipes"]:
            raise ConfigError(f"recipes.{recipe}.mix: unknown recipe {name!r}")
        if name in trail + (recipe,):
            raise ConfigError(f"recipes.{recipe}.mix: recipe {name!r} mixes itself")
        deps += [name] + recipe_dependencies(config, name, trail + (recipe,))
    return deps


def real_clone(name: str, c: dict, classes: list[ClassEntry]) -> Clone:
    """A clone of real images: its ImageFolder is checked against the sheet now, when it is already there."""
    if os.path.isdir(c["path"]):
        try:
            check_folder(c["path"], [e.wnid for e in classes])
        except ValueError as e:
            raise ConfigError(f"clones.{name}.path: {e}") from None
    source = {"path": c["path"], "jpeg_quality": c.get("jpeg_quality"), "storage_size": c.get("storage_size")}
    if c.get("undecodable") == "skip":  # only then: a param that changes reruns the pack (and the training)
        source["undecodable"] = "skip"
    return Clone(
        name=name,
        classes=classes,
        images_per_class=c.get("images_per_class"),
        heldout_per_class=c.get("heldout_per_class", 0),
        shard_size=c.get("shard_size", 1000),
        source=source,
    )


def need(config: dict, section: str, name: str, where: str) -> None:
    """`name` must be an entry of `config[section]`; the error names where it was asked for, and what exists."""
    if name not in config.get(section, {}):
        known = ", ".join(sorted(config.get(section, {}))) or "none"
        kind = section[:-1] if section.endswith("s") else section
        raise ConfigError(f"{where}: unknown {kind} {name!r} (known: {known})")


def plan_clone(plan: Plan, name: str, c: dict) -> Clone:
    """A clone entry checked against the sections it names: a real one, or class set x recipe x generator."""
    config = plan.config
    need(config, "class_sets", c["class_set"], f"clones.{name}.class_set")
    if "path" in c:
        return real_clone(name, c, plan.sheets[c["class_set"]])
    need(config, "recipes", c["recipe"], f"clones.{name}.recipe")
    need(config, "generators", c["generator"], f"clones.{name}.generator")
    return Clone(
        name=name,
        classes=plan.sheets[c["class_set"]],
        recipe=c["recipe"],
        recipe_key=plan.recipe_key(c["recipe"]),
        generator=c["generator"],
        generator_key=plan.generator_key(c["generator"]),
        images_per_class=c["images_per_class"],
        heldout_per_class=c.get("heldout_per_class", 0),
        chunk_size=config["generators"][c["generator"]]["chunk_size"],
        shard_size=c.get("shard_size", 1000),
        curation=c.get("curation"),
    )


def check_evaluation(plan: Plan) -> None:
    """Evaluation sets, runs and the sets robustness and representation statistics use."""
    config = plan.config
    for name, e in config.get("evalsets", {}).items():
        if e.get("classes") and not Path(e["classes"]).is_file():
            raise ConfigError(f"evalsets.{name}.classes: class list {e['classes']} not found")
        if "clone" in e:
            need(config, "clones", e["clone"], f"evalsets.{name}.clone")
            if plan.clones[e["clone"]].heldout_per_class == 0:
                raise ConfigError(
                    f"evalsets.{name}: clone {e['clone']!r} has heldout_per_class 0, so no held-out split"
                )
    for name, r in config.get("runs", {}).items():
        need(config, "clones", r["clone"], f"runs.{name}.clone")
        need(config, "trainings", r["training"], f"runs.{name}.training")
        for ev in r.get("evaluate", []):
            need(config, "evalsets", ev, f"runs.{name}.evaluate")
    for section in ("robustness", "representation"):
        for ev in config.get(section, {}).get("evalsets", []):
            need(config, "evalsets", ev, f"{section}.evalsets")
            if config["evalsets"][ev].get("layout", "imagefolder") != "imagefolder":
                users = "attacks" if section == "robustness" else "frozen features"
                raise ConfigError(f"{section}.evalsets: {ev!r} is a corruption set; {users} need an ImageFolder set")


def build_plan(config: dict, check_wnids: bool = True) -> Plan:
    """Check cross references, sheets and files; return the plan. Raises ConfigError naming the culprit."""
    plan = Plan(config)
    for name in config.get("recipes", {}):
        recipe_dependencies(config, name)
    plan.sheets = read_sheets(config)
    check_generators(config, plan.built_pipeline)
    clones = config.get("clones", {})
    # real clones first: an adapted generator's key (a synthetic clone's) holds its real clone's settings
    real = {name: plan_clone(plan, name, c) for name, c in clones.items() if "path" in c}
    plan.clones.update(real)
    check_adaptations(plan, need)
    plan.clones = {name: real.get(name) or plan_clone(plan, name, c) for name, c in clones.items()}
    check_evaluation(plan)
    if check_wnids:
        check_sheet_wnids(config, plan.sheets)
    return plan
