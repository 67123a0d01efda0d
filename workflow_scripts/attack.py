"""One adversarial attack at one epsilon on a fixed, seeded subset of an evaluation set: clean and adversarial
top-1 / top-5 and calibration of the same images."""

import logging

import torch

from imagenet_sd.evaluate.attacks import Normalized, run_attack, subset_indices, unit_transform
from imagenet_sd.evaluate.evaluation import TOPK, accuracies, image_folder
from imagenet_sd.evaluate.records import header_fields
from imagenet_sd.planning.models import evalset_resize
from imagenet_sd.runtime import pick_device, setup_logging, write_json
from imagenet_sd.train.models import load_model

log = logging.getLogger("imagenet_sd.attack")


def attacked_subset(images, classes: list[str], evalset: dict, evalset_name, *, resolution, subset, seed, batch_size):
    """(loader over the fixed, seeded subset of the set's [0, 1] images, class match)."""
    if evalset.get("layout", "imagefolder") != "imagefolder":
        raise ValueError(f"attacks need an ImageFolder evaluation set; {evalset_name} has layout {evalset['layout']}")
    naming = evalset.get("folder_names", "wnid")
    transform = unit_transform(resolution, evalset_resize(evalset))
    dataset, match = image_folder(images, classes, transform, naming=naming)
    if not dataset.samples:
        raise ValueError(f"evaluation set {evalset_name} ({images}) has no images of the model's classes")
    chosen = torch.utils.data.Subset(dataset, subset_indices(len(dataset), subset, seed))
    return torch.utils.data.DataLoader(chosen, batch_size=batch_size, shuffle=False, num_workers=0), match


def scores(found: dict, ks: tuple[int, int]) -> dict:
    """Accuracies and calibration of the clean and the adversarial images."""
    return {
        name: {
            **accuracies(found[name]["correct"], found["n_images"], ks),
            **{k: v for k, v in found[name].items() if k != "correct"},
        }
        for name in ("clean", "adversarial")
    }


def attack_record(job: dict, result: dict, found: dict, match, ks, *, epsilon, sampling: dict, header: dict) -> dict:
    """What the attack job writes: `job` (model, set, attack, settings), clean and adversarial scores, the
    radius, the subset with how its images were read, and `header` (the fields shared with the evaluate
    record: checkpoint, preprocessing, versions)."""
    return {
        **result,
        **job,
        "epsilon_255": epsilon,
        "epsilon": epsilon / 255,
        "norm": "Linf",
        "input": "[0, 1] images, normalised inside the model",
        "subset": {"size": sampling["subset"], "seed": sampling["seed"], "n_images": found["n_images"]},
        "resolution": sampling["resolution"],
        "n_classes_scored": len(match.scored),
        "top5_k": ks[1],
        **header,
    }


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
    device = pick_device(device)
    torch.set_num_threads(max(1, threads))
    network, ckpt = load_model(checkpoint, model["source"], list(model["classes"]), model["arch"], device)
    sampling = {"resolution": resolution, "subset": subset, "seed": seed, "batch_size": batch_size}
    loader, match = attacked_subset(images, ckpt["classes"], evalset, evalset_name, **sampling)
    ks = (1, min(TOPK, len(match.scored)))
    network = Normalized(network).to(device)
    found = run_attack(network, loader, match.mask(ckpt["classes"]), device, ks, epsilon / 255, settings, seed)
    result = scores(found, ks)
    summary = (
        f"top-1 {result['clean']['top1']:.2f}% -> {result['adversarial']['top1']:.2f}% over {found['n_images']} images"
    )
    log.info("%s on %s, %s eps %g/255: %s", model_name, evalset_name, attack, epsilon, summary)
    job = {
        "model": model_name,
        "evalset": evalset_name,
        "attack": attack,
        "settings": dict(settings),
    }
    header = header_fields(checkpoint=checkpoint, ckpt=ckpt, resolution=resolution, resize=evalset_resize(evalset))
    record = attack_record(job, result, found, match, ks, epsilon=epsilon, sampling=sampling, header=header)
    write_json(output, record)
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
