# ResNet-50 from scratch on a clone's shards.


rule train:
    input:
        index=lambda w: f"results/clones/{run_clone(w)}/train.json",
        shards=lambda w: f"results/clones/{run_clone(w)}/train",
    output:
        checkpoint="results/runs/{run}/checkpoint.pt",
        metrics="results/runs/{run}/metrics.jsonl",
    log:
        "logs/train/{run}.log",
    params:
        training=lambda w: config["trainings"][config["runs"][w.run]["training"]],
        classes=lambda w: [e.wnid for e in PLAN.clones[run_clone(w)].classes],
    threads: 8
    resources:
        gpu=1,
        cpus_per_task=8,  # sbatch's cpus; `threads` alone is capped by the login node's cores
        mem_mb=64000,
        runtime=2880,
    conda:
        "../envs/imagenet-sd.yaml"
    script:
        "../workflow_scripts/train.py"
