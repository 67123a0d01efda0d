"""Stage 1, prompts: WordNet 3.0 found and read offline (wordnet, wordnet_sources), the prompt recipes and the
per-class prompt files (prompts), and the CLIP tokenizer written locally (clip_tokenizer)."""
