"""The path grammar of the workflow: every output path template, written once, and the patterns of the
names that fill it. Rules, the plan and the scripts all take their paths from here.

Paths are keyed by what determines their content: a generated chunk by generator key, recipe key, split,
class key and image range, and by nothing else, so clones that share settings share files.
"""

from __future__ import annotations

import re

SPLITS = ("train", "heldout")  # `heldout`: images of a clone generated with other seeds, for evaluation
WNID = r"n\d{8}"  # a WordNet 3.0 noun synset id: n + the synset's byte offset in data.noun
WNID_RE = re.compile(rf"^{WNID}$")
NAME = r"[A-Za-z0-9][A-Za-z0-9_.+-]*"  # names of config entries (the schema allows the same)
HASH = r"[0-9a-f]{8}"

# Snakemake wildcard patterns of the templates below.
WILDCARDS = {
    "recipe_key": rf"{NAME}-{HASH}",
    "generator_key": rf"{NAME}-{HASH}",
    "adaptation_key": rf"{NAME}-{HASH}",
    "ckey": rf"{WNID}(-{HASH})?",
    "split": "|".join(SPLITS),
    "start": r"\d{6}",
    "stop": r"\d{6}",
    "pipeline": NAME,
    "clone": NAME,
    "run": NAME,
    "evalset": NAME,
    "hub_model": r"[A-Za-z0-9][A-Za-z0-9_.-]*(--[A-Za-z0-9][A-Za-z0-9_.-]*)?",
    "revision": r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    "model": NAME,
    "dataset": NAME,
    "part": "train|test",
    "probe_hash": HASH,
    "seed": r"\d+",
    "attack": NAME,
    "eps": r"\d+(\.\d+)?",
    "class_set": NAME,
    "table": NAME,
    "figure": NAME,
    "clip_key": rf"clip-{HASH}",
    "images": r"\d+",
    "reference_key": rf"ref-{HASH}",
    "wnid": WNID,
    "fetched": r"(torchvision/[A-Za-z0-9_.]+\.pth|url/[0-9a-f]{8}/[^/]+)",
}

# ---- resources materialised on the login node ----------------------------------------------------
WORDNET = "resources/nltk_data/corpora/wordnet/lexnames"  # written last: marks a complete copy
TOKENIZER = "resources/clip-tokenizer/vocab.json"
TOKENIZER_MERGES = "resources/clip-tokenizer/merges.txt"
PIPELINE_FOLDER = "resources/pipelines/{pipeline}"
HUB_FOLDER = "resources/hub/{hub_model}/{revision}"
TINY_CLIP_FOLDER = "resources/clip/tiny"
CLIP_CONFIG = "{folder}/config.json"
MODEL_INDEX = "{folder}/model_index.json"
SKLEARN_DIGITS = "resources/datasets/sklearn-digits"  # an ImageFolder of scikit-learn's digits (no download)

# ---- results -----------------------------------------------------------------------------------
PROMPTS = "results/prompts/{recipe_key}/{ckey}.json"
# A pipeline adapted on real images (imagenet_sd.planning.adaptation), its loss curves beside its weights
ADAPTED_FOLDER = "results/adapted/{adaptation_key}"
ADAPTED_LOSSES = "results/adapted/{adaptation_key}/losses.jsonl"
CHUNK = "results/generated/{generator_key}/{recipe_key}/{split}/{ckey}/{start}-{stop}.tar"
CHUNK_STATS = "results/generated/{generator_key}/{recipe_key}/{split}/{ckey}/{start}-{stop}.json"
# CLIP embeddings of images [0, count) of a class's train split: keyed like the chunks they read, plus the model
QUALITY_EMBEDDINGS = "results/quality/{clip_key}/{generator_key}/{recipe_key}/{ckey}/train-{images}.npz"
# CLIP embeddings of one class of a real reference set (FD and KID): keyed by the folder and which of its images
QUALITY_REFERENCE = "results/quality/{clip_key}/reference/{reference_key}/{wnid}.npz"
QUALITY_TABLES = {
    "classes": "results/tables/quality.csv",
    "classes_md": "results/tables/quality.md",
    "clones": "results/tables/quality_clones.csv",
    "clones_md": "results/tables/quality_clones.md",
    "worst": "results/tables/quality_worst.csv",
    "worst_md": "results/tables/quality_worst.md",
}
SHARDS = "results/clones/{clone}/train"
SHARD_INDEX = "results/clones/{clone}/train.json"
HELDOUT = "results/clones/{clone}/heldout"
CARD_JSON = "results/clones/{clone}/card.json"
CARD_MARKDOWN = "results/clones/{clone}/card.md"
CHECKPOINT = "results/runs/{run}/checkpoint.pt"
METRICS = "results/runs/{run}/metrics.jsonl"
# ---- per model (a run's checkpoint, or an external one) ------------------------------------------
FETCHED_MODEL = "resources/models/{fetched}"
MODEL_CHECK = "results/models/{model}/model.json"
EVALUATION = "results/models/{model}/eval/{evalset}.json"
FEATURES = "results/models/{model}/features/{prep_key}/{dataset}/{part}.npz"
# {kind}: logistic or linear, each kind its own rule (probe_output gives a rule its pattern)
PROBE = "results/models/{model}/transfer/{dataset}/{kind}-{probe_hash}/seed{seed}.json"
ATTACK = "results/models/{model}/attack/{evalset}/{attack}/eps{eps}.json"
REPRESENTATION = "results/models/{model}/representation/{evalset}.json"
# ---- datasets ------------------------------------------------------------------------------------
TRANSFER_LIST = "resources/transfer/{dataset}/{part}.tsv"
DATASET_INDEX = "results/datasets/{dataset}/{part}.json"
PROMPT_TABLE = "results/tables/prompts.csv"
EVALUATION_TABLE = "results/tables/evaluation.csv"
EVALUATION_MARKDOWN = "results/tables/evaluation.md"


def chunk(
    generator_key: str, recipe_key: str, split: str, ckey: str, start: int, stop: int, stats: bool = False
) -> str:
    """The chunk tar (or its stats JSON) of images [start, stop) of one class and split."""
    template = CHUNK_STATS if stats else CHUNK
    return template.format(
        generator_key=generator_key,
        recipe_key=recipe_key,
        split=split,
        ckey=ckey,
        start=f"{start:06d}",
        stop=f"{stop:06d}",
    )


def probe_output(kind: str) -> str:
    """The output pattern of the rule that fits probes of one kind: PROBE with `kind` filled, the wildcards kept."""
    return PROBE.replace("{kind}", kind)


def hub_folder(model: str, revision: str | None) -> str:
    """Where the local rule prefetch_weights puts a hub pipeline: resources/hub/<org>--<name>/<revision>."""
    return HUB_FOLDER.format(hub_model=model.replace("/", "--"), revision=revision or "main")


def hub_model_id(folder_name: str) -> str:
    """Inverse of hub_folder's first part: CompVis--stable-diffusion-v1-4 -> CompVis/stable-diffusion-v1-4."""
    return folder_name.replace("--", "/")


def model_index(folder: str) -> str:
    return MODEL_INDEX.format(folder=folder)
