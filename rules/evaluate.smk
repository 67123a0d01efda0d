# Top-1 / top-5 of any model (a run's checkpoint or an external one) on an ImageFolder evaluation set
# (scored on the classes both share).


rule evaluate:
    input:
        checkpoint=model_checkpoint,
        verified=model_verified,
        images=evalset_input,
    output:
        paths.EVALUATION,
    log:
        "logs/evaluate/{model}/{evalset}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    threads: 8
    resources:
        gpu=1,
        cpus_per_task=8,  # sbatch's cpus; `threads` alone is capped by the login node's cores
        mem_mb=32000,
        runtime=120,
    params:
        model=model_params,
        training=model_eval_training,
        evalset=evalset_spec,
        images=evalset_folder,
    script:
        "../workflow_scripts/evaluate.py"
