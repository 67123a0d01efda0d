# Representation statistics of each model's frozen features (from the features rule) on evaluation sets,
# over the images of the model's own classes, and their table and spider plot normalised to a real-data model.


rule analyze:
    input:
        features=representation_features,
    output:
        paths.REPRESENTATION,
    log:
        "logs/analyze/{model}/{evalset}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    resources:
        mem_mb=16000,  # 50,000 x 2,048 features in float64, and a 2,048 x 2,048 correlation matrix
        runtime=30,
    params:
        classes=model_classes,
        eps=config["representation"]["coding_rate_eps"],
        threshold=config["representation"]["sparsity_threshold"],
    script:
        "../workflow_scripts/analyze.py"


rule representation_tables:
    input:
        stat_files=representation_outputs(),
    output:
        csv="results/tables/representation.csv",
        markdown="results/tables/representation.md",
        png="results/tables/representation.png",
    log:
        "logs/representation_tables.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        kinds=model_data_kinds(),
        reference=config["representation"]["reference"],
    script:
        "../workflow_scripts/result_tables.py"
