"""One adversarial attack at one epsilon on a fixed, seeded subset of an evaluation set: clean and adversarial
top-1 / top-5 and calibration of the same images."""

import logging

import torch

from imagenet_sd.attacks import Normalized, run_attack, subset_indices, unit_transform
from imagenet_sd.evaluation import TOPK, accuracies, image_folder
from imagenet_sd.models import load_model, pick_device
from imagenet_sd.runtime import setup_logging, sha256_file, versions, write_json

log = logging.getLogger("imagenet_sd.attack")


def main(
    *,
    checkpoint,
    images,
    output,
    evalset,
    attack,
    settings,
    epsilon,
    subset,
    seed,
    resolution,
    batch_size,
    model: dict,
    model_name=None,
    evalset_name=None,
    threads=1,
    device=None,
):
    """`epsilon` in units of 1/255 (the L-infinity radius on [0, 1] images); `settings`: the attack's config;
    `model`: {"source", "classes", "arch"} of the model (a run's checkpoint or an external one)."""
    if evalset.get("layout", "imagefolder") != "imagefolder":
        raise ValueError(f"attacks need an ImageFolder evaluation set; {evalset_name} has layout {evalset['layout']}")
    device = pick_device(device)
    torch.set_num_threads(max(1, threads))
    network, ckpt = load_model(checkpoint, model["source"], list(model["classes"]), model["arch"], device)
    network = Normalized(network).to(device)
    dataset, match = image_folder(
        images, ckpt["classes"], unit_transform(resolution), naming=evalset.get("folder_names", "wnid")
    )
    if not dataset.samples:
        raise ValueError(f"evaluation set {evalset_name} ({images}) has no images of the model's classes")
    indices = subset_indices(len(dataset), subset, seed)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, indices), batch_size=batch_size, shuffle=False, num_workers=0
    )
    ks = (1, min(TOPK, len(match.scored)))
    found = run_attack(network, loader, match.mask(ckpt["classes"]), device, ks, epsilon / 255, settings, seed)
    result = {
        name: {
            **accuracies(found[name]["correct"], found["n_images"], ks),
            **{k: v for k, v in found[name].items() if k != "correct"},
        }
        for name in ("clean", "adversarial")
    }
    log.info(
        "%s on %s, %s eps %g/255: top-1 %.2f%% -> %.2f%% over %d images",
        model_name,
        evalset_name,
        attack,
        epsilon,
        result["clean"]["top1"],
        result["adversarial"]["top1"],
        found["n_images"],
    )
    write_json(
        output,
        {
            **result,
            "model": model_name,
            "evalset": evalset_name,
            "attack": attack,
            "settings": dict(settings),
            "epsilon_255": epsilon,
            "epsilon": epsilon / 255,
            "norm": "Linf",
            "input": "[0, 1] images, normalised inside the model",
            "subset": {"size": subset, "seed": seed, "n_images": found["n_images"]},
            "resolution": resolution,
            "n_classes_scored": len(match.scored),
            "top5_k": ks[1],
            "checkpoint": {"path": str(checkpoint), "sha256": sha256_file(checkpoint), "arch": ckpt["arch"]},
            "versions": versions(),
        },
    )
    return result


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    p = snakemake.params
    main(
        checkpoint=snakemake.input.checkpoint,
        images=p.images,
        output=snakemake.output[0],
        evalset=dict(p.evalset),
        attack=snakemake.wildcards.attack,
        settings=dict(p.settings),
        epsilon=p.epsilon,
        subset=p.subset,
        seed=p.seed,
        resolution=p.resolution,
        batch_size=p.batch_size,
        model=dict(p.model),
        model_name=snakemake.wildcards.model,
        evalset_name=snakemake.wildcards.evalset,
        threads=snakemake.threads,
    )
