# Chunk tars of one clone (or a real clone's ImageFolder) -> WebDataset train shards shuffled across classes,
# and the held-out split as an ImageFolder evaluation set.


rule pack:
    input:
        unpack(clone_inputs),
    output:
        shards=directory(paths.SHARDS),
        index=paths.SHARD_INDEX,
        heldout=directory(paths.HELDOUT),
    log:
        "logs/pack/{clone}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    resources:
        mem_mb=4000,
        runtime=240,  # IN-1K: 1.3M images read from chunk tars and rewritten as shards
    params:
        classes=clone_classes,
        images_per_class=clone_setting("images_per_class"),
        heldout_per_class=clone_setting("heldout_per_class"),
        shard_size=clone_setting("shard_size"),
        seed=config["seed"],
        source=clone_source,
    script:
        "../workflow_scripts/pack.py"


# A tiny real image set that ships inside scikit-learn (1,797 8x8 scans of digits), written as an ImageFolder:
# the demo's real-data clone, packed by the rule above like real ImageNet train.
rule sklearn_digits:
    output:
        directory(paths.SKLEARN_DIGITS),
    log:
        "logs/sklearn_digits.log",
    conda:
        "../envs/imagenet-sd.yaml"
    script:
        "../workflow_scripts/sklearn_digits.py"


# How a clone was made, beside its shards: generator and licence, recipe, seeds, counts, re-draws, quality,
# the exact config entries, the code version, and how to read each image's provenance (docs/quality.md).
rule dataset_card:
    input:
        unpack(card_inputs),
    output:
        json=paths.CARD_JSON,
        markdown=paths.CARD_MARKDOWN,
    log:
        "logs/dataset_card/{clone}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        made_of=card_made_of,
    script:
        "../workflow_scripts/dataset_card.py"
