"""Every generator family through one real `snakemake` run: each family's tiny pipeline built by the
tiny_pipeline rule, a chunk of one class generated from it by the generate rule, packed, and its clone's
report page naming the generator's licence; in the same run (--keep-going), a generator declared of another
family than its pipeline's architecture stops at its generate job, naming the generator and both families.
One run for the whole module: a job's time is mostly its process start and imports (torch, diffusers), not
its pixels, so the run has as few jobs as the checks need; each entry is still small (16x16 images, one step,
one text layer)."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import pytest
from conftest import copy_workflow, run_snakemake, share_resources, write_config
from PIL import Image

from imagenet_sd.generate.families import FAMILIES

CONFIG = "families.yaml"
TARGETS = (("clones", "train.json"), ("report/clones", "generation.html"))
CLASS = "n01558993"  # robin
# The demo's `tiny-sd` pipeline and `tiny` generator, written out (the demo may change), at the smallest size
# that keeps each family's layout: a latent of 8x8 (16x16 images through the 2-level VAE), one text layer.
TINY = {"seed": 0, "sample_size": 8, "unet_channels": [32, 64], "vae_channels": [32, 64], "text_hidden": 32}
TINY |= {"text_layers": 1, "scheduler": "DDIM"}
GENERATOR = {"scheduler": "default", "steps": 1, "height": 16, "width": 16, "dtype": "float32"}
GENERATOR |= {"chunk_size": 2, "batch_size": 2, "channels_last": False, "device": "cpu"}
WRONG = "declared-sdxl"  # a generator declared sdxl on the sd3 pipeline


def licence(family: str) -> str:
    return f"{family} model licence (random weights here)"


def generator(family: str) -> dict:
    """One step everywhere; guidance off for the guidance-distilled families (Turbo, FLUX.1-schnell)."""
    guidance = 0.0 if FAMILIES[family].distilled else 2.0
    model = f"resources/pipelines/tiny-{family}"
    return {**GENERATOR, "model": model, "guidance_scale": guidance, "license": licence(family)}


def clone(family: str, generator_name: str) -> dict:
    # PixArt's T5 reads 120 tokens: a recipe of its own, counting to 120 (the config check refuses 77)
    recipe = "c_dc_t5" if FAMILIES[family].text_tokens == 120 else "c_dc"
    return {"class_set": "one", "recipe": recipe, "generator": generator_name, "images_per_class": 2, "shard_size": 2}


def families_config() -> dict:
    generators = {family: generator(family) for family in FAMILIES}
    # another key than sd3's (two steps), so its chunk is a job of its own
    generators[WRONG] = {**generator("sd3"), "family": "sdxl", "steps": 2}
    return {
        "seed": 0,
        "class_sets": {"one": {"sheet": "config/sheets/one.tsv"}},
        "recipes": {"c_dc": {"family": "c, d_c"}, "c_dc_t5": {"family": "c, d_c", "max_tokens": 120}},
        "pipelines": {f"tiny-{family}": {**TINY, "family": family} for family in FAMILIES},
        "generators": generators,
        "clones": {name: clone(name if name in FAMILIES else "sd3", name) for name in generators},
    }


def generated(workdir: Path) -> Path:
    return workdir / "results/generated"


def chunk_images(tar_path: Path) -> list[Image.Image]:
    with tarfile.open(tar_path) as tar:
        jpgs = [m for m in tar.getmembers() if m.name.endswith(".jpg")]
        return [Image.open(io.BytesIO(tar.extractfile(m).read())) for m in jpgs]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, built_resources):
    """The workdir and the finished run, which failed at the wrong-family generator's generate job only."""
    workdir = copy_workflow(tmp_path_factory.mktemp("families") / "wf")
    share_resources(workdir, built_resources)
    (workdir / "config/sheets/one.tsv").write_text(f"wnid\n{CLASS}\n")
    write_config(workdir, families_config(), CONFIG)
    targets = [f"results/{kind}/{name}/{file}" for name in [*FAMILIES, WRONG] for kind, file in TARGETS]
    proc = run_snakemake(workdir, *targets, "--configfile", CONFIG, "--keep-going", check=False)
    return workdir, proc


def test_every_family_generates_and_packs_through_snakemake(finished):
    workdir, proc = finished
    output = proc.stdout + proc.stderr
    failed = re.findall(r"Error in rule (\w+):", output)
    assert failed == ["generate"], f"only the wrong-family job should fail:\n{output[-8000:]}"
    chunks = {json.loads(p.read_text())["generator"]: p for p in generated(workdir).glob(f"*/*/train/{CLASS}/*.json")}
    assert sorted(chunks) == sorted(FAMILIES)
    for family, stats in chunks.items():
        index = json.loads((workdir / f"resources/pipelines/tiny-{family}/model_index.json").read_text())
        assert index["_class_name"] == FAMILIES[family].pipeline
        record = json.loads(stats.read_text())
        assert record["model"] == f"resources/pipelines/tiny-{family}"
        assert record["images"] == 2 and record["flops_per_image"]["total"] > 0
        assert record["flops_per_image"]["passes_per_step"] == (1 if FAMILIES[family].distilled else 2)
        assert [image.size for image in chunk_images(stats.with_suffix(".tar"))] == [(16, 16)] * 2
        assert json.loads((workdir / f"results/clones/{family}/train.json").read_text())["count"] == 2
        page = (workdir / f"results/report/clones/{family}/generation.html").read_text()
        assert licence(family) in page and f"resources/pipelines/tiny-{family}" in page
    # <generator>-<hash of the pixel settings>: the hashes differ, not only the names
    keys = [stats.relative_to(generated(workdir)).parts[0] for stats in chunks.values()]
    assert len({key.rsplit("-", 1)[1] for key in keys}) == len(FAMILIES), keys


def test_a_generator_declared_of_another_family_stops_at_its_generate_job(finished):
    workdir, proc = finished
    logs = "".join(p.read_text() for p in (workdir / "logs/generate").glob(f"{WRONG}-*/**/*.log"))
    text = proc.stdout + proc.stderr + logs
    assert proc.returncode != 0
    assert f"generator {WRONG} is declared family sdxl (StableDiffusionXLPipeline), but its pipeline" in text
    assert "has the architecture of family sd3" in text
    assert not (workdir / f"results/clones/{WRONG}").exists()
