# External models: URLs and torchvision weights fetched on the login node (GPU nodes are often offline), and
# every external checkpoint checked (keys, shapes, class count) before a GPU job reads it.


rule fetch_model:
    output:
        paths.FETCHED_MODEL,
    log:
        "logs/fetch_model/{fetched}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        source=fetch_source,
    script:
        "../workflow_scripts/fetch_model.py"


rule check_model:
    input:
        checkpoint=model_checkpoint,
    output:
        paths.MODEL_CHECK,
    log:
        "logs/check_model/{model}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        model=model_params,
    script:
        "../workflow_scripts/check_model.py"
