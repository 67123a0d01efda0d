# Adversarial robustness: one job per (model, evaluation set, attack, epsilon) on a fixed seeded subset of
# the set, and the robustness tables (attacks, calibration and corruptions of every evaluation).


rule attack:
    input:
        checkpoint=model_checkpoint,
        verified=model_verified,
        images=evalset_input,
    output:
        paths.ATTACK,
    log:
        "logs/attack/{model}/{evalset}/{attack}/eps{eps}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    threads: 8
    resources:
        gpu=1,
        cpus_per_task=8,  # sbatch's cpus; `threads` alone is capped by the login node's cores
        mem_mb=32000,
        runtime=60,  # 1,000 images x 20 PGD steps of ResNet-50: minutes on one GPU
    params:
        model=model_params,
        settings=attack_settings,
        epsilon=attack_epsilon,
        evalset=evalset_spec,
        images=evalset_folder,
        resolution=model_eval_resolution,
        subset=config["robustness"]["images"],
        seed=config["robustness"]["seed"],
        batch_size=config["robustness"]["batch_size"],
    script:
        "../workflow_scripts/attack.py"


rule robustness_tables:
    input:
        eval_files=evaluation_outputs(),
        attack_files=attack_outputs(),
    output:
        csv="results/tables/robustness.csv",
        markdown="results/tables/robustness.md",
        png="results/tables/robustness.png",
    log:
        "logs/robustness_tables.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        kinds=model_data_kinds(),
    script:
        "../workflow_scripts/result_tables.py"
