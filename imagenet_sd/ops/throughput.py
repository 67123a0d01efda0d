"""Throughput of generation and training jobs: measured in the stats JSON of chunks already made, or read
from the table in data/throughput.tsv (every row says whether it was measured, published or estimated)."""

from __future__ import annotations

import csv
import json
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from imagenet_sd.config import ConfigError
from imagenet_sd.generate.families import HUB_FAMILIES

THROUGHPUT = Path(__file__).resolve().parents[2] / "data" / "throughput.tsv"
THROUGHPUT_COLUMNS = (
    "job",
    "model",
    "resolution",
    "steps",
    "guidance",
    "dtype",
    "gpu",
    "images_per_second",
    "fixed_seconds",
    "kind",
    "source",
)
# The table's model names of the generator families (imagenet_sd/generate/families.py).
TABLE_NAMES = {
    "sd1": "sd-v1",
    "sd2": "sd-v2",
    "sd-turbo": "sd-turbo",
    "sdxl": "sdxl",
    "sdxl-turbo": "sdxl-turbo",
    "pixart-alpha": "pixart-alpha",
    "sd3": "sd3",  # a folder declared sd3: its size (medium, large) is not known, so only its own rows match
    "flux-schnell": "flux-schnell",
}
# Hub ids of one family whose sizes differ: each has rows of its own.
HUB_TABLE_NAMES = {
    "stabilityai/stable-diffusion-3-medium-diffusers": "sd3-medium",
    "stabilityai/stable-diffusion-3.5-medium": "sd3.5-medium",
    "stabilityai/stable-diffusion-3.5-large": "sd3.5-large",
}
KIND_PREFERENCE = ("measured", "published", "estimate")
DEFAULT_GPU = "H100"  # the card the table's estimates are quoted for when no measurement exists


@dataclass(frozen=True)
class Rate:
    """Throughput of one kind of job: seconds = jobs x fixed_seconds + images / images_per_second."""

    images_per_second: float
    fixed_seconds: float
    source: str  # short, for the tables
    detail: str = ""  # where the number comes from, in full

    def seconds(self, images: float, jobs: int = 0) -> float:
        return jobs * self.fixed_seconds + images / self.images_per_second


# ---- throughput table --------------------------------------------------------------------------
def load_throughput(path: str | Path = THROUGHPUT) -> list[dict]:
    """Rows of the throughput table, numbers parsed; ConfigError naming the file and line on a bad row."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"throughput table not found: {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = set(THROUGHPUT_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ConfigError(f"throughput table {path}: missing column(s) {sorted(missing)}")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                row["images_per_second"] = float(row["images_per_second"])
                row["fixed_seconds"] = float(row["fixed_seconds"])
            except ValueError:
                raise ConfigError(
                    f"throughput table {path}, line {line}: images_per_second and fixed_seconds must be numbers"
                ) from None
            if row["images_per_second"] <= 0 or row["kind"] not in KIND_PREFERENCE:
                raise ConfigError(
                    f"throughput table {path}, line {line}: images_per_second must be > 0 and kind "
                    "one of estimate, published, measured"
                )
            rows.append(row)
    return rows


def gpu_matches(gpu: str, device: str) -> bool:
    """`A100` names 'NVIDIA A100-SXM4-80GB' but not 'NVIDIA A10' (and `A10` not an A100)."""
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(gpu)}(?![0-9])", device, re.I) is not None


def model_family(model: str, family: str | None = None) -> str:
    """The throughput table's name of a pipeline: its architecture, not its weights (a generator's `family`,
    or a known hub id's)."""
    if re.search(r"stable-diffusion-v1", model, re.I):
        return "sd-v1"
    if model in HUB_TABLE_NAMES:
        return HUB_TABLE_NAMES[model]
    family = family or HUB_FAMILIES.get(model)
    if family:
        return TABLE_NAMES[family]
    return Path(model).name  # a local or unknown pipeline: only a row with its own name matches


def precision(dtype: str) -> str:
    return "float32" if dtype == "float32" else "16-bit"


def table_rate(rows: list[dict], job: str, wanted: dict, gpu: str) -> Rate | None:
    """The table row of this job on this GPU, a measured row before a published one before an estimate; a
    generator row at other `steps` is scaled linearly (a row at the same steps first: at 1-4 steps the fixed
    VAE decode makes the cost far from linear)."""
    wanted_steps = wanted.get("steps")
    for row in sorted(rows, key=lambda r: (KIND_PREFERENCE.index(r["kind"]), r["steps"] != wanted_steps)):
        if row["job"] != job or not gpu_matches(row["gpu"], gpu):
            continue
        if any(row[k] != v for k, v in wanted.items() if k != "steps"):
            continue
        ips, note = row["images_per_second"], ""
        if job == "generate" and row["steps"] != wanted["steps"]:
            ips *= int(row["steps"]) / int(wanted["steps"])
            note = f", scaled from {row['steps']} steps"
        return Rate(
            ips,
            row["fixed_seconds"],
            f"table {row['gpu']} {row['kind']}{note}",
            f"{row['job']} {row['model']} {row['gpu']} {row['dtype']} ({row['kind']}): {row['source']}",
        )
    return None


# ---- measured throughput -----------------------------------------------------------------------
def measured_rate(generator_key: str, gpu: str | None, root: Path) -> Rate | None:
    """Medians over the stats JSON of chunks made with this generator key (on `gpu`, if given; else on the
    device most of them ran on)."""
    stats = []
    for path in sorted((root / "results" / "generated" / generator_key).glob("**/*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if record.get("images") and (record.get("steady_images_per_second") or record.get("images_per_second")):
            stats.append(record)
    if gpu:
        stats = [s for s in stats if gpu_matches(gpu, str(s.get("device", "")))]
    if not stats:
        return None
    device = Counter(str(s.get("device")) for s in stats).most_common(1)[0][0]
    stats = [s for s in stats if str(s.get("device")) == device]

    def fixed(s: dict) -> float:
        """Without a steady rate, images_per_second already includes the job's fixed cost."""
        if not s.get("steady_images_per_second"):
            return 0.0
        return sum(s.get("seconds", {}).get(k, 0.0) for k in ("load", "warmup", "write"))

    ips = statistics.median(s.get("steady_images_per_second") or s["images_per_second"] for s in stats)
    return Rate(
        ips,
        statistics.median(fixed(s) for s in stats),
        f"measured: {len(stats)} chunks on {device}",
        f"results/generated/{generator_key}: median steady images/s of {len(stats)} chunks on {device}; "
        "fixed seconds per job = median load + warm-up + write wait",
    )
