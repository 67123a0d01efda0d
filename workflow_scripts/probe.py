"""Snakemake entry of `probe` / `probe_linear`: one linear probe (search, refit, test) on frozen features."""

import torch

from imagenet_sd.evaluate.features import read_features
from imagenet_sd.evaluate.probes import run_probe
from imagenet_sd.planning.transfer import drawn_test_fraction
from imagenet_sd.runtime import setup_logging, versions, write_json


def main(
    *,
    train,
    test,
    output,
    kind: str,
    settings: dict,
    val_fraction: float,
    seed: int,
    test_fraction: float | None = None,
    threads=1,
    device=None,
) -> dict:
    torch.set_num_threads(max(1, threads))
    train_x, train_y, classes = read_features(train)
    test_x, test_y, test_classes = read_features(test)
    if classes != test_classes:
        raise ValueError(f"{train} and {test} name different classes: the splits of one dataset must share them")
    result = run_probe(
        train_x,
        train_y,
        test_x,
        test_y,
        kind=kind,
        settings=dict(settings),
        val_fraction=val_fraction,
        seed=seed,
        n_classes=len(classes),
        device=device,
        test_fraction=test_fraction,
    )
    write_json(
        output,
        {
            **result,
            "settings": dict(settings),
            "val_fraction": val_fraction,
            "features": {"train": str(train), "test": str(test)},
            "versions": versions(),
        },
    )
    return result


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    main(
        train=snakemake.input.train,
        test=snakemake.input.test,
        output=snakemake.output[0],
        kind=snakemake.params.kind,
        settings=dict(snakemake.params.settings),
        val_fraction=snakemake.params.val_fraction,
        seed=int(snakemake.wildcards.seed),
        # From the config, not a param: it is in the output's probe key (a new param would rerun every probe).
        test_fraction=drawn_test_fraction(snakemake.config, snakemake.wildcards.dataset),
        threads=snakemake.threads,
    )
