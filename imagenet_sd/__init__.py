"""imagenet-sd: synthetic ImageNet clones with text-to-image diffusion, trained and measured on real images.

One sub-package per stage of the pipeline, in the order the rules run: prompts -> generate -> data -> quality ->
train -> evaluate -> report, then planning (the planners of the whole run over the stages: clones, models,
transfer, outputs, report, quality, adaptation) and ops (status, cost) over the whole plan. Modules at the top
are shared by every stage (config, paths, seeds, runtime, progress). A module imports only the top's shared
modules, its own stage and earlier stages (tests/unit/test_layers.py checks it).
"""
