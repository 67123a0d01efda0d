"""Top-1 / top-5 and calibration (ECE, NLL) of a model (a run's checkpoint or an external one) on one
evaluation set: an ImageFolder of wnid folders, or a set of corruptions in ImageNet-C's layout (scored per
corruption and severity)."""

import logging

import torch

from imagenet_sd.evaluate.corruptions import corruption_folders, corruption_summary
from imagenet_sd.evaluate.evaluation import read_class_list, score_folder
from imagenet_sd.evaluate.records import header_fields
from imagenet_sd.planning.models import evalset_resize
from imagenet_sd.runtime import pick_device, setup_logging, write_json
from imagenet_sd.train.models import load_model
from imagenet_sd.train.training import resolve_training
from imagenet_sd.train.transforms import eval_transform

log = logging.getLogger("imagenet_sd.evaluate")


def score_set(model, classes: list[str], images, evalset: dict, settings: dict, resolution: int) -> dict:
    """Accuracies and calibration on an ImageFolder set, or per corruption and severity on an ImageNet-C one
    (fed at its stored size unless the set says `resize: true`)."""
    transform = eval_transform(resolution, evalset_resize(evalset))
    if evalset.get("layout", "imagefolder") != "corruptions":
        return score_folder(model, images, classes, transform, **settings)
    parts: dict = {}
    for corruption, severity, folder in corruption_folders(images):
        parts.setdefault(corruption, {})[severity] = score_folder(model, folder, classes, transform, **settings)
    return corruption_summary(parts)


def record(result: dict, *, run, ckpt: dict, checkpoint, evalset_name: str, evalset: dict, images, resolution) -> dict:
    """What the evaluate job writes: the scores, what was scored, and with what (the header shared with the
    attack record, its checkpoint block with the training step)."""
    return {
        **result,
        "run": run,
        "n_model_classes": len(ckpt["classes"]),
        "evalset": {
            "name": evalset_name,
            "description": evalset.get("description", ""),
            "path": str(images),
            "clone": evalset.get("clone"),
        },
        "eval_resolution": resolution,
        **header_fields(
            checkpoint=checkpoint, ckpt=ckpt, resolution=resolution, resize=evalset_resize(evalset), step=True
        ),
    }


def main(
    *,
    checkpoint,
    images,
    output,
    classes,
    training,
    evalset_name,
    evalset,
    run=None,
    threads=1,
    device=None,
    source="run",
    arch=None,
):
    training = resolve_training(training)
    device = pick_device(device)
    torch.set_num_threads(max(1, threads))
    # a run's checkpoint must list the run's classes in order; an external one takes them from its class set
    model, ckpt = load_model(checkpoint, source, list(classes), arch or training["arch"], device)
    channels_last = training["channels_last"] and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    settings = {
        "naming": evalset.get("folder_names", "wnid"),
        "batch_size": training["batch_size"],
        "workers": min(training["workers"], threads),
        "device": device,
        "channels_last": channels_last,
        "declared": read_class_list(evalset["classes"]) if evalset.get("classes") else None,
    }
    result = score_set(model, ckpt["classes"], images, evalset, settings, training["eval_resolution"])
    log.info(
        "%s on %s: top-1 %.2f%%, top-%d %.2f%%, ECE %.4f, NLL %.4f over %d images",
        run,
        evalset_name,
        result["top1"],
        result["top5_k"],
        result["top5"],
        result["ece"],
        result["nll"],
        result["n_images"],
    )
    write_json(
        output,
        record(
            result,
            run=run,
            ckpt=ckpt,
            checkpoint=checkpoint,
            evalset_name=evalset_name,
            evalset=evalset,
            images=images,
            resolution=training["eval_resolution"],
        ),
    )


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    # params.images: a real evaluation set is not a DAG input (only held-out splits built here are)
    spec = dict(snakemake.params.model)
    main(
        checkpoint=snakemake.input.checkpoint,
        images=snakemake.params.images,
        output=snakemake.output[0],
        classes=list(spec["classes"]),
        training=dict(snakemake.params.training),
        evalset_name=snakemake.wildcards.evalset,
        evalset=dict(snakemake.params.evalset),
        run=snakemake.wildcards.model,
        threads=snakemake.threads,
        source=spec["source"],
        arch=spec["arch"],
    )
