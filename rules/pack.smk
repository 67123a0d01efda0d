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
        directory("resources/datasets/sklearn-digits"),
    log:
        "logs/sklearn_digits.log",
    conda:
        "../envs/imagenet-sd.yaml"
    script:
        "../workflow_scripts/sklearn_digits.py"
