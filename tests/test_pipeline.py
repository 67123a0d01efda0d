"""CLIP's real tokenizer, the tiny random pipeline (saved, rebuilt, reloaded), and loading errors."""
from pathlib import Path

import pytest
from conftest import load_script
import torch

from imagenet_sd.pipeline import CLIP_VOCAB_SIZE, WeightsMissing, build_tiny_pipeline, load_pipeline

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
TINY = {"seed": 0, "sample_size": 8, "unet_channels": [32, 64], "vae_channels": [32, 64], "text_hidden": 32,
        "text_layers": 1, "scheduler": "DDIM"}


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip-tokenizer")
    load_script("clip_tokenizer").main(vocab=str(folder / "vocab.json"))
    return folder


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tokenizer_dir):
    folder = tmp_path_factory.mktemp("tiny") / "tiny-sd"
    load_script("build_pipeline").main(settings=TINY, tokenizer=str(tokenizer_dir), folder=str(folder))
    return folder


def test_clip_tokenizer_gives_sd_ids(tokenizer_dir):
    from transformers import CLIPTokenizer
    assert {"vocab.json", "merges.txt"} <= {p.name for p in tokenizer_dir.iterdir()}
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    assert len(tokenizer) == CLIP_VOCAB_SIZE == 49408
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    long = tokenizer("cat " * 100, truncation=True, max_length=tokenizer.model_max_length).input_ids
    assert tokenizer.model_max_length == 77 and len(long) == 77 and long[-1] == 49407


def test_tiny_pipeline_rebuilds_byte_identical(tiny_dir, tokenizer_dir, tmp_path):
    again = build_tiny_pipeline(TINY, tokenizer_dir, tmp_path / "again")
    files = sorted(p.relative_to(tiny_dir) for p in tiny_dir.rglob("*") if p.is_file())
    assert Path("unet/diffusion_pytorch_model.safetensors") in files and Path("model_index.json") in files
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (tiny_dir / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_tiny_pipeline_loads_through_from_pretrained(tiny_dir):
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer
    pipe = load_pipeline(str(tiny_dir), dtype="float32", device="cpu")
    assert isinstance(pipe, StableDiffusionPipeline) and pipe.safety_checker is None
    assert isinstance(pipe.unet, UNet2DConditionModel) and isinstance(pipe.vae, AutoencoderKL)
    assert isinstance(pipe.text_encoder, CLIPTextModel) and isinstance(pipe.tokenizer, CLIPTokenizer)
    assert isinstance(pipe.scheduler, DDIMScheduler)
    assert pipe.text_encoder.config.vocab_size == 49408 and pipe.text_encoder.config.max_position_embeddings == 77
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 16
    images = pipe("a photo of a cat", num_inference_steps=2, height=16, width=16, output_type="np",
                  generator=torch.Generator().manual_seed(0)).images
    assert images.shape == (1, 16, 16, 3)


def test_runtime_options_load(tiny_dir):
    from diffusers import EulerDiscreteScheduler
    pipe = load_pipeline(str(tiny_dir), dtype="float32", device="cpu", scheduler="EulerDiscrete",
                         channels_last=True, fuse_qkv=True)
    assert isinstance(pipe.scheduler, EulerDiscreteScheduler)
    assert pipe.scheduler.config.beta_schedule == "scaled_linear"  # the pipeline's schedule, new sampler


def test_offline_hub_model_fails_at_once_with_prefetch_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(WeightsMissing, match="prefetch_weights"):
        load_pipeline("CompVis/stable-diffusion-v1-4", dtype="float32", device="cpu")


def test_missing_local_folder_says_which_rule_makes_it(tmp_path):
    with pytest.raises(WeightsMissing, match="snakemake --cores 1 .*model_index.json"):
        load_pipeline(str(tmp_path / "resources/hub/x--y/main"), dtype="float32", device="cpu")
