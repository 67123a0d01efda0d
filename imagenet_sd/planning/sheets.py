"""Class sheets: the TSV files a `class_sets` entry names, read and checked (a class's order in its sheet is
its class index; a `name` column overrides the class text, and so the class key)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from imagenet_sd import paths
from imagenet_sd.config import ConfigError
from imagenet_sd.planning.keys import class_key
from imagenet_sd.prompts.wordnet import unknown_wnids, wordnet_data_noun


@dataclass(frozen=True)
class ClassEntry:
    wnid: str
    name: str | None  # sheet override of c
    key: str


def read_sheet(path: str | os.PathLike) -> list[ClassEntry]:
    """A TSV class sheet: header with column `wnid`, optional column `name`. Order = class index."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"class sheet not found: {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if not reader.fieldnames or "wnid" not in reader.fieldnames:
            raise ConfigError(f"class sheet {path}: the header must have a `wnid` column (got {reader.fieldnames})")
        unknown = set(reader.fieldnames) - {"wnid", "name"}
        if unknown:
            raise ConfigError(f"class sheet {path}: unknown column(s) {sorted(unknown)}; allowed: wnid, name")
        entries, seen = [], set()
        for line, row in enumerate(reader, start=2):
            wnid = (row.get("wnid") or "").strip()
            if not paths.WNID_RE.match(wnid):
                raise ConfigError(f"class sheet {path}, line {line}: {wnid!r} is not a WordNet noun id like n01440764")
            if wnid in seen:
                raise ConfigError(f"class sheet {path}, line {line}: class {wnid} is listed twice")
            seen.add(wnid)
            name = (row.get("name") or "").strip() or None
            entries.append(ClassEntry(wnid, name, class_key(wnid, name)))
    if not entries:
        raise ConfigError(f"class sheet {path} lists no class")
    return entries


def read_sheets(config: dict) -> dict[str, list[ClassEntry]]:
    """Every `class_sets` entry's sheet by name; an error names the entry."""
    sheets = {}
    for name, cs in config.get("class_sets", {}).items():
        try:
            sheets[name] = read_sheet(cs["sheet"])
        except ConfigError as e:
            raise ConfigError(f"class_sets.{name}: {e}") from None
    return sheets


def check_sheet_wnids(config: dict, sheets: dict[str, list[ClassEntry]]) -> None:
    """Every wnid of every sheet is a WordNet 3.0 noun synset (when WordNet is already on disk)."""
    data_noun = wordnet_data_noun(config)
    if data_noun is None:
        return
    for name, entries in sheets.items():
        bad = unknown_wnids([e.wnid for e in entries], data_noun)
        if bad:
            sheet = config["class_sets"][name]["sheet"]
            raise ConfigError(f"class_sets.{name} ({sheet}): not a WordNet 3.0 noun synset: {', '.join(bad[:10])}")
