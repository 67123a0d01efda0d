# Quality of a generated clone before training on it (docs/quality.md): CLIP embeddings of each class's train
# images (one job per class, keyed like its chunks), then per-class and per-clone tables and the worst classes.


rule tiny_clip:
    input:
        tokenizer=ancient(TOKENIZER),
    output:
        paths.CLIP_CONFIG.format(folder=paths.TINY_CLIP_FOLDER),
    log:
        "logs/tiny_clip.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        settings=config["quality"].get("tiny"),
    script:
        "../workflow_scripts/tiny_clip.py"


# A hub CLIP, downloaded on the login node like a generator's weights (embedding jobs stay offline).
rule prefetch_clip:
    output:
        paths.CLIP_CONFIG.format(folder=paths.HUB_FOLDER),
    log:
        "logs/prefetch_clip/{hub_model}/{revision}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        model=hub_model,
        revision=hub_revision,
        folder=hub_download_folder,
    script:
        "../workflow_scripts/prefetch_weights.py"


rule quality_embed:
    input:
        unpack(quality_embed_inputs),
    output:
        paths.QUALITY_EMBEDDINGS,
    log:
        "logs/quality_embed/{clip_key}/{generator_key}/{recipe_key}/{ckey}/train-{images}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    threads: 1  # two classes at once on the demo's 2 cores; one core embeds 1,300 images through ViT-B/32 in minutes
    resources:
        mem_mb=8000,
        runtime=15,  # minutes; the slurm profile runs 20 classes to a job (group_slot: one member's cpus and memory)
    params:
        model_dir=quality_clip_folder(),
        batch_size=config["quality"]["batch_size"],
        device=config["quality"]["device"],
    script:
        "../workflow_scripts/quality_embed.py"


# The real images a clone's FD and KID compare it with, one job per class, embedded like the generated ones.
rule quality_embed_reference:
    input:
        unpack(quality_reference_inputs),
    output:
        paths.QUALITY_REFERENCE,
    log:
        "logs/quality_embed_reference/{clip_key}/{reference_key}/{wnid}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=15,
    params:
        model_dir=quality_clip_folder(),
        source=quality_reference_source,
        batch_size=config["quality"]["batch_size"],
        device=config["quality"]["device"],
    script:
        "../workflow_scripts/quality_embed.py"


rule quality_tables:
    input:
        quality_all_embeddings(),
    output:
        **paths.QUALITY_TABLES,
    log:
        "logs/quality_tables.log",
    conda:
        "../envs/imagenet-sd.yaml"
    resources:
        mem_mb=16000,  # IN-1K: 1.3M embeddings of 512 floats in memory (2.7 GB), a Vendi eigensolve per class
        runtime=120,
    params:
        clones=quality_table_clones(),
        settings={k: v for k, v in config["quality"].items() if k not in ("batch_size", "device")},
        curation=QP.curated(config, PLAN),
        references=quality_references(),
    script:
        "../workflow_scripts/quality_tables.py"


# The worst classes of a clone with their images: what to fix (a name override) and regenerate alone.
rule quality_sheet:
    input:
        table=paths.QUALITY_TABLES["classes"],
        chunks=quality_sheet_chunk_files,
    output:
        report(
            "results/report/clones/{clone}/quality_worst.jpg",
            caption="../report/quality_sheet.rst",
            category="Clones",
            subcategory="{clone}",
            labels={"page": "worst classes"},
        ),
    log:
        "logs/report/quality_sheet/{clone}.log",
    conda:
        "../envs/imagenet-sd.yaml"
    params:
        chunks=quality_sheet_chunks,
        settings=REPORT,
    script:
        "../workflow_scripts/quality_sheet.py"
