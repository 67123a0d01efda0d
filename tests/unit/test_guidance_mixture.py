"""Guidance mixtures: a list of scales, one drawn per image from its own seed, rendered correctly in any batch."""

import json

import numpy as np
import pytest
import torch
from test_generation import RECORD, WNID, generator_entry, read_chunk, run_chunk

from imagenet_sd.generate import generation as gen
from imagenet_sd.generate.chunks import ChunkIdentity
from imagenet_sd.generate.flops import flops_per_image
from imagenet_sd.generate.text2image import load_pipeline

torch.set_num_threads(1)
MIXTURE = [1.0, 2.0, 4.0]


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / f"{WNID}.json"
    path.write_text(json.dumps(RECORD))
    return path


def test_each_image_is_rendered_at_its_drawn_scale_in_a_mixed_batch(tiny_pipeline_dir):
    """A batch mixing scales gives each image the pixels it has when rendered alone at its scale."""
    pipe = load_pipeline(str(tiny_pipeline_dir), dtype="float32", device="cpu")
    settings = generator_entry(guidance_scale=MIXTURE)
    identity = ChunkIdentity.of_job(RECORD, "tiny", "train", settings)
    tasks = [identity.task(i) for i in range(6)]
    assert len({t.guidance for t in tasks}) >= 2  # the batch does mix scales
    mixed = gen.to_pixels(gen.render(pipe, tasks, settings, gen.DenoiseClock(pipe.device))).astype(int)
    for task, pixels in zip(tasks, mixed):
        alone = generator_entry(guidance_scale=task.guidance)
        single = gen.to_pixels(gen.render(pipe, [task], alone, gen.DenoiseClock(pipe.device))).astype(int)[0]
        assert np.abs(single - pixels).max() <= 1, task.index


def test_the_draw_depends_on_the_image_alone_and_survives_a_retry():
    settings = generator_entry(guidance_scale=MIXTURE)
    identity = ChunkIdentity.of_job(RECORD, "tiny", "train", settings)
    first = [identity.task(i).guidance for i in range(40)]
    assert first == [ChunkIdentity.of_job(RECORD, "tiny", "train", settings).task(i).guidance for i in range(40)]
    assert set(first) == set(MIXTURE)  # every scale is drawn among 40 images
    task = identity.task(3)
    assert identity.retry(task).seed != task.seed and identity.retry(task).guidance == task.guidance
    one = ChunkIdentity.of_job(RECORD, "tiny", "train", generator_entry(guidance_scale=2.0))
    assert one.task(3).guidance is None and one.task(3).seed == task.seed


def test_mixture_chunk_records_each_scale_and_is_the_same_in_any_batch_size(tiny_pipeline_dir, prompt_file, tmp_path):
    tar4, stats = run_chunk(tmp_path / "b4", tiny_pipeline_dir, prompt_file, stop=5, guidance_scale=MIXTURE)
    tar1, _ = run_chunk(tmp_path / "b1", tiny_pipeline_dir, prompt_file, stop=5, guidance_scale=MIXTURE, batch_size=1)
    _, images4, metas4 = read_chunk(tar4)
    _, images1, metas1 = read_chunk(tar1)
    assert metas1 == metas4
    identity = ChunkIdentity.of_job(RECORD, "tiny", "train", generator_entry(guidance_scale=MIXTURE))
    assert [m["guidance_scale"] for _, m in sorted(metas4.items())] == [identity.task(i).guidance for i in range(5)]
    for name in images4:  # JPEG of pixels one rounding level apart at most (see test_generation)
        assert np.abs(images1[name] - images4[name]).mean() < 0.5, name
    passes = np.mean([2 if s > 1 else 1 for s in MIXTURE])
    assert stats["flops_per_image"]["passes_per_step"] == pytest.approx(passes)


def test_one_scale_writes_no_per_image_scale(tiny_pipeline_dir, prompt_file, tmp_path):
    tar, stats = run_chunk(tmp_path, tiny_pipeline_dir, prompt_file, stop=1)
    _, _, metas = read_chunk(tar)
    assert all("guidance_scale" not in m for m in metas.values())
    assert stats["flops_per_image"]["passes_per_step"] == 2


def test_flops_of_a_mixture_average_the_passes(tiny_pipeline_dir):
    pipe = load_pipeline(str(tiny_pipeline_dir), dtype="float32", device="cpu")
    one, two = (flops_per_image(pipe, generator_entry(guidance_scale=g)) for g in (1.0, 3.0))
    mixed = flops_per_image(pipe, generator_entry(guidance_scale=[1.0, 3.0]))
    assert mixed["total"] == pytest.approx((one["total"] + two["total"]) / 2, rel=1e-9)
