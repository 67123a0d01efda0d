"""Operating a run, over the whole plan: how far it has come (`python -m imagenet_sd.ops.status`), what it costs
(`python -m imagenet_sd.ops.cost`), and the throughput table both read (throughput)."""
