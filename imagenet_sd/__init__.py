"""imagenet-sd: synthetic ImageNet clones with text-to-image diffusion, trained and measured on real images.

One sub-package per stage of the pipeline, in the order the rules run: prompts -> generate -> data -> quality ->
train -> evaluate -> report, and ops (status, cost) over the whole plan. Modules at the top are shared by every
stage (config, paths, seeds, runtime, progress) or plan the whole run over the stages (plan, output_plan,
report_plan, quality_plan, transfer_plan, adaptation_plan). A module imports only the top's shared modules, its
own stage and earlier stages (tests/unit/test_layers.py checks it).
"""
