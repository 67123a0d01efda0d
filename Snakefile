# imagenet-sd: synthetic ImageNet clones from a text-to-image model, trained and measured on real images.
# Reads like the data flow: WordNet -> prompts -> generate -> pack -> train -> models (runs and external
# checkpoints) -> datasets -> features -> evaluate / probes / attacks / representation statistics -> tables.
from snakemake.utils import min_version

min_version("9.0")


# The embedded demo is the default; a config given with --configfile replaces it instead of being merged
# into it (Snakemake would otherwise merge the demo's named entries into every user config).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/resources.smk"
include: "rules/prompts.smk"
include: "rules/generate.smk"
include: "rules/pack.smk"
include: "rules/quality.smk"
include: "rules/train.smk"
include: "rules/models.smk"
include: "rules/datasets.smk"
include: "rules/features.smk"
include: "rules/evaluate.smk"
include: "rules/transfer.smk"
include: "rules/robustness.smk"
include: "rules/representation.smk"
include: "rules/tables.smk"
include: "rules/report.smk"


report: "report/workflow.rst"


# Cheap materialisation, checks and aggregation run on the login node (and downloads of weights and datasets
# must: GPU nodes are often offline).
localrules:
    all,
    wordnet,
    clip_tokenizer,
    tiny_pipeline,
    tiny_clip,
    prefetch_clip,
    prefetch_weights,
    fetch_model,
    check_model,
    prepare_transfer_set,
    index_dataset,
    prompt_summary,
    quality_sheet,
    dataset_card,
    tables,
    references,
    transfer_tables,
    sklearn_digits,
    robustness_tables,
    representation_tables,
    contact_sheet,
    comparison_sheet,
    generation_report,
    training_curves,
    adaptation_curves,
    report_table,
    report_figure,


rule all:
    input:
        "results/tables/prompts.csv",
        "results/tables/evaluation.csv",
        "results/tables/evaluation.md",
        "results/tables/references.csv",
        "results/tables/references.md",
        "results/tables/transfer.csv",
        "results/tables/transfer.md",
        "results/tables/transfer.png",
        "results/tables/robustness.csv",
        representation_table_outputs(),
        quality_outputs(),
        card_outputs(),
        report_outputs(),
