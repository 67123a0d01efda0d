"""imagenet_sd.train.adaptation: a real tiny diffusers pipeline adapted on real scans (scikit-learn's digits)."""

import pytest
import torch

from imagenet_sd.train.adaptation import adapt_pipeline, adaptation_settings

# The digits' own size: 8x8 pixels through a one-level VAE (no downsampling), as bench/adapt_digits.py measured.
DIGITS_PIPELINE = {
    "seed": 0,
    "sample_size": 8,
    "unet_channels": [32, 64],
    "vae_channels": [32],
    "text_hidden": 32,
    "text_layers": 2,
    "scheduler": "DDIM",
}
FEW_STEPS = {"vae_steps": 3, "unet_steps": 3, "batch_size": 8}
PROMPTS = ["zero, a numeral", "one, a numeral", "two, a numeral"]


@pytest.fixture(scope="module")
def digits_pipeline_dir(tmp_path_factory, clip_tokenizer_dir):
    from imagenet_sd.generate.tiny_pipeline import build_tiny_pipeline

    return build_tiny_pipeline(DIGITS_PIPELINE, clip_tokenizer_dir, tmp_path_factory.mktemp("digits") / "base")


@pytest.fixture(scope="module")
def real_digits():
    """The first 8 scans of each of the digits 0..2, as RGB in [-1, 1], and their class indices."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = torch.cat([torch.nonzero(torch.from_numpy(digits.target) == c)[:8, 0] for c in range(3)])
    ink = torch.from_numpy(digits.images[keep.numpy()]).float() / 16
    return (ink * 2 - 1)[:, None].repeat(1, 3, 1, 1), torch.from_numpy(digits.target[keep.numpy()])


def adapted(folder, real_digits, **settings):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(folder)
    losses = adapt_pipeline(pipe, *real_digits, PROMPTS, {**FEW_STEPS, **settings})
    return pipe, losses


def weights(pipe) -> dict:
    return {f"{part}.{k}": v for part in ("unet", "vae") for k, v in getattr(pipe, part).state_dict().items()}


def test_same_seed_same_weights_other_seed_others(digits_pipeline_dir, real_digits):
    first, first_losses = adapted(digits_pipeline_dir, real_digits, seed=3)
    again, again_losses = adapted(digits_pipeline_dir, real_digits, seed=3)
    other, _ = adapted(digits_pipeline_dir, real_digits, seed=4)
    assert first_losses == again_losses
    assert len(first_losses["vae"]) == 3 and len(first_losses["unet"]) == 3
    a, b, c = weights(first), weights(again), weights(other)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert first.vae.config.scaling_factor == again.vae.config.scaling_factor != 0.18215  # set from the latents


def test_adaptation_changes_unet_and_vae_not_text_encoder(digits_pipeline_dir, real_digits):
    from diffusers import StableDiffusionPipeline

    base = StableDiffusionPipeline.from_pretrained(digits_pipeline_dir)
    pipe, _ = adapted(digits_pipeline_dir, real_digits)
    for part in ("unet", "vae"):
        before, after = getattr(base, part).state_dict(), getattr(pipe, part).state_dict()
        assert not all(torch.equal(before[k], after[k]) for k in before), part
    before, after = base.text_encoder.state_dict(), pipe.text_encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_adapted_pipeline_saves_and_generates_through_from_pretrained(digits_pipeline_dir, real_digits, tmp_path):
    from diffusers import StableDiffusionPipeline

    pipe, _ = adapted(digits_pipeline_dir, real_digits)
    pipe.save_pretrained(tmp_path / "adapted", safe_serialization=True)
    loaded = StableDiffusionPipeline.from_pretrained(tmp_path / "adapted")
    assert loaded.vae.config.scaling_factor == pytest.approx(pipe.vae.config.scaling_factor)
    images = loaded(PROMPTS[:2], height=8, width=8, num_inference_steps=2, guidance_scale=5.0, output_type="np").images
    assert images.shape == (2, 8, 8, 3)
    assert (images >= 0).all() and (images <= 1).all()


def test_unknown_setting_is_named():
    with pytest.raises(ValueError, match="unet_stpes"):
        adaptation_settings({"unet_stpes": 10})


def test_captions_must_match_images(digits_pipeline_dir, real_digits):
    pixels, captions = real_digits
    with pytest.raises(ValueError, match="24 images but 23 captions"):
        adapted(digits_pipeline_dir, (pixels, captions[:-1]))


@pytest.mark.parametrize("stop_after", [2, 4, 5])  # inside the VAE phase, one UNet step in, two
def test_stopped_and_resumed_equals_straight_through(digits_pipeline_dir, real_digits, tmp_path, stop_after):
    from diffusers import StableDiffusionPipeline

    from imagenet_sd.train.resume import TrainingStopped

    straight, straight_losses = adapted(digits_pipeline_dir, real_digits, save_every=1)
    checkpoint = tmp_path / "adapted"
    pipe = StableDiffusionPipeline.from_pretrained(digits_pipeline_dir)
    with pytest.raises(TrainingStopped):
        adapt_pipeline(pipe, *real_digits, PROMPTS, FEW_STEPS, checkpoint=checkpoint, stop_after=stop_after)
    pipe = StableDiffusionPipeline.from_pretrained(digits_pipeline_dir)  # a fresh process would start so
    losses = adapt_pipeline(pipe, *real_digits, PROMPTS, FEW_STEPS, checkpoint=checkpoint)
    assert losses == straight_losses
    a, b = weights(straight), weights(pipe)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_state_of_other_settings_is_refused(digits_pipeline_dir, real_digits, tmp_path):
    from diffusers import StableDiffusionPipeline

    from imagenet_sd.train.resume import ResumeMismatch, TrainingStopped

    pipe = StableDiffusionPipeline.from_pretrained(digits_pipeline_dir)
    with pytest.raises(TrainingStopped):
        adapt_pipeline(pipe, *real_digits, PROMPTS, FEW_STEPS, checkpoint=tmp_path / "a", stop_after=1)
    with pytest.raises(ResumeMismatch, match="unet_lr"):
        adapt_pipeline(pipe, *real_digits, PROMPTS, {**FEW_STEPS, "unet_lr": 1e-4}, checkpoint=tmp_path / "a")
