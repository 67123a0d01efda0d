"""Top-1 / top-5 of a model (a run's checkpoint or an external one) on one evaluation set (ImageFolder of wnid folders)."""
import logging

import torch

from imagenet_sd.evaluation import TOPK, accuracies, image_folder, score
from imagenet_sd.runtime import setup_logging, versions, write_json
from imagenet_sd.runtime import sha256_file
from imagenet_sd.models import load_model, pick_device
from imagenet_sd.training import resolve_training
from imagenet_sd.transforms import eval_transform

log = logging.getLogger("imagenet_sd.evaluate")


def main(*, checkpoint, images, output, classes, training, evalset_name, evalset, run=None, threads=1, device=None,
         source="run", arch=None):
    training = resolve_training(training)
    device = pick_device(device)
    torch.set_num_threads(max(1, threads))
    model, ckpt = load_model(checkpoint, source, list(classes), arch or training["arch"], device)  # checks a run's classes
    channels_last = training["channels_last"] and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)

    dataset, match = image_folder(images, ckpt["classes"], eval_transform(training["eval_resolution"]),
                                  naming=evalset.get("folder_names", "wnid"))
    if not match.scored or not dataset.samples:
        raise ValueError(f"evaluation set {evalset_name} ({images}) has no images of the model's classes")
    if match.model_only or match.set_only:
        log.info("scoring %d shared classes: %d model classes absent from the set (masked), "
                 "%d set folders unknown to the model (not scored)",
                 len(match.scored), len(match.model_only), len(match.set_only))
    ks = (1, min(TOPK, len(match.scored)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=training["batch_size"], shuffle=False,
                                         num_workers=min(training["workers"], threads),
                                         pin_memory=device.type == "cuda")
    correct, n_images = score(model, loader, match.mask(ckpt["classes"]), device, ks, channels_last)
    result = accuracies(correct, n_images, ks)
    log.info("%s on %s: top-1 %.2f%%, top-%d %.2f%% over %d images", run, evalset_name, result["top1"],
             ks[1], result["top5"], n_images)

    write_json(output, {
        **result,
        "run": run,
        "n_classes_scored": len(match.scored),
        "n_model_classes": len(ckpt["classes"]),
        "classes_scored": match.scored,
        "model_classes_missing_from_evalset": match.model_only,
        "evalset_classes_not_in_model": match.set_only,
        "evalset": {"name": evalset_name, "description": evalset.get("description", ""), "path": str(images),
                    "clone": evalset.get("clone")},
        "checkpoint": {"path": str(checkpoint), "sha256": sha256_file(checkpoint), "arch": ckpt["arch"],
                       "step": ckpt.get("step")},
        "eval_resolution": training["eval_resolution"],
        "versions": versions(),
    })


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    # params.images: a real evaluation set is not a DAG input (only held-out splits built here are)
    spec = dict(snakemake.params.model)
    main(checkpoint=snakemake.input.checkpoint, images=snakemake.params.images, output=snakemake.output[0],
         classes=list(spec["classes"]), training=dict(snakemake.params.training),
         evalset_name=snakemake.wildcards.evalset, evalset=dict(snakemake.params.evalset),
         run=snakemake.wildcards.model, threads=snakemake.threads, source=spec["source"], arch=spec["arch"])
