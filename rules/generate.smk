# One job per (class, chunk of image indices). Output paths hold exactly what determines the pixels.
# Runtime settings (batch size, compile, attention) are read from the config by the script, outside params,
# so changing them never invalidates images.


rule generate:
    input:
        prompts="results/prompts/{recipe_key}/{ckey}.json",
        pipeline=generator_pipeline,
    output:
        tar="results/generated/{generator_key}/{recipe_key}/{split}/{ckey}/{start}-{stop}.tar",
        stats="results/generated/{generator_key}/{recipe_key}/{split}/{ckey}/{start}-{stop}.json",
    log:
        "logs/generate/{generator_key}/{recipe_key}/{split}/{ckey}/{start}-{stop}.log",
    params:
        generator=lambda w: PLAN.by_generator_key(w.generator_key),
        model_dir=lambda w: model_folder(PLAN.by_generator_key(w.generator_key)),
        settings=lambda w: PLAN.pixel_settings(PLAN.by_generator_key(w.generator_key)),
    resources:
        gpu=1,
        cpus_per_task=4,  # JPEG encoding and tar writing beside the GPU
        mem_mb=32000,
        runtime=60,  # minutes: a 1,300-image chunk takes ~5-17 min on an H100/A100 at the paper's settings
    conda:
        "../envs/imagenet-sd.yaml"
    script:
        "../workflow_scripts/generate.py"
