# Pages of `snakemake --report`: contact sheets, generation statistics, training curves, and every registered
# result table and figure (imagenet_sd/report/report.py: TABLES, FIGURES). Cheap: they read small samples and
# summaries, never a whole clone.


rule contact_sheet:
    input:
        unpack(sheet_inputs),
    output:
        report(
            "results/report/clones/{clone}/contact_sheet.jpg",
            caption="../report/contact_sheet.rst",
            category="Clones",
            subcategory="{clone}",
            labels={"page": "contact sheet"},
        ),
    log:
        "logs/report/contact_sheet/{clone}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        sheet=sheet_params,
        settings=REPORT,
    script:
        "../workflow_scripts/contact_sheet.py"


rule comparison_sheet:
    input:
        comparison_inputs,
    output:
        report(
            "results/report/compare/{class_set}.jpg",
            caption="../report/comparison_sheet.rst",
            category="Clones",
            subcategory="side by side",
            labels={"class set": "{class_set}"},
        ),
    log:
        "logs/report/comparison_sheet/{class_set}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        sheet=comparison_params,
        settings=REPORT,
    script:
        "../workflow_scripts/contact_sheet.py"


rule generation_report:
    input:
        clone_stats,
    output:
        csv="results/report/clones/{clone}/generation.csv",
        html=report(
            "results/report/clones/{clone}/generation.html",
            caption="../report/generation.rst",
            category="Clones",
            subcategory="{clone}",
            labels={"page": "generation statistics"},
        ),
    log:
        "logs/report/generation/{clone}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        generator=clone_generator,
    script:
        "../workflow_scripts/generation_report.py"


rule training_curves:
    input:
        "results/runs/{run}/metrics.jsonl",
    output:
        report(
            "results/report/runs/{run}/curves.png",
            caption="../report/training_curves.rst",
            category="Training",
            labels={"run": "{run}"},
        ),
    log:
        "logs/report/training_curves/{run}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    script:
        "../workflow_scripts/training_curves.py"


rule report_table:
    input:
        table_source,
    output:
        report(
            "results/report/tables/{table}.html",
            caption="../report/registered.rst",
            category=table_category,
            labels={"table": "{table}"},
        ),
    log:
        "logs/report/tables/{table}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        caption=table_caption,
    script:
        "../workflow_scripts/report_table.py"


rule report_figure:
    input:
        figure_source,
    output:
        report(
            "results/report/figures/{figure}.png",
            caption="../report/registered.rst",
            category=figure_category,
            labels={"figure": "{figure}"},
        ),
    log:
        "logs/report/figures/{figure}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        caption=figure_caption,
    script:
        "../workflow_scripts/report_table.py"


rule adaptation_curves:
    input:
        paths.ADAPTED_LOSSES,
    output:
        report(
            "results/report/adaptations/{adaptation_key}/losses.png",
            caption="../report/adaptation_curves.rst",
            category="Training",
            labels={"adaptation": "{adaptation_key}"},
        ),
    log:
        "logs/report/adaptation_curves/{adaptation_key}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    script:
        "../workflow_scripts/adaptation_curves.py"
