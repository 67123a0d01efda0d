# Chunk tars of one clone -> WebDataset train shards shuffled across classes, and the held-out split
# as an ImageFolder evaluation set.


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
    resources:
        mem_mb=4000,
        runtime=240,  # IN-1K: 1.3M images read from chunk tars and rewritten as shards
    conda:
        "../envs/imagenet-sd.yaml"
    script:
        "../workflow_scripts/pack.py"
