# Local materialisation of what GPU jobs must find on disk: WordNet, CLIP's tokenizer, pipelines.


# WordNet 3.0 from an existing nltk_data (config, NLTK_DATA), Debian's files, or nltk.download: a local
# rule, so a download happens on the login node, where there is internet.
rule wordnet:
    output:
        WORDNET,
    log:
        "logs/wordnet.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        nltk_data=config["wordnet"]["nltk_data"],
        debian_dir=config["wordnet"]["debian_dir"],
    script:
        "../workflow_scripts/wordnet.py"


rule clip_tokenizer:
    output:
        vocab=TOKENIZER,
        merges=paths.TOKENIZER_MERGES,
    log:
        "logs/clip_tokenizer.log",
    conda:
        "../envs/imagenet-sd.yaml"
    script:
        "../workflow_scripts/clip_tokenizer.py"


rule tiny_pipeline:
    input:
        tokenizer=ancient(TOKENIZER),
    output:
        paths.model_index(paths.PIPELINE_FOLDER),
    log:
        "logs/tiny_pipeline/{pipeline}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        settings=tiny_pipeline_settings,
        folder=tiny_pipeline_folder,
    script:
        "../workflow_scripts/tiny_pipeline.py"


rule prefetch_weights:
    output:
        paths.model_index(paths.HUB_FOLDER),
    log:
        "logs/prefetch_weights/{hub_model}/{revision}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        model=hub_model,
        revision=hub_revision,
        folder=hub_download_folder,
    script:
        "../workflow_scripts/prefetch_weights.py"
