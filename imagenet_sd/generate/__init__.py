"""Stage 2, generate: text-to-image pipelines (text2image, families, sd14, the demo's tiny_pipeline and
tiny_families), guidance scales (guidance), the prompt cache (prompt_encoder), one generate job (generation) writing
chunk tars (chunks) checked against their stats records (chunk_check), and FLOPs per image (flops)."""
