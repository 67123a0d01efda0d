"""The header of the evaluate and attack jobs' JSON records: what was scored, with which checkpoint, at which
resolution and preprocessing, under which library versions.

`header_fields` writes the fields both records hold under the same keys; `read_record` reads the header of
either record back for the result tables. The two records name some header fields differently (the evaluate
record: `run`, `evalset` as an object, `eval_resolution`; the attack record: `model`, `evalset` as a name,
`resolution`) and records written by earlier versions lack some of them: records on disk are not rewritten
when the code changes, so the reader takes every shape and says None for what a record does not hold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from imagenet_sd.runtime import sha256_file, versions
from imagenet_sd.train.preprocessing import eval_preprocessing


def header_fields(*, checkpoint, ckpt: dict, resolution: int, resize: bool, step: bool = False) -> dict:
    """The fields every evaluate and attack record writes alike: the checkpoint scored (`path`, `sha256`,
    `arch`, and with `step` its training step), the preprocessing of the images at `resolution` (`resize`: the
    shorter side is resized before the centre crop) and the versions of the libraries that can change scores."""
    block = {"path": str(checkpoint), "sha256": sha256_file(checkpoint), "arch": ckpt["arch"]}
    if step:
        block["step"] = ckpt.get("step")
    return {"checkpoint": block, "preprocessing": eval_preprocessing(resolution, resize), "versions": versions()}


@dataclass(frozen=True)
class Header:
    """What a record is of: the model and evaluation set, the images scored, and (None in a record that does
    not hold them) the checkpoint block, resolution, preprocessing and versions."""

    model: str
    evalset: str
    n_images: int | None
    checkpoint: dict | None
    resolution: int | None
    preprocessing: dict | None
    versions: dict | None


def header(record: dict, where: str = "record") -> Header:
    """The header of an evaluate record (`run`, `evalset.name`, `n_images`, `eval_resolution`) or an attack
    record (`model`, `evalset`, `subset.n_images`, `resolution`); ValueError naming `where` and the missing key
    when the record names no model or no evaluation set."""
    model = record.get("model") or record.get("run")
    evalset = record.get("evalset")
    evalset = evalset.get("name") if isinstance(evalset, dict) else evalset
    if not model or not evalset:
        missing = "`model` or `run`" if not model else "`evalset`"
        raise ValueError(f"{where}: not an evaluate or attack record (it has no {missing})")
    subset = record.get("subset")
    return Header(
        model=model,
        evalset=evalset,
        n_images=subset["n_images"] if isinstance(subset, dict) else record.get("n_images"),
        checkpoint=record.get("checkpoint"),
        resolution=record.get("resolution", record.get("eval_resolution")),
        preprocessing=record.get("preprocessing"),
        versions=record.get("versions"),
    )


def read_record(path) -> tuple[Header, dict]:
    """An evaluate or attack record from its JSON file: (its header, the whole record)."""
    record = json.loads(Path(path).read_text())
    return header(record, str(path)), record
