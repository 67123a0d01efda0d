"""imagenet_sd.train.adaptation: a real tiny diffusers pipeline adapted on real scans (scikit-learn's digits)."""

import pytest
import torch

from imagenet_sd.train.adaptation import adapt_pipeline
from imagenet_sd.train.adaptation_settings import adaptation_settings
from imagenet_sd.train.lora import LORA_WEIGHTS, SettingError, save_lora_and_fuse, trainable_state

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


# A LoRA on the UNet (imagenet_sd.train.lora): the base VAE kept (vae_steps 0), the base UNet frozen.
LORA = {"rank": 2, "alpha": 4, "dropout": 0.1}  # alpha / rank = 2: a scale that a fusion forgetting it would miss
WITH_LORA = {"lora": LORA, "vae_steps": 0}  # FEW_STEPS trains the VAE, which a LoRA refuses


def test_lora_same_seed_same_weights_other_seed_others(digits_pipeline_dir, real_digits):
    first, first_losses = adapted(digits_pipeline_dir, real_digits, seed=3, **WITH_LORA)
    again, again_losses = adapted(digits_pipeline_dir, real_digits, seed=3, **WITH_LORA)
    other, _ = adapted(digits_pipeline_dir, real_digits, seed=4, **WITH_LORA)
    assert first_losses == again_losses and first_losses["vae"] == [] and len(first_losses["unet"]) == 3
    a, b, c = (trainable_state(p.unet) for p in (first, again, other))
    assert a and all(".lora_" in k for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_lora_trains_only_its_own_weights_and_keeps_the_vae(digits_pipeline_dir, real_digits):
    from diffusers import StableDiffusionPipeline

    base = StableDiffusionPipeline.from_pretrained(digits_pipeline_dir)
    pipe, _ = adapted(digits_pipeline_dir, real_digits, **WITH_LORA)
    before, after = base.unet.state_dict(), pipe.unet.state_dict()
    lora_keys = [k for k in after if ".lora_" in k]
    assert lora_keys and any(not torch.equal(after[k], torch.zeros_like(after[k])) for k in lora_keys)
    for key, value in before.items():  # peft keeps an adapted layer's own weights as <layer>.base_layer.*
        layer, tensor = key.rsplit(".", 1)
        assert torch.equal(after[key if key in after else f"{layer}.base_layer.{tensor}"], value), key
    assert all(torch.equal(v, base.vae.state_dict()[k]) for k, v in pipe.vae.state_dict().items())
    assert pipe.vae.config.scaling_factor == base.vae.config.scaling_factor  # the base UNet's latents


def test_lora_is_fused_as_base_plus_scaled_b_a_and_the_folder_loads_and_generates(
    digits_pipeline_dir, real_digits, tmp_path
):
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    base = StableDiffusionPipeline.from_pretrained(digits_pipeline_dir).unet.state_dict()
    pipe, _ = adapted(digits_pipeline_dir, real_digits, **WITH_LORA)
    save_lora_and_fuse(pipe, tmp_path / "adapted")
    pipe.save_pretrained(tmp_path / "adapted")
    loaded = StableDiffusionPipeline.from_pretrained(tmp_path / "adapted")
    fused = loaded.unet.state_dict()
    assert fused.keys() == base.keys()  # an ordinary UNet: no adapter left in the saved folder
    lora = load_file(tmp_path / "adapted" / LORA_WEIGHTS)
    layer = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
    down, up = lora[f"unet.{layer}.lora.down.weight"], lora[f"unet.{layer}.lora.up.weight"]
    expected = base[f"{layer}.weight"] + up @ down * LORA["alpha"] / LORA["rank"]
    assert not torch.allclose(expected, base[f"{layer}.weight"])
    assert torch.allclose(fused[f"{layer}.weight"], expected, atol=1e-6)
    untouched = "down_blocks.0.resnets.0.conv1.weight"  # not a target module: the base's exactly
    assert torch.equal(fused[untouched], base[untouched])
    images = loaded(PROMPTS[:2], height=8, width=8, num_inference_steps=2, guidance_scale=5.0, output_type="np").images
    assert images.shape == (2, 8, 8, 3) and (images >= 0).all() and (images <= 1).all()


def test_lora_weights_alone_load_into_the_base_as_fused(digits_pipeline_dir, real_digits, tmp_path):
    from diffusers import StableDiffusionPipeline

    pipe, _ = adapted(digits_pipeline_dir, real_digits, **WITH_LORA)
    save_lora_and_fuse(pipe, tmp_path)
    base = StableDiffusionPipeline.from_pretrained(digits_pipeline_dir)
    base.load_lora_weights(tmp_path, weight_name=LORA_WEIGHTS)
    base.unet.fuse_lora()
    layer = "up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0.base_layer.weight"
    assert torch.allclose(base.unet.state_dict()[layer], pipe.unet.state_dict()[layer.replace(".base_layer", "")])


@pytest.mark.parametrize(
    "settings, named",
    [
        ({"lora": {"rank": 0}}, "lora.rank"),
        ({"lora": {"alpha": -1}}, "lora.alpha"),
        ({"lora": {"target_modules": []}}, "lora.target_modules"),
        ({"lora": {"dropout": 1.5}}, "lora.dropout"),
        ({"lora": {"rnak": 4}}, "lora: unknown setting.*rnak"),
        ({"lora": {}, "vae_steps": 5}, "vae_steps: 5 with `lora`"),
        ({"autocast": "float16"}, "autocast: must be null or 'bfloat16'"),
    ],
)
def test_bad_lora_settings_are_errors_naming_the_key(settings, named):
    with pytest.raises(SettingError, match=named):
        adaptation_settings(settings)


@pytest.mark.parametrize("stop_after, autocast", [(1, None), (2, None), (2, "bfloat16")])
def test_lora_stopped_and_resumed_equals_straight_through(
    digits_pipeline_dir, real_digits, tmp_path, stop_after, autocast
):
    from diffusers import StableDiffusionPipeline

    from imagenet_sd.train.resume import TrainingStopped

    settings = {**FEW_STEPS, **WITH_LORA, "autocast": autocast}
    straight, straight_losses = adapted(digits_pipeline_dir, real_digits, **WITH_LORA, autocast=autocast)
    pipe = StableDiffusionPipeline.from_pretrained(digits_pipeline_dir)
    with pytest.raises(TrainingStopped):
        adapt_pipeline(pipe, *real_digits, PROMPTS, settings, checkpoint=tmp_path / "a", stop_after=stop_after)
    saved = torch.load(tmp_path / "a.resume.pt", weights_only=False)
    assert saved["unet"] and all(".lora_" in k for k in saved["unet"])  # the LoRA alone, not the frozen base
    torch.manual_seed(123)  # a fresh process's global generator is not the stopped run's
    pipe = StableDiffusionPipeline.from_pretrained(digits_pipeline_dir)
    losses = adapt_pipeline(pipe, *real_digits, PROMPTS, settings, checkpoint=tmp_path / "a")
    assert losses == straight_losses
    a, b = trainable_state(straight.unet), trainable_state(pipe.unet)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bfloat16_autocast_is_deterministic_and_changes_the_lora_it_trains(digits_pipeline_dir, real_digits):
    first, first_losses = adapted(digits_pipeline_dir, real_digits, **WITH_LORA, autocast="bfloat16")
    again, again_losses = adapted(digits_pipeline_dir, real_digits, **WITH_LORA, autocast="bfloat16")
    float32, float32_losses = adapted(digits_pipeline_dir, real_digits, **WITH_LORA)
    assert first_losses == again_losses != float32_losses  # the forward pass did run in bfloat16
    a, b, c = (trainable_state(p.unet) for p in (first, again, float32))
    assert all(torch.equal(a[k], b[k]) and a[k].dtype == torch.float32 for k in a)  # float32 master weights
    assert not all(torch.equal(a[k], c[k]) for k in a)
