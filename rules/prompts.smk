# One prompt file per (recipe, class): the class's WordNet fields and the recipe, from which the prompt of
# every image follows as a pure function of (seed, recipe, class, split, index).


rule prompts:
    input:
        wordnet=ancient(WORDNET),
        tokenizer=ancient(TOKENIZER),
        scenes=recipe_scene_files,
    output:
        paths.PROMPTS,
    log:
        "logs/prompts/{recipe_key}/{ckey}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        recipe=recipe_params,
        wnid=class_wnid,
        name=class_name_override,
        seed=config["seed"],
    script:
        "../workflow_scripts/prompts.py"


rule prompt_summary:
    input:
        prompts=all_prompt_files(),
        tokenizer=ancient(TOKENIZER),
    output:
        paths.PROMPT_TABLE,
    log:
        "logs/prompt_summary.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        clones=prompt_table_clones(),
    script:
        "../workflow_scripts/prompt_summary.py"
