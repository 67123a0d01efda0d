# Long-format results (one row per model x evaluation set) and a Markdown pivot for people; the published
# numbers beside ours (evaluations and attacks).


rule tables:
    input:
        eval_files=evaluation_outputs(),
    output:
        csv="results/tables/evaluation.csv",
        markdown="results/tables/evaluation.md",
    log:
        "logs/tables.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        runs=model_table_info("evaluate"),
        evalsets=config["evalsets"],
        real_clones=real_clones(),
        budget=training_budget(run_budgets(config)),
    script:
        "../workflow_scripts/result_tables.py"


rule references:
    input:
        eval_files=evaluation_outputs(),
        attack_files=attack_outputs(),
    output:
        csv="results/tables/references.csv",
        markdown="results/tables/references.md",
    log:
        "logs/references.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        facts=reference_facts(config),
    script:
        "../workflow_scripts/result_tables.py"
