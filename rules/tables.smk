# Long-format results (one row per model x evaluation set) and a Markdown pivot for people.


rule tables:
    input:
        evaluation_outputs(),
    output:
        csv="results/tables/evaluation.csv",
        markdown="results/tables/evaluation.md",
        references="results/tables/references.csv",
    log:
        "logs/tables.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        runs=model_table_info("evaluate"),
        evalsets=config["evalsets"],
        real_clones=real_clones(),
        references=reference_facts(config),
    script:
        "../workflow_scripts/make_evaluation_tables.py"
