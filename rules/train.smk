# ResNet-50 from scratch on a clone's shards. A job stopped by a signal (SLURM's warning before the time
# limit) saves a resume state and fails; the retries resume it (docs/training.md).


rule train:
    input:
        index=run_shard_index,
        shards=run_shards,
    output:
        checkpoint=paths.CHECKPOINT,
        metrics=paths.METRICS,
    log:
        "logs/train/{run}.log",
    retries: 3  # each try resumes where the previous one stopped (time limit, preemption, node failure)
    conda:
        "../envs/imagenet-sd.yaml"
    threads: 8
    resources:
        gpu=1,
        cpus_per_task=8,  # sbatch's cpus; `threads` alone is capped by the login node's cores
        mem_mb=64000,
        runtime=2880,
    params:
        training=run_training,
        classes=run_classes,
    script:
        "../workflow_scripts/train.py"
