"""The planners: what a config asks for, over every stage, as output keys, paths, params and checks.

Snakemake-free: rules/common.smk calls in with the config and the wildcards, and the unit tests call the same
functions. One module per thing planned, each importing only those above it:

- keys: the short hash of settings, class keys and chunk ranges that every output key is made of
- sheets: class sheets read and checked
- adaptation: `adaptations` entries (a pipeline adapted on a real clone) and which pipeline a generator loads
- clones: the Plan: clones, generator and recipe keys, chunk and prompt paths, the config's cross references
- quality: the quality step (which CLIP, which clones, its embeddings and curation)
- models: runs and external models, their evaluation settings and results
- transfer: datasets of the features rule, their index, features and linear probes
- outputs: the per-model files, tables, cards and what the prompts and pack jobs read
- report: the pages of `snakemake --report`
"""
