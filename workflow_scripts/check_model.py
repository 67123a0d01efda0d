"""Snakemake entry of `check_model` (login node): an external checkpoint loads into its architecture with
every key and shape as expected and one output per class of its class set; otherwise the error names them."""

from imagenet_sd.runtime import setup_logging, sha256_file, versions, write_json
from imagenet_sd.train.models import load_state_dict_model


def main(*, checkpoint: str, arch: str, classes: list[str], output: str) -> None:
    model = load_state_dict_model(checkpoint, arch, classes)
    write_json(
        output,
        {
            "checkpoint": checkpoint,
            "sha256": sha256_file(checkpoint),
            "arch": arch,
            "n_classes": len(classes),
            "fc_bias": model.fc.bias is not None,
            "versions": versions(),
        },
    )


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    spec = snakemake.params.model
    main(
        checkpoint=snakemake.input.checkpoint,
        arch=spec["arch"],
        classes=list(spec["classes"]),
        output=snakemake.output[0],
    )
