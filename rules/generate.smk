# One job per (class, chunk of image indices). Output paths hold exactly what determines the pixels.
# Runtime settings (batch size, compile, attention) are read from the config by the script, outside params,
# so changing them never invalidates images.


rule generate:
    input:
        prompts=paths.PROMPTS,
        pipeline=generator_pipeline,
    output:
        tar=paths.CHUNK,
        stats=paths.CHUNK_STATS,
    log:
        "logs/generate/{generator_key}/{recipe_key}/{split}/{ckey}/{start}-{stop}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    resources:
        gpu=1,
        cpus_per_task=4,  # JPEG encoding and tar writing beside the GPU
        mem_mb=32000,
        runtime=60,  # minutes: a 1,300-image chunk takes ~5-17 min on an H100/A100 at the paper's settings
    params:
        generator=generator_name,
        model_dir=generator_model_dir,
        settings=generator_settings,
    script:
        "../workflow_scripts/generate.py"


# A pipeline adapted on a real clone's train split, each image captioned by its class's prompt (issue 22). A
# stop signal saves a resume state in the output folder; the retry (or a rerun) resumes it.
rule adapt:
    input:
        unpack(adaptation_inputs),
    output:
        model_index=paths.model_index(paths.ADAPTED_FOLDER),
        losses=paths.ADAPTED_LOSSES,
    log:
        "logs/adapt/{adaptation_key}.log",
    retries: 3
    conda:
        "../envs/imagenet-sd.yaml"
    threads: 4
    resources:
        gpu=1,
        cpus_per_task=4,
        mem_mb=32000,
        runtime=600,  # minutes: the demo's takes ~2 min on 2 CPU cores; a LoRA on SD at full scale, hours
    params:
        p=adaptation_params,
    script:
        "../workflow_scripts/adapt.py"
