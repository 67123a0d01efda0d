"""The safety-checker policy (generators.<name>.safety_checker: off, flag, regenerate) on the generate job of
the tiny pipeline given a tiny random StableDiffusionSafetyChecker, whose concepts are the CLIP embeddings of
two of the chunk's images, so that exactly those two are flagged."""

import json
import shutil
import tarfile

import numpy as np
import pytest
import torch
from test_generation import RECORD, generator_entry, prompt_file, read_chunk, run_chunk  # noqa: F401 (fixture)

from imagenet_sd.generate import generation as gen
from imagenet_sd.generate.chunks import ChunkIdentity
from imagenet_sd.generate.text2image import load_pipeline
from imagenet_sd.planning.clones import Plan

FLAGGED = (0, 5)  # of images [0, 8)


def first_draws(model_dir) -> np.ndarray:
    """Pixels of images [0, 8) at their first attempt, in the job's batches of 4 (as the job renders them)."""
    pipe = load_pipeline(str(model_dir), dtype="float32", device="cpu")
    identity, settings = ChunkIdentity(RECORD, "tiny", "train"), generator_entry()
    batches = [[identity.task(i) for i in range(s, s + 4)] for s in (0, 4)]
    with torch.no_grad():
        return np.concatenate(
            [gen.to_pixels(gen.render(pipe, b, settings, gen.DenoiseClock(pipe.device))) for b in batches]
        )


def checker_embeddings(checker, extractor, pixels: np.ndarray) -> torch.Tensor:
    from PIL import Image

    clip_input = extractor([Image.fromarray(p) for p in pixels], return_tensors="pt").pixel_values
    with torch.no_grad():
        embeds = checker.visual_projection(checker.vision_model(clip_input)[1])
    return torch.nn.functional.normalize(embeds, dim=-1)


@pytest.fixture(scope="module")
def checked_pipeline(tiny_pipeline_dir, tmp_path_factory):
    """The tiny pipeline plus a tiny random safety checker: its concepts are images 0 and 5 (the others point
    away), its threshold halfway between 1 and the closest other image, so it flags exactly those two."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    dest = tmp_path_factory.mktemp("checked") / "tiny-sd-checked"
    shutil.copytree(tiny_pipeline_dir, dest)
    tower = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    torch.manual_seed(0)
    config = CLIPConfig(text_config=tower, vision_config=dict(tower, image_size=32, patch_size=8), projection_dim=8)
    checker = StableDiffusionSafetyChecker(config).eval()
    extractor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    embeds = checker_embeddings(checker, extractor, first_draws(tiny_pipeline_dir))
    closest = max(float(embeds[i] @ embeds[j]) for i in range(8) if i not in FLAGGED for j in FLAGGED)
    assert closest < 0.99, "the random checker does not separate the images enough for this test"
    with torch.no_grad():
        checker.concept_embeds[:] = -embeds[FLAGGED[0]]  # cosine ~ -1 with every image: never above threshold
        checker.concept_embeds[: len(FLAGGED)] = embeds[list(FLAGGED)]
        checker.concept_embeds_weights.fill_((1.0 + closest) / 2)
        checker.special_care_embeds_weights.fill_(2.0)  # never: no adjustment
    checker.save_pretrained(dest / "safety_checker")
    extractor.save_pretrained(dest / "feature_extractor")
    index = json.loads((dest / "model_index.json").read_text())
    index |= {"safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"]}
    index |= {"feature_extractor": ["transformers", "CLIPImageProcessor"], "requires_safety_checker": True}
    (dest / "model_index.json").write_text(json.dumps(index))
    return dest


def chunk_of(tmp_path, model_dir, prompt_file, policy):  # noqa: F811 (the fixture)
    """Stats, JPEG bytes by member name and JSON by image index of a chunk of images [0, 8)."""
    tar, stats = run_chunk(tmp_path / str(policy), model_dir, prompt_file, stop=8, safety_checker=policy)
    members, _, metas = read_chunk(tar)
    with tarfile.open(tar) as t:
        jpegs = {m.name: t.extractfile(m).read() for m in members if m.name.endswith(".jpg")}
    return stats, jpegs, {int(name[-11:-5]): meta for name, meta in metas.items()}


def test_flag_records_the_verdict_and_keeps_the_pixels(checked_pipeline, prompt_file, tmp_path):  # noqa: F811
    off_stats, off_jpegs, off_metas = chunk_of(tmp_path, checked_pipeline, prompt_file, False)
    stats, jpegs, metas = chunk_of(tmp_path, checked_pipeline, prompt_file, "flag")
    assert {i for i, m in metas.items() if m["nsfw"]} == set(FLAGGED) and len(metas) == 8
    assert jpegs == off_jpegs  # not blanked, not re-drawn
    assert stats["nsfw_flagged"] == len(FLAGGED) and stats["regenerated"] == 0
    # off: the checker is not loaded, the JSON and the stats are as before the policy existed
    assert all("nsfw" not in m for m in off_metas.values()) and "nsfw_flagged" not in off_stats
    assert off_stats["failures"] == {"black": 0, "nan": 0}


def test_regenerate_redraws_flagged_images_with_the_next_seed(checked_pipeline, prompt_file, tmp_path):  # noqa: F811
    _, off_jpegs, off_metas = chunk_of(tmp_path, checked_pipeline, prompt_file, False)
    stats, jpegs, metas = chunk_of(tmp_path, checked_pipeline, prompt_file, "regenerate")
    assert len(metas) == 8  # each class keeps its exact count
    for i, meta in metas.items():
        name = f"{RECORD['wnid']}_{i:06d}.jpg"
        if i in FLAGGED:
            assert meta["attempt"] == 1 and meta["seed"] != off_metas[i]["seed"] and jpegs[name] != off_jpegs[name]
        else:
            assert meta["attempt"] == 0 and jpegs[name] == off_jpegs[name]
        assert meta["nsfw"] is False and meta["failed"] is None
    assert stats["failures"]["nsfw"] == len(FLAGGED) and stats["regenerated"] == len(FLAGGED)
    assert stats["nsfw_flagged"] == 0 and stats["unresolved"] == 0


def test_off_keeps_the_generator_key_and_a_pipeline_without_a_checker_is_an_error(
    tiny_pipeline_dir,
    prompt_file,  # noqa: F811
    tmp_path,
):
    def key(value):
        entry = generator_entry(safety_checker=value)
        return Plan({"seed": 0, "generators": {"tiny": entry}, "pipelines": {}}).generator_key("tiny")

    assert key("off") == key(False) and len({key(False), key(True), key("flag"), key("regenerate")}) == 4
    with pytest.raises(ValueError, match="generators.tiny.safety_checker: .* ships no safety checker"):
        run_chunk(tmp_path, tiny_pipeline_dir, prompt_file, stop=1, safety_checker="flag")
