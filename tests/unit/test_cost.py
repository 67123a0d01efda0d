"""The cost estimate: chunks on disk, measured and tabulated throughput, training images seen."""

import copy
import json
import math
from pathlib import Path

import pytest
from conftest import REPO, toy_config

from imagenet_sd import paths
from imagenet_sd.config import ConfigError
from imagenet_sd.ops import cost
from imagenet_sd.ops import throughput as tp
from imagenet_sd.planning.clones import build_plan

H100 = "NVIDIA H100 80GB HBM3"


@pytest.fixture
def config(monkeypatch):
    """The demo config with chunks of 8 images (2 train + 1 held-out chunk per class), validated."""
    monkeypatch.chdir(REPO)
    config = toy_config()
    config["generators"]["tiny"]["chunk_size"] = 8
    return config


def validated(config: dict, tmp_path: Path) -> dict:
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return cost.load_config([str(path)])


def make_chunk(root: Path, tar: str, *, stats: dict | None) -> None:
    """A chunk as a generate job leaves it: the tar, then (if given) its stats JSON."""
    path = root / tar
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"tar")
    if stats is not None:
        start, stop = (int(x) for x in path.stem.split("-"))
        record = {"images": stop - start, **stats}
        path.with_suffix(".json").write_text(json.dumps(record))


def stats(steady: float, device: str = H100, load: float = 3.0, warmup: float = 1.5, write: float = 0.5) -> dict:
    return {
        "steady_images_per_second": steady,
        "images_per_second": steady / 2,
        "device": device,
        "seconds": {"load": load, "warmup": warmup, "denoise": 1.0, "decode": 1.0, "write": write},
    }


def test_missing_chunks_are_counted_at_the_measured_rate(config, tmp_path):
    config["clones"]["demo-2x"] = {**config["clones"]["demo"], "images_per_class": 32, "heldout_per_class": 0}
    config = validated(config, tmp_path)
    plan = build_plan(config)
    train, heldout = plan.clone_chunks("demo", "train"), plan.clone_chunks("demo", "heldout")
    assert len(train) == 12 and len(heldout) == 6
    for tar, steady in zip(train[:4], (1.5, 2.0, 2.0, 3.0)):
        make_chunk(tmp_path, tar, stats=stats(steady))
    make_chunk(tmp_path, heldout[0], stats=stats(100.0, device="cpu"))  # another device: the minority, ignored
    make_chunk(tmp_path, heldout[1], stats=None)  # a tar without stats JSON: the job did not finish

    est = cost.estimate(config, root=tmp_path)
    gen = est.generation.set_index("clone")
    made = 5 * 8
    assert gen.loc["demo", "images"] == 6 * 16 + 6 * 8
    assert gen.loc["demo", "on_disk"] == made
    assert gen.loc["demo", "to_generate"] == 6 * 24 - made and gen.loc["demo", "jobs"] == 18 - 5
    # The 2x clone shares its first 16 images per class with `demo`: only its new chunks are priced.
    assert gen.loc["demo-2x", "on_disk"] == 4 * 8
    assert gen.loc["demo-2x", "to_generate"] == 6 * 16 and gen.loc["demo-2x", "jobs"] == 12
    assert gen.loc["demo", "images_per_second"] == 2.0  # median of the H100 chunks
    fixed = 3.0 + 1.5 + 0.5
    assert gen.loc["demo", "gpu_hours"] == pytest.approx((13 * fixed + (6 * 24 - made) / 2.0) / 3600)
    assert gen.loc["demo-2x", "gpu_hours"] == pytest.approx((12 * fixed + 6 * 16 / 2.0) / 3600)
    assert gen.loc["demo", "on_disk_gpu_hours"] == pytest.approx(made / 2.0 / 3600)
    assert H100 in gen.loc["demo", "throughput_from"]
    assert any(paths.CHUNK_STATS.split("/")[1] in s and H100 in s for s in est.sources)


def test_a_named_gpu_uses_only_measurements_on_that_gpu(config, tmp_path):
    config = validated(config, tmp_path)
    tar = build_plan(config).clone_chunks("demo", "train")[0]
    make_chunk(tmp_path, tar, stats=stats(2.0))
    assert cost.estimate(config, gpu="H100", root=tmp_path).generation.images_per_second[0] == 2.0
    other = cost.estimate(config, gpu="A100", root=tmp_path)  # the tiny pipeline has no table row
    assert math.isnan(other.generation.gpu_hours[0]) and math.isnan(other.gpu_hours)
    assert "unknown" in cost.report(other, "demo")


def test_imagenet1k_costs_1_3m_images_at_the_table_rate(monkeypatch):
    monkeypatch.chdir(REPO)
    config = cost.load_config(["config/imagenet1k_sd.yaml"])
    est = cost.estimate(config, gpu="H100", root=REPO / "no-results-here")
    row = next(
        r
        for r in tp.load_throughput()
        if r["job"] == "generate"
        and r["gpu"] == "H100"
        and r["model"] == "sd-v1"
        and r["guidance"] == "yes"
        and r["steps"] == "50"
    )
    gen = est.generation.iloc[0]
    assert gen.to_generate == 1_300_000 and gen.jobs == 1000 and gen.on_disk == 0
    assert gen.images_per_second == row["images_per_second"]
    assert gen.gpu_hours == pytest.approx((1000 * row["fixed_seconds"] + 1_300_000 / row["images_per_second"]) / 3600)
    train = est.training.iloc[0]
    assert train.images_seen == 100 * 1_300_000
    assert train.crop_factor == pytest.approx(1 + 8 * (96 / 224) ** 2, abs=1e-3)
    assert "estimate" in gen.throughput_from and any("82.9 TFLOP" in s for s in est.sources)


def test_table_rows_scale_with_steps_and_know_guidance():
    rows = tp.load_throughput()
    wanted = {"model": "sd-v1", "resolution": "512x512", "steps": "50", "guidance": "yes", "dtype": "16-bit"}
    full = tp.table_rate(rows, "generate", wanted, "H100")
    half = tp.table_rate(rows, "generate", {**wanted, "steps": "25"}, "H100")
    unguided = tp.table_rate(rows, "generate", {**wanted, "guidance": "no"}, "H100")
    assert half.images_per_second == pytest.approx(2 * full.images_per_second) and "scaled" in half.source
    assert unguided.images_per_second > full.images_per_second
    assert tp.table_rate(rows, "generate", {**wanted, "resolution": "768x768"}, "H100") is None
    assert tp.gpu_matches("A100", "NVIDIA A100-SXM4-80GB") and not tp.gpu_matches("A10", "NVIDIA A100-SXM4-80GB")
    assert not tp.gpu_matches("A100", "NVIDIA A10")


def rate(model, resolution, steps, guidance, family=None):
    """The table's 16-bit H100 rate of a generator (a hub id or a folder with its declared family)."""
    wanted = {"model": tp.model_family(model, family), "resolution": resolution, "steps": str(steps)}
    return tp.table_rate(tp.load_throughput(), "generate", {**wanted, "guidance": guidance, "dtype": "16-bit"}, "H100")


def test_each_hub_family_has_its_own_rate_and_turbo_rows_are_not_scaled_across_steps():
    sd1 = rate("CompVis/stable-diffusion-v1-4", "512x512", 50, "yes")
    sdxl = rate("stabilityai/stable-diffusion-xl-base-1.0", "1024x1024", 50, "yes")
    assert sdxl.images_per_second < rate("stabilityai/stable-diffusion-2-1", "768x768", 50, "yes").images_per_second
    assert rate("stabilityai/stable-diffusion-2-1", "768x768", 50, "yes").images_per_second < sd1.images_per_second
    one, four = (rate("stabilityai/sdxl-turbo", "512x512", s, "no") for s in (1, 4))
    assert "scaled" not in four.source and 1 < one.images_per_second / four.images_per_second < 4
    assert rate("/models/my-turbo", "512x512", 4, "no", family="sdxl-turbo").images_per_second == four.images_per_second
    assert rate("/models/my-turbo", "512x512", 4, "no") is None  # an unnamed local folder has no row


def test_pixart_sd3_and_flux_are_priced_from_their_own_rows():
    pixart = rate("PixArt-alpha/PixArt-XL-2-512x512", "512x512", 20, "yes")
    assert rate("/models/pixart", "512x512", 20, "yes", family="pixart-alpha") == pixart
    sd35 = rate("stabilityai/stable-diffusion-3.5-medium", "1024x1024", 40, "yes")
    one, four = (rate("black-forest-labs/FLUX.1-schnell", "1024x1024", s, "no") for s in (1, 4))
    assert sd35.images_per_second < four.images_per_second < one.images_per_second < pixart.images_per_second
    assert "scaled" not in four.source and "estimate" in four.source
    # SD3.5 large and a folder declared sd3 (medium or large?) have no rows: unknown, not another model's rate
    assert rate("stabilityai/stable-diffusion-3.5-large", "1024x1024", 40, "yes") is None
    assert rate("/models/my-sd3", "1024x1024", 40, "yes", family="sd3") is None


def test_the_generator_study_prices_every_generator(monkeypatch):
    monkeypatch.chdir(REPO)
    est = cost.estimate(cost.load_config(["config/generators_in100.yaml"]), gpu="H100", root=REPO / "no-results")
    gen = est.generation.set_index("generator")
    assert len(gen) == 8 and not gen.gpu_hours.isna().any(), gen.throughput_from.to_dict()
    # a distilled model at 4 steps is cheaper per image than its guided 50-step base
    assert gen.images_per_second["sdxl-turbo"] > gen.images_per_second["sdxl-g2"]
    assert gen.images_per_second["flux-schnell"] > gen.images_per_second["sd35m-g2"]


def test_training_counts_images_seen_and_trained_runs(config, tmp_path):
    config["trainings"]["demo"]["max_steps"] = 3
    config = validated(config, tmp_path)
    est = cost.estimate(config, gpu="A100", root=tmp_path)
    run = est.training.iloc[0]
    assert run.images_seen == 3 * 16  # max_steps x batch_size, under epochs x images (2 x 96)
    rate = next(
        r for r in tp.load_throughput() if r["job"] == "train" and r["gpu"] == "A100" and r["dtype"] == "float32"
    )
    factor = (64**2 + 2 * 32**2) / int(rate["resolution"]) ** 2
    assert run.gpu_hours == pytest.approx(48 * factor / rate["images_per_second"] / 3600)
    checkpoint = tmp_path / paths.CHECKPOINT.format(run="demo")
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")
    done = cost.estimate(config, gpu="A100", root=tmp_path).training.iloc[0]
    assert done.status == "trained" and done.gpu_hours == 0 and done.on_disk_gpu_hours == pytest.approx(run.gpu_hours)


def test_command_line_prints_the_report_and_rejects_bad_configs(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(REPO)
    assert cost.main(["--configfile", "config/imagenet100_sd.yaml", "--gpu", "A100"]) == 0
    out = capsys.readouterr().out
    assert "| in100-sd " in out and "130,000" in out and "Total to run:" in out and "DeepLearningExamples" in out
    bad = copy.deepcopy(toy_config())
    bad["generators"]["tiny"]["guidance"] = 2.0
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(bad))
    assert cost.main(["--configfile", str(path)]) == 1
    assert "generators.tiny" in capsys.readouterr().err


def test_a_bad_throughput_row_names_its_line(tmp_path):
    table = (REPO / "data/throughput.tsv").read_text().splitlines()
    fields = table[1].split("\t")
    fields[tp.THROUGHPUT_COLUMNS.index("images_per_second")] = "fast"
    (tmp_path / "t.tsv").write_text("\n".join([table[0], "\t".join(fields)]) + "\n")
    with pytest.raises(ConfigError, match="line 2"):
        tp.load_throughput(tmp_path / "t.tsv")


def test_a_measured_table_row_replaces_the_estimate(tmp_path):
    text = (REPO / "data/throughput.tsv").read_text()
    estimate = next(r for r in tp.load_throughput() if r["job"] == "generate" and r["gpu"] == "H100")
    fields = [estimate[c] if c not in ("images_per_second", "kind", "source") else "" for c in tp.THROUGHPUT_COLUMNS]
    fields[tp.THROUGHPUT_COLUMNS.index("images_per_second")] = "4.2"
    fields[tp.THROUGHPUT_COLUMNS.index("fixed_seconds")] = "12"
    fields[tp.THROUGHPUT_COLUMNS.index("kind")] = "measured"
    fields[tp.THROUGHPUT_COLUMNS.index("source")] = "bench/RESULTS.md, H100 section"
    (tmp_path / "t.tsv").write_text(text + "\t".join(str(f) for f in fields) + "\n")  # appended after the estimate
    wanted = {k: estimate[k] for k in ("model", "resolution", "steps", "guidance", "dtype")}
    rate = tp.table_rate(tp.load_throughput(tmp_path / "t.tsv"), "generate", wanted, "H100")
    assert (rate.images_per_second, rate.fixed_seconds) == (4.2, 12.0) and "measured" in rate.source
