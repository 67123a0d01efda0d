# Top-1 / top-5 of a checkpoint on an ImageFolder evaluation set (scored on the classes both share).


rule evaluate:
    input:
        checkpoint="results/runs/{run}/checkpoint.pt",
        images=evalset_input,
    output:
        "results/runs/{run}/eval/{evalset}.json",
    log:
        "logs/evaluate/{run}/{evalset}.log",
    params:
        classes=lambda w: [e.wnid for e in PLAN.clones[run_clone(w)].classes],
        training=lambda w: config["trainings"][config["runs"][w.run]["training"]],
        evalset=lambda w: config["evalsets"][w.evalset],
        images=lambda w: evalset_images(w.evalset),
    threads: 8
    resources:
        gpu=1,
        cpus_per_task=8,  # sbatch's cpus; `threads` alone is capped by the login node's cores
        mem_mb=32000,
        runtime=120,
    conda:
        "../envs/imagenet-sd.yaml"
    script:
        "../workflow_scripts/evaluate.py"
