"""Adapting a diffusers text-to-image pipeline on real images, each captioned with its class's prompt.

The demo's form (issue 22): full training of a tiny pipeline's VAE (as an autoencoder) and then its UNet
(epsilon prediction on the VAE's latents, the text encoder frozen), with the empty prompt in place of the
caption for a `caption_dropout` fraction of the images so that classifier-free guidance has an unconditional
branch to subtract. Every random draw comes from one torch.Generator seeded by `seed`: two runs with the same
inputs and settings write the same weights. Measured settings and costs: bench/RESULTS.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULTS = {
    "vae_steps": 200,
    "vae_lr": 2e-3,
    "vae_kl_weight": 1e-4,
    "unet_steps": 1000,
    "unet_lr": 3e-3,
    "batch_size": 32,
    "caption_dropout": 0.1,
    "seed": 0,
}


def adaptation_settings(settings: dict) -> dict:
    """`settings` completed with DEFAULTS; an unknown key is an error naming it."""
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown adaptation setting(s) {unknown}; known: {sorted(DEFAULTS)}")
    return {**DEFAULTS, **settings}


def batch_indices(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randint(n, (size,), generator=gen)


def train_vae(vae, pixels: torch.Tensor, settings: dict, gen: torch.Generator) -> list[float]:
    """Reconstruction + a small KL term on images in [-1, 1]; then the latent scaling factor that gives the
    UNet unit-variance latents, as SD's 0.18215 does for its own VAE."""
    opt = torch.optim.AdamW(vae.parameters(), lr=settings["vae_lr"])
    losses = []
    vae.train()
    for _ in range(settings["vae_steps"]):
        x = pixels[batch_indices(len(pixels), settings["batch_size"], gen)]
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=gen)
        kl = posterior.kl().mean() / x[0].numel()
        loss = F.mse_loss(vae.decode(z).sample, x) + settings["vae_kl_weight"] * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    vae.eval()
    return losses


@torch.no_grad()
def encode_latents(vae, pixels: torch.Tensor) -> torch.Tensor:
    """Posterior means scaled by the VAE's scaling factor, which is first set to 1 / their std."""
    means = vae.encode(pixels).latent_dist.mean
    vae.register_to_config(scaling_factor=float(1 / means.std()))
    return means * vae.config.scaling_factor


@torch.no_grad()
def prompt_embeddings(pipe, prompts: list[str]) -> torch.Tensor:
    """The frozen text encoder's hidden states of `prompts`, then of the empty prompt (the last row)."""
    ids = pipe.tokenizer(
        [*prompts, ""],
        padding="max_length",
        max_length=pipe.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    return pipe.text_encoder(ids)[0]


def train_unet(pipe, latents, captions: torch.Tensor, embeddings, settings: dict, gen) -> list[float]:
    """Epsilon prediction under the pipeline's own noise schedule; `captions[i]` indexes image i's prompt
    in `embeddings`, whose last row is the empty prompt."""
    from diffusers import DDPMScheduler

    noise_schedule = DDPMScheduler.from_config(pipe.scheduler.config)
    steps = settings["unet_steps"]
    opt = torch.optim.AdamW(pipe.unet.parameters(), lr=settings["unet_lr"])
    lr = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings["unet_lr"], total_steps=steps, pct_start=0.1)
    size = settings["batch_size"]
    losses = []
    pipe.unet.train()
    for _ in range(steps):
        idx = batch_indices(len(latents), size, gen)
        noise = torch.randn(latents[idx].shape, generator=gen)
        t = torch.randint(noise_schedule.config.num_train_timesteps, (size,), generator=gen)
        dropped = torch.rand(size, generator=gen) < settings["caption_dropout"]
        text = embeddings[torch.where(dropped, len(embeddings) - 1, captions[idx])]
        noisy = noise_schedule.add_noise(latents[idx], noise, t)
        loss = F.mse_loss(pipe.unet(noisy, t, encoder_hidden_states=text).sample, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        lr.step()
        losses.append(loss.item())
    pipe.unet.eval()
    return losses


def adapt_pipeline(pipe, pixels: torch.Tensor, captions: torch.Tensor, prompts: list[str], settings: dict) -> dict:
    """Adapt `pipe` in place on `pixels` (N, 3, H, W in [-1, 1]) captioned by `prompts[captions[i]]`.
    Returns the loss curves {"vae": [...], "unet": [...]}."""
    settings = adaptation_settings(settings)
    if len(pixels) != len(captions):
        raise ValueError(f"{len(pixels)} images but {len(captions)} captions")
    torch.manual_seed(settings["seed"])  # what the models draw without a generator (dropout), if anything
    gen = torch.Generator().manual_seed(settings["seed"])
    vae_losses = train_vae(pipe.vae, pixels, settings, gen)
    latents = encode_latents(pipe.vae, pixels)
    unet_losses = train_unet(pipe, latents, captions, prompt_embeddings(pipe, prompts), settings, gen)
    return {"vae": vae_losses, "unet": unet_losses}
