# One prompt file per (recipe, class): the class's WordNet fields and the recipe, from which the prompt of
# every image follows as a pure function of (seed, recipe, class, split, index).


rule prompts:
    input:
        wordnet=ancient(WORDNET),
        tokenizer=ancient(TOKENIZER),
        scenes=lambda w: [ancient(f) for f in scene_files(recipe_params(w)["recipes"])],
    output:
        "results/prompts/{recipe_key}/{ckey}.json",
    log:
        "logs/prompts/{recipe_key}/{ckey}.log",
    params:
        recipe=recipe_params,
        wnid=lambda w: PLAN.class_entry(w.ckey).wnid,
        name=lambda w: PLAN.class_entry(w.ckey).name,
        seed=config["seed"],
    conda:
        "../envs/imagenet-sd.yaml"
    script:
        "../workflow_scripts/prompts.py"


rule prompt_summary:
    input:
        prompts=all_prompt_files(),
        tokenizer=ancient(TOKENIZER),
    output:
        "results/tables/prompts.csv",
    log:
        "logs/prompt_summary.log",
    params:
        clones=lambda w: {
            name: {"prompts": PLAN.clone_prompts(name), "images_per_class": c.images_per_class}
            for name, c in PLAN.clones.items()
        },
    conda:
        "../envs/imagenet-sd.yaml"
    script:
        "../workflow_scripts/prompt_summary.py"
