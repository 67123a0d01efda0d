"""CLIP's real tokenizer, the tiny random pipeline (saved, rebuilt, reloaded), runtime options and loading errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_PIPELINE

from imagenet_sd.generate.text2image import WeightsMissing, load_pipeline
from imagenet_sd.generate.tiny_pipeline import build_tiny_pipeline
from imagenet_sd.prompts.clip_tokenizer import CLIP_VOCAB_SIZE

torch.set_num_threads(1)


def test_clip_tokenizer_gives_sd_ids(clip_tokenizer_dir):
    from transformers import CLIPTokenizer

    assert {"vocab.json", "merges.txt"} <= {p.name for p in clip_tokenizer_dir.iterdir()}
    tokenizer = CLIPTokenizer.from_pretrained(clip_tokenizer_dir)
    assert len(tokenizer) == CLIP_VOCAB_SIZE == 49408
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    long = tokenizer("cat " * 100, truncation=True, max_length=tokenizer.model_max_length).input_ids
    assert tokenizer.model_max_length == 77 and len(long) == 77 and long[-1] == 49407


def test_tiny_pipeline_rebuilds_byte_identical(tiny_pipeline_dir, clip_tokenizer_dir, tmp_path):
    again = build_tiny_pipeline(TINY_PIPELINE, clip_tokenizer_dir, tmp_path / "again")
    files = sorted(p.relative_to(tiny_pipeline_dir) for p in tiny_pipeline_dir.rglob("*") if p.is_file())
    assert Path("unet/diffusion_pytorch_model.safetensors") in files and Path("model_index.json") in files
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (tiny_pipeline_dir / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_tiny_pipeline_loads_through_from_pretrained(tiny_pipeline_dir):
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    pipe = load_pipeline(str(tiny_pipeline_dir), dtype="float32", device="cpu")
    assert isinstance(pipe, StableDiffusionPipeline) and pipe.safety_checker is None
    assert isinstance(pipe.unet, UNet2DConditionModel) and isinstance(pipe.vae, AutoencoderKL)
    assert isinstance(pipe.text_encoder, CLIPTextModel) and isinstance(pipe.tokenizer, CLIPTokenizer)
    assert isinstance(pipe.scheduler, DDIMScheduler)
    assert pipe.text_encoder.config.vocab_size == 49408 and pipe.text_encoder.config.max_position_embeddings == 77
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 16
    assert render(pipe).shape == (1, 16, 16, 3)


def conv_weights(module: torch.nn.Module) -> list[torch.Tensor]:
    """Weights of the 3x3 (or larger) convolutions: the ones whose two memory layouts differ."""
    return [m.weight for m in module.modules() if isinstance(m, torch.nn.Conv2d) and m.weight[0, 0].numel() > 1]


def attention_layers(module: torch.nn.Module) -> list:
    from diffusers.models.attention_processor import Attention

    return [m for m in module.modules() if isinstance(m, Attention)]


def render(pipe) -> np.ndarray:
    return pipe(
        "a photo of a cat",
        num_inference_steps=2,
        height=16,
        width=16,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    ).images


@pytest.fixture(scope="module")
def plain_and_fast(tiny_pipeline_dir):
    plain = load_pipeline(str(tiny_pipeline_dir), dtype="float32", device="cpu")
    fast = load_pipeline(
        str(tiny_pipeline_dir),
        dtype="float32",
        device="cpu",
        scheduler="EulerDiscrete",
        channels_last=True,
        fuse_qkv=True,
    )
    return plain, fast


def test_scheduler_option_keeps_the_pipelines_noise_schedule(plain_and_fast):
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    plain, fast = plain_and_fast
    assert isinstance(plain.scheduler, DDIMScheduler) and isinstance(fast.scheduler, EulerDiscreteScheduler)
    assert fast.scheduler.config.beta_schedule == "scaled_linear"  # the pipeline's schedule, new sampler


def test_channels_last_puts_unet_and_vae_convolutions_in_nhwc(plain_and_fast):
    plain, fast = plain_and_fast
    for name in ("unet", "vae"):
        weights, before = conv_weights(getattr(fast, name)), conv_weights(getattr(plain, name))
        assert weights and len(weights) == len(before), name
        assert all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in weights)
        assert all(w.is_contiguous() and not w.is_contiguous(memory_format=torch.channels_last) for w in before)


def test_fuse_qkv_fuses_every_attention_projection(plain_and_fast):
    from diffusers.models.attention_processor import FusedAttnProcessor2_0

    plain, fast = plain_and_fast
    for name in ("unet", "vae"):
        layers, unfused = attention_layers(getattr(fast, name)), attention_layers(getattr(plain, name))
        assert layers and len(layers) == len(unfused), name
        assert not any(getattr(a, "fused_projections", False) for a in unfused)
        for attn in layers:
            assert attn.fused_projections and isinstance(attn.processor, FusedAttnProcessor2_0)
            parts = (attn.to_k, attn.to_v) if attn.is_cross_attention else (attn.to_q, attn.to_k, attn.to_v)
            fused = attn.to_kv if attn.is_cross_attention else attn.to_qkv
            assert torch.equal(fused.weight, torch.cat([p.weight for p in parts]))
    assert any(a.is_cross_attention for a in attention_layers(fast.unet))  # both kinds were checked


def test_runtime_options_change_speed_not_images(tiny_pipeline_dir, plain_and_fast):
    plain, _ = plain_and_fast
    fast = load_pipeline(str(tiny_pipeline_dir), dtype="float32", device="cpu", channels_last=True, fuse_qkv=True)
    assert np.abs(render(plain) - render(fast)).max() < 1e-4


def test_offline_hub_model_fails_at_once_with_prefetch_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(WeightsMissing, match="prefetch_weights"):
        load_pipeline("CompVis/stable-diffusion-v1-4", dtype="float32", device="cpu")


def test_missing_local_folder_says_which_rule_makes_it(tmp_path):
    with pytest.raises(WeightsMissing, match="snakemake --cores 1 .*model_index.json"):
        load_pipeline(str(tmp_path / "resources/hub/x--y/main"), dtype="float32", device="cpu")
