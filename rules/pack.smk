# Chunk tars of one clone (or a real clone's ImageFolder) -> WebDataset train shards shuffled across classes,
# and the held-out split as an ImageFolder evaluation set.


rule pack:
    input:
        unpack(clone_inputs),
    output:
        shards=directory("results/clones/{clone}/train"),
        index="results/clones/{clone}/train.json",
        heldout=directory("results/clones/{clone}/heldout"),
    log:
        "logs/pack/{clone}.log",
    params:
        classes=lambda w: [e.wnid for e in PLAN.clones[w.clone].classes],
        images_per_class=lambda w: PLAN.clones[w.clone].images_per_class,
        heldout_per_class=lambda w: PLAN.clones[w.clone].heldout_per_class,
        shard_size=lambda w: PLAN.clones[w.clone].shard_size,
        seed=config["seed"],
        source=clone_source,
    resources:
        mem_mb=4000,
        runtime=240,  # IN-1K: 1.3M images read from chunk tars and rewritten as shards
    conda:
        "../envs/imagenet-sd.yaml"
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
