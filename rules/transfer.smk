# Linear probes on frozen features (validation split, search, refit, test), then the transfer tables.
# `probe` (scikit-learn logistic regression) is a CPU job; `probe_linear` (SGD on large sets) a GPU job.
# One job per (model, dataset, split seed): the seeds re-partition the same features files (docs/transfer.md).


rule probe:
    input:
        unpack(probe_features),
    output:
        paths.probe_output("logistic"),
    log:
        "logs/probe/{model}/{dataset}/logistic-{probe_hash}/seed{seed}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    threads: 4
    resources:
        cpus_per_task=4,
        mem_mb=16000,
        runtime=480,  # Food101 / SUN397 (76k / 20k x 2048): 30 L-BFGS fits
    params:
        kind="logistic",
        settings=config["transfer"]["logistic"],
        val_fraction=config["transfer"]["val_fraction"],
    script:
        "../workflow_scripts/probe.py"


rule probe_linear:
    input:
        unpack(probe_features),
    output:
        paths.probe_output("linear"),
    log:
        "logs/probe/{model}/{dataset}/linear-{probe_hash}/seed{seed}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    threads: 8
    resources:
        gpu=1,
        cpus_per_task=8,
        mem_mb=64000,  # ImageNet-1K train features: 1.28M x 2048 float32 = 10.5 GB
        runtime=720,
    params:
        kind="linear",
        settings=config["transfer"]["linear"],
        val_fraction=config["transfer"]["val_fraction"],
    script:
        "../workflow_scripts/probe.py"


rule transfer_tables:
    input:
        probe_files=probe_outputs(),
    output:
        csv="results/tables/transfer.csv",
        markdown="results/tables/transfer.md",
        png="results/tables/transfer.png",
    log:
        "logs/transfer_tables.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        models=model_table_info("transfer"),
        datasets=transfer_table_datasets(),
    script:
        "../workflow_scripts/result_tables.py"
