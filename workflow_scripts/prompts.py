"""One class's prompt file: its WordNet fields under the recipe (and the recipes it mixes), from which the
prompt of every image follows (imagenet_sd.prompts.prompts.image_prompt)."""

import logging

from imagenet_sd.planning.keys import class_key
from imagenet_sd.prompts.prompts import build_record, write_prompt_file
from imagenet_sd.prompts.wordnet import nltk_root_of, open_wordnet
from imagenet_sd.runtime import setup_logging, versions

log = logging.getLogger("imagenet_sd.prompts.prompts")


def main(*, output, wnid, name, recipe, seed, nltk_data):
    """`recipe` is {"name": recipe name, "recipes": {name: settings}} with every mixed-in recipe included."""
    record = build_record(
        open_wordnet(nltk_data),
        wnid=wnid,
        class_key=class_key(wnid, name),
        name=name,
        recipe=recipe["name"],
        recipes=recipe["recipes"],
        seed=seed,
    )
    record["versions"] = versions()
    write_prompt_file(output, record)
    log.info(
        "%s (%s) under recipe %s: %s",
        wnid,
        record["synset"]["name"],
        recipe["name"],
        " | ".join(record["examples"]["train"][:3]),
    )


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    main(
        output=snakemake.output[0],
        wnid=snakemake.params.wnid,
        name=snakemake.params.name,
        recipe=snakemake.params.recipe,
        seed=snakemake.params.seed,
        nltk_data=nltk_root_of(snakemake.input.wordnet),
    )
