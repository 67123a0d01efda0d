# Transfer datasets: the ones torchvision downloads (and scikit-learn's bundled digits) prepared on the login
# node, and one index per dataset split (image paths, labels, class names) that the features jobs read.


rule prepare_transfer_set:
    output:
        train=paths.TRANSFER_LIST.replace("{part}", "train"),
        test=paths.TRANSFER_LIST.replace("{part}", "test"),
    log:
        "logs/prepare_transfer_set/{dataset}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        spec=transfer_set_spec,
        seed=config["seed"],
    script:
        "../workflow_scripts/prepare_transfer_set.py"


rule index_dataset:
    input:
        dataset_index_input,
    output:
        paths.DATASET_INDEX,
    log:
        "logs/index_dataset/{dataset}/{part}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        dataset=dataset_params,
    script:
        "../workflow_scripts/index_dataset.py"
