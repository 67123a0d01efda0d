# Local materialisation of what GPU jobs must find on disk: WordNet, CLIP's tokenizer, pipelines.


# WordNet 3.0 from an existing nltk_data (config, NLTK_DATA), Debian's files, or nltk.download: a local
# rule, so a download happens on the login node, where there is internet.
rule wordnet:
    output:
        WORDNET,
    log:
        "logs/wordnet.log",
    params:
        nltk_data=config["wordnet"]["nltk_data"],
        debian_dir=config["wordnet"]["debian_dir"],
    conda:
        "../envs/imagenet-sd.yaml"
    script:
        "../workflow_scripts/wordnet.py"


rule clip_tokenizer:
    output:
        vocab=TOKENIZER,
        merges="resources/clip-tokenizer/merges.txt",
    log:
        "logs/clip_tokenizer.log",
    conda:
        "../envs/imagenet-sd.yaml"
    script:
        "../workflow_scripts/build_clip_tokenizer.py"


rule tiny_pipeline:
    input:
        tokenizer=ancient(TOKENIZER),
    output:
        "resources/pipelines/{pipeline}/model_index.json",
    log:
        "logs/tiny_pipeline/{pipeline}.log",
    params:
        settings=lambda w: config["pipelines"][w.pipeline],
        folder=lambda w: f"resources/pipelines/{w.pipeline}",
    conda:
        "../envs/imagenet-sd.yaml"
    script:
        "../workflow_scripts/build_tiny_pipeline.py"


rule prefetch_weights:
    output:
        "resources/hub/{hub_model}/{revision}/model_index.json",
    log:
        "logs/prefetch_weights/{hub_model}/{revision}.log",
    params:
        model=lambda w: hub_model_id(w.hub_model),
        revision=lambda w: w.revision,
        folder=lambda w: f"resources/hub/{w.hub_model}/{w.revision}",
    conda:
        "../envs/imagenet-sd.yaml"
    script:
        "../workflow_scripts/prefetch_weights.py"
