"""SD3 and FLUX.1-schnell through the real `snakemake`: their tiny pipelines built by the tiny_pipeline rule,
their chunks by the generate rule and packed; and a generator declared of another family than its pipeline's
architecture stops at its generate job, naming the generator and both families."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import copy_workflow, demo_config, run_snakemake, share_resources, write_config

CONFIG = "families.yaml"
TARGETS = (("clones", "train.json"), ("report/clones", "generation.html"))
CLASS = "n01558993"  # robin
GENERATORS = {"sd3": "sd3", "flux": "flux-schnell"}
LICENCE = "Apache 2.0 (FLUX.1-schnell card; random weights here)"


def families_config() -> dict:
    demo = demo_config()
    tiny = {**demo["pipelines"]["tiny-sd"], "sample_size": 8, "text_layers": 1}
    base = {**demo["generators"]["tiny"], "steps": 1, "height": 16, "width": 16, "scheduler": "default"}
    base.update(chunk_size=2, batch_size=2)
    return {
        "seed": 0,
        "class_sets": {"one": {"sheet": "config/sheets/one.tsv"}},
        "recipes": {"c_dc": {"family": "c, d_c"}},
        "pipelines": {f"tiny-{name}": {**tiny, "family": family} for name, family in GENERATORS.items()},
        "generators": {
            "sd3": {**base, "model": "resources/pipelines/tiny-sd3"},
            "flux": {**base, "model": "resources/pipelines/tiny-flux", "guidance_scale": 0.0, "license": LICENCE},
        },
        "clones": {
            name: {"class_set": "one", "recipe": "c_dc", "generator": name, "images_per_class": 2, "shard_size": 2}
            for name in GENERATORS
        },
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory, built_resources) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("families") / "wf")
    share_resources(workdir, built_resources)
    (workdir / "config/sheets/one.tsv").write_text(f"wnid\n{CLASS}\n")
    write_config(workdir, families_config(), CONFIG)
    targets = [f"results/{kind}/{name}/{file}" for name in GENERATORS for kind, file in TARGETS]
    run_snakemake(workdir, *targets, "--configfile", CONFIG)
    return workdir


def test_sd3_and_flux_generate_and_pack_through_snakemake(finished):
    for name, family in GENERATORS.items():
        index = json.loads((finished / f"resources/pipelines/tiny-{name}/model_index.json").read_text())
        assert index["_class_name"] == {"sd3": "StableDiffusion3Pipeline", "flux": "FluxPipeline"}[name]
        (stats,) = (finished / "results/generated").glob(f"{name}-*/*/train/{CLASS}/*.json")
        record = json.loads(stats.read_text())
        assert record["images"] == 2 and record["flops_per_image"]["total"] > 0
        assert record["flops_per_image"]["passes_per_step"] == (1 if family == "flux-schnell" else 2)
        assert json.loads((finished / f"results/clones/{name}/train.json").read_text())
    # each clone's report page names its generator's licence (as its dataset card does)
    flux, sd3 = ((finished / f"results/report/clones/{n}/generation.html").read_text() for n in ("flux", "sd3"))
    assert LICENCE in flux and "resources/pipelines/tiny-flux" in flux
    assert "none: a randomly initialised pipeline built by this workflow" in sd3


def test_a_generator_declared_of_another_family_stops_at_its_generate_job(finished, tmp_path):
    workdir = Path(shutil.copytree(finished, tmp_path / "wf", symlinks=True))
    config = families_config()
    config["generators"]["sd3"].update(family="sdxl", steps=2)  # a new key: its chunk is generated anew
    write_config(workdir, config, CONFIG)
    proc = run_snakemake(workdir, "results/clones/sd3/train.json", "--configfile", CONFIG, check=False)
    logs = "".join(p.read_text() for p in (workdir / "logs/generate").rglob("*.log"))
    assert proc.returncode != 0
    assert "generator sd3 is declared family sdxl (StableDiffusionXLPipeline), but its pipeline" in (
        proc.stdout + proc.stderr + logs
    )
    assert "has the architecture of family sd3" in proc.stdout + proc.stderr + logs
