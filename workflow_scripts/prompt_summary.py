"""Prompt table: per clone and class, the recipe, example prompts, the number of images and how many of
their prompts the text encoder's tokenizer truncates -> results/tables/prompts.csv (long format)."""

import csv
import logging

from imagenet_sd.prompts.prompts import load_prompt_file, truncation
from imagenet_sd.runtime import atomic_path, setup_logging

log = logging.getLogger("imagenet_sd.prompt_summary")

COLUMNS = (
    "clone",
    "class_index",
    "wnid",
    "class_key",
    "name_override",
    "recipe",
    "images",
    "truncated",
    "max_tokens",
    "max_tokens_seen",
    "distinct_prompts",
    "example_1",
    "example_2",
    "example_3",
)


def summary_rows(clones: dict) -> list[dict]:
    """clones: {clone: {"prompts": [prompt file per class, in class order], "images_per_class": n}}."""
    rows, seen = [], {}
    for clone, spec in sorted(clones.items()):
        n = spec["images_per_class"]
        for index, path in enumerate(spec["prompts"]):
            record = load_prompt_file(path)
            if (path, n) not in seen:  # a class shared by clones of the same size is counted once
                seen[path, n] = truncation(record, n)
            counts = seen[path, n]
            rows.append(
                {
                    "clone": clone,
                    "class_index": index,
                    "wnid": record["wnid"],
                    "class_key": record["class_key"],
                    "name_override": record.get("name_override") or "",
                    "recipe": record["recipe"],
                    "images": n,
                    **{k: counts[k] for k in ("truncated", "max_tokens", "max_tokens_seen", "distinct_prompts")},
                    **{f"example_{i + 1}": p for i, p in enumerate(record["examples"]["train"][:3])},
                }
            )
    return rows


def main(*, clones, output):
    rows = summary_rows(clones)
    with atomic_path(output) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    for clone in sorted(clones):
        mine = [r for r in rows if r["clone"] == clone]
        truncated = sum(r["truncated"] for r in mine)
        images = sum(r["images"] for r in mine)
        report = log.warning if truncated else log.info
        report(
            "clone %s: %d of %d train prompts exceed the text encoder's limit and will be truncated "
            "(%d of %d classes affected)",
            clone,
            truncated,
            images,
            sum(1 for r in mine if r["truncated"]),
            len(mine),
        )
    return rows


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    main(clones=snakemake.params.clones, output=snakemake.output[0])
