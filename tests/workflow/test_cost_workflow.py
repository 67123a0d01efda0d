"""The workflow tier of test_cost: its tests that run the real Snakemake (the unit tests are in
tests/unit/test_cost.py)."""

from imagenet_sd.ops import cost


def test_after_the_demo_nothing_is_left_and_its_own_chunks_give_the_rate(demo_run, monkeypatch):
    """Real stats JSON written by the demo's generate jobs (on the CPU)."""
    monkeypatch.chdir(demo_run)
    est = cost.estimate(cost.load_config(["config.yaml"]), root=demo_run)
    gen, train = est.generation.iloc[0], est.training.iloc[0]
    assert gen.to_generate == 0 and gen.jobs == 0 and gen.on_disk == gen.images > 0
    assert gen.gpu_hours == 0 and gen.on_disk_gpu_hours > 0
    assert gen.throughput_from.startswith("measured:") and "cpu" in gen.throughput_from
    assert train.status == "trained" and train.gpu_hours == 0
    assert est.gpu_hours == 0
