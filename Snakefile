# imagenet-sd: synthetic ImageNet clones from a text-to-image model, trained and measured on real images.
# Reads like the data flow: WordNet -> prompts -> generate -> pack -> train -> evaluate -> tables.
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
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/tables.smk"
include: "rules/report.smk"


report: "report/workflow.rst"


# Cheap materialisation and aggregation run on the login node (and the download of weights must: GPU nodes
# are often offline).
localrules:
    all,
    wordnet,
    clip_tokenizer,
    generator,
    prefetch_weights,
    prompt_summary,
    tables,
    contact_sheet,
    comparison_sheet,
    generation_report,
    training_curves,
    report_table,
    report_figure,


rule all:
    input:
        "results/tables/prompts.csv",
        "results/tables/evaluation.csv",
        "results/tables/evaluation.md",
        report_outputs(),
