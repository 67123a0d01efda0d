"""Adapting a diffusers text-to-image pipeline on real images, each captioned with its class's prompt.

The demo's form (issue 22): full training of a tiny pipeline's VAE (as an autoencoder) and then its UNet
(epsilon prediction on the VAE's latents, the text encoder frozen), with the empty prompt in place of the
caption for a `caption_dropout` fraction of the images so that classifier-free guidance has an unconditional
branch to subtract. Every random draw comes from one torch.Generator seeded by `seed`: two runs with the same
inputs and settings write the same weights, and a run stopped (a stop signal, or `stop_after`) and resumed
from its resume state writes the same weights as one run straight through (imagenet_sd.train.resume's protocol).
Measured settings and costs: bench/RESULTS.md. The full-scale form, a LoRA on the UNet alone with the base
VAE kept (`lora`), trains through the same loop: imagenet_sd.train.lora.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F

from imagenet_sd.train.adaptation_settings import adaptation_settings
from imagenet_sd.train.lora import add_lora, load_trainable_state, trainable_state
from imagenet_sd.train.resume import StopSignals, TrainingStopped, load_resume, save_resume


def batch_indices(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randint(n, (size,), generator=gen)


class Progress:
    """The loss curves so far, and the resume state: saved every `save_every` steps of a phase and when the
    run must stop, loaded (models, optimiser, schedule, generator) so that the run goes on where it stopped."""

    def __init__(self, pipe, checkpoint, identity: dict, save_every: int, stop_after: int | None, signals):
        self.pipe, self.checkpoint, self.identity = pipe, checkpoint, identity
        self.save_every, self.stop_after, self.signals, self.steps_run = save_every, stop_after, signals, 0
        self.lora = bool(identity["settings"].get("lora"))  # a resume state then holds the LoRA weights alone
        self.saved = load_resume(checkpoint, identity) if checkpoint else None
        self.losses = {"vae": [], "unet": []}
        if self.saved:
            self.losses = self.saved["losses"]
            pipe.vae.load_state_dict(self.saved["vae"])
            if self.lora:
                load_trainable_state(pipe.unet, self.saved["unet"])
            else:
                pipe.unet.load_state_dict(self.saved["unet"])

    def resume(self, phase: str, opt, lr, gen: torch.Generator) -> int:
        """The first step of `phase` to run, with the optimiser, schedule and generator restored when the
        saved state stopped inside or at the end of this phase."""
        if self.saved and self.saved["phase"] == phase:
            opt.load_state_dict(self.saved["optimizer"])
            if lr is not None:
                lr.load_state_dict(self.saved["lr"])
            gen.set_state(self.saved["generator"])
            restore_global_rng(self.saved.get("global_rng"))
        return len(self.losses[phase])

    def record(self, phase: str, loss: float, opt, lr, gen: torch.Generator) -> None:
        self.losses[phase].append(loss)
        self.steps_run += 1
        step = len(self.losses[phase])
        stop = self.signals.received or (self.stop_after is not None and self.steps_run >= self.stop_after)
        if self.checkpoint and (stop or step % self.save_every == 0):
            save_resume(self.state(phase, step, opt, lr, gen), self.checkpoint)
        if stop:
            raise TrainingStopped(f"adaptation stopped at {phase} step {step}; the rerun resumes it")

    def state(self, phase: str, step: int, opt, lr, gen: torch.Generator) -> dict:
        return {
            "identity": self.identity,
            "phase": phase,
            "step": step,
            "epoch": 0,
            "batch": step,
            "losses": self.losses,
            "vae": self.pipe.vae.state_dict(),
            "unet": trainable_state(self.pipe.unet) if self.lora else self.pipe.unet.state_dict(),
            "optimizer": opt.state_dict(),
            "lr": lr.state_dict() if lr is not None else None,
            "generator": gen.get_state(),
            "global_rng": global_rng(),
        }


def global_rng() -> dict:
    """torch's global generators: what a LoRA's dropout draws from (seeded by `seed`, saved with the resume
    state so that a resumed run draws the same masks as one straight through)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def restore_global_rng(state: dict | None) -> None:
    if state is None:  # a resume state written before the global generators were saved
        return
    torch.set_rng_state(state["cpu"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train_vae(vae, pixels: torch.Tensor, settings: dict, gen: torch.Generator, progress: Progress) -> None:
    """Reconstruction + a small KL term on images in [-1, 1]."""
    opt = torch.optim.AdamW(vae.parameters(), lr=settings["vae_lr"])
    vae.train()
    for _ in range(progress.resume("vae", opt, None, gen), settings["vae_steps"]):
        x = pixels[batch_indices(len(pixels), settings["batch_size"], gen)]
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=gen).to(x.device)
        kl = posterior.kl().mean() / x[0].numel()
        loss = F.mse_loss(vae.decode(z).sample, x) + settings["vae_kl_weight"] * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        progress.record("vae", loss.item(), opt, None, gen)
    vae.eval()


@torch.no_grad()
def encode_latents(vae, pixels: torch.Tensor, rescale: bool = True) -> torch.Tensor:
    """Posterior means scaled by the VAE's scaling factor, first set to 1 / their std (`rescale`): unit-variance
    latents for a UNet trained from them, as SD's 0.18215 gives for its own VAE. A LoRA keeps the base's
    factor: its frozen UNet was trained on latents scaled by it."""
    means = vae.encode(pixels).latent_dist.mean
    if rescale:
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
    return pipe.text_encoder(ids.to(pipe.text_encoder.device))[0]


def train_unet(pipe, latents, captions: torch.Tensor, embeddings, settings: dict, gen, progress: Progress) -> None:
    """Epsilon prediction under the pipeline's own noise schedule; `captions[i]` indexes image i's prompt
    in `embeddings`, whose last row is the empty prompt."""
    from diffusers import DDPMScheduler

    noise_schedule = DDPMScheduler.from_config(pipe.scheduler.config)
    steps = settings["unet_steps"]
    trained = [p for p in pipe.unet.parameters() if p.requires_grad]  # a LoRA's alone, or every weight
    opt = torch.optim.AdamW(trained, lr=settings["unet_lr"])
    lr = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings["unet_lr"], total_steps=steps, pct_start=0.1)
    size = settings["batch_size"]
    # bfloat16 needs no loss scaling (float16 would); the weights and the optimiser stay in float32
    amp = torch.autocast(latents.device.type, torch.bfloat16, enabled=settings.get("autocast") == "bfloat16")
    pipe.unet.train()
    for _ in range(progress.resume("unet", opt, lr, gen), steps):
        idx = batch_indices(len(latents), size, gen)
        # drawn on the CPU generator, then moved: the same draws (and weights, up to rounding) on any device
        noise = torch.randn(latents[idx].shape, generator=gen).to(latents.device)
        t = torch.randint(noise_schedule.config.num_train_timesteps, (size,), generator=gen).to(latents.device)
        dropped = torch.rand(size, generator=gen) < settings["caption_dropout"]
        text = embeddings[torch.where(dropped, len(embeddings) - 1, captions[idx])]
        noisy = noise_schedule.add_noise(latents[idx], noise, t)
        with amp:
            prediction = pipe.unet(noisy, t, encoder_hidden_states=text).sample
        loss = F.mse_loss(prediction.float(), noise)  # the loss in float32 (a no-op without autocast)
        opt.zero_grad()
        loss.backward()
        opt.step()
        lr.step()
        progress.record("unet", loss.item(), opt, lr, gen)
    pipe.unet.eval()


def data_digest(pixels: torch.Tensor, captions: torch.Tensor, prompts: list[str]) -> str:
    digest = hashlib.sha256(pixels.contiguous().numpy().tobytes())
    digest.update(captions.numpy().tobytes())
    digest.update("\n".join(prompts).encode())
    return digest.hexdigest()


def adapt_pipeline(
    pipe,
    pixels: torch.Tensor,
    captions: torch.Tensor,
    prompts: list[str],
    settings: dict,
    checkpoint=None,
    stop_after: int | None = None,
    device: str = "cpu",
) -> dict:
    """Adapt `pipe` in place on `pixels` (N, 3, H, W in [-1, 1]) captioned by `prompts[captions[i]]`, resuming
    from `checkpoint`'s resume state if an earlier run of the same settings and data left one, on `device`
    (every random draw still comes from one CPU generator). Returns the loss curves {"vae": [...],
    "unet": [...]}. `stop_after` steps (tests) stop it as a stop signal would. With `lora`, `pipe.unet`
    keeps its LoRA adapter (imagenet_sd.train.lora.save_lora_and_fuse writes and fuses it)."""
    settings = adaptation_settings(settings)
    if len(pixels) != len(captions):
        raise ValueError(f"{len(pixels)} images but {len(captions)} captions")
    torch.manual_seed(settings["seed"])  # what the models draw without a generator (a LoRA's init, dropout)
    gen = torch.Generator().manual_seed(settings["seed"])
    if settings.get("lora"):
        add_lora(pipe.unet, settings["lora"])
    trained = {k: v for k, v in settings.items() if k != "save_every"}  # saving more often changes no weight
    identity = {"settings": trained, "data": data_digest(pixels, captions, prompts)}
    with StopSignals() as signals:
        progress = Progress(pipe, checkpoint, identity, settings["save_every"], stop_after, signals)
        pipe.to(device)
        pixels = pixels.to(device)
        train_vae(pipe.vae, pixels, settings, gen, progress)
        latents = encode_latents(pipe.vae, pixels, rescale=not settings.get("lora"))
        train_unet(pipe, latents, captions, prompt_embeddings(pipe, prompts), settings, gen, progress)
    return progress.losses
