# Frozen pooled features of one model on one split of one dataset (transfer set or evaluation set), test
# preprocessing only. The path holds model, preprocessing key, dataset and split: nothing else.


rule features:
    input:
        checkpoint=model_checkpoint,
        verified=model_verified,
        index=paths.DATASET_INDEX,
    output:
        paths.FEATURES.replace("{prep_key}", PREP_KEY),
    log:
        f"logs/features/{{model}}/{PREP_KEY}/{{dataset}}/{{part}}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    threads: 8
    resources:
        gpu=1,
        cpus_per_task=8,  # JPEG decoding feeds the GPU
        mem_mb=32000,
        runtime=120,  # iNat-2018 train (437k images) at ~1,500 img/s on one GPU: ~5 min
    params:
        model=model_params,
        preprocessing=config["transfer"]["preprocessing"],
    script:
        "../workflow_scripts/features.py"
