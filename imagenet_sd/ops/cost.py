"""What a config costs before it runs: its generate and train jobs in GPU-hours, and how much is on disk.

    python -m imagenet_sd.ops.cost --configfile config/imagenet1k_sd.yaml [--gpu H100]

Generation: per clone, the chunks of the plan (imagenet_sd.planning.clones) whose tar and stats JSON are not
both on disk, at a throughput measured in the stats JSON of chunks already made with the same generator key,
or else read from a throughput table (data/throughput.tsv). A job costs `fixed_seconds` (load + warm-up) plus
its images at the steady rate. Training: images seen (epochs x clone images, capped by max_steps) times
the crops' pixels relative to one crop at the table's resolution, at the table's rate. docs/cost.md says
where every number comes from and how to replace estimates with measurements.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pandas as pd
import yaml
from snakemake.exceptions import WorkflowError

from imagenet_sd import paths
from imagenet_sd.config import SCHEMA, ConfigError, schema
from imagenet_sd.generate import guidance
from imagenet_sd.ops.throughput import (
    DEFAULT_GPU,
    THROUGHPUT,
    Rate,
    load_throughput,
    measured_rate,
    model_family,
    precision,
    table_rate,
)
from imagenet_sd.planning.clones import Plan, build_plan


def generator_rate(plan: Plan, generator: str, gpu: str | None, rows: list[dict], root: Path) -> Rate | None:
    measured = measured_rate(plan.generator_key(generator), gpu, root)
    if measured:
        return measured
    g = plan.config["generators"][generator]
    wanted = {
        "model": model_family(g["model"], g.get("family")),
        "resolution": f"{g['height']}x{g['width']}",
        "steps": str(g["steps"]),
        "guidance": "yes" if guidance.guided(g) else "no",
        "dtype": precision(g["dtype"]),
    }
    return table_rate(rows, "generate", wanted, gpu or DEFAULT_GPU)


# ---- generation --------------------------------------------------------------------------------
def chunk_done(root: Path, tar: str) -> bool:
    """A chunk is made when its tar and its stats JSON (written last) are both there."""
    return (root / tar).is_file() and (root / tar).with_suffix(".json").is_file()


def generation_table(plan: Plan, rates: dict, root: Path) -> pd.DataFrame:
    """One row per clone. Chunks shared with a clone listed earlier are counted there, not again."""
    counted: set[str] = set()
    rows = []
    for name, clone in plan.clones.items():
        if clone.real:  # a real clone is packed from its folder: nothing to generate
            continue
        needed = on_disk = new = jobs = 0
        for split in paths.SPLITS:
            for tar in plan.clone_chunks(name, split):
                start, stop = (int(x) for x in Path(tar).stem.split("-"))
                needed += stop - start
                if chunk_done(root, tar):
                    on_disk += stop - start
                elif tar not in counted:
                    new, jobs = new + stop - start, jobs + 1
                counted.add(tar)
        rate = rates[clone.generator]
        rows.append(
            {
                "clone": name,
                "generator": clone.generator,
                "images": needed,
                "on_disk": on_disk,
                "to_generate": new,
                "jobs": jobs,
                "images_per_second": rate.images_per_second if rate else math.nan,
                "gpu_hours": rate.seconds(new, jobs) / 3600 if rate else math.nan,
                "on_disk_gpu_hours": rate.seconds(on_disk) / 3600 if rate else math.nan,
                "throughput_from": rate.source if rate else "unknown: see docs/cost.md",
            }
        )
    return pd.DataFrame(rows)


# ---- training ----------------------------------------------------------------------------------
def images_seen(training: dict, clone_images: int) -> int:
    """Images the optimiser sees: every epoch reads the clone once, max_steps (if set) stops earlier."""
    seen = training["epochs"] * clone_images
    if training.get("max_steps"):
        seen = min(seen, training["max_steps"] * training["batch_size"])
    return seen


def crop_factor(training: dict, reference: int) -> float:
    """Pixels of one image's crops relative to one crop at the table's resolution (conv cost ~ pixels)."""
    return (training["resolution"] ** 2 + training["local_crops"] * training["local_resolution"] ** 2) / reference**2


def training_rate(training: dict, gpu: str | None, rows: list[dict]) -> tuple[Rate | None, int]:
    """The table's rate for this architecture and precision, and the crop side that rate is quoted at."""
    wanted = {"model": training["arch"], "dtype": precision("bfloat16" if training["amp"] else "float32")}
    rate = table_rate(rows, "train", wanted, gpu or DEFAULT_GPU)
    reference = next(
        (int(r["resolution"]) for r in rows if r["job"] == "train" and r["model"] == training["arch"]),
        training["resolution"],
    )
    return rate, reference


def training_table(plan: Plan, rates: dict, root: Path) -> pd.DataFrame:
    """One row per run; `rates`: run -> (Rate or None, reference crop side)."""
    out = []
    for run, spec in plan.config["runs"].items():
        training = plan.config["trainings"][spec["training"]]
        clone = plan.clones[spec["clone"]]
        # a real clone without an images_per_class cap has as many images as its folder: unknown here
        per_class = clone.images_per_class
        seen = images_seen(training, per_class * len(clone.classes)) if per_class else math.nan
        rate, reference = rates[run]
        factor = crop_factor(training, reference)
        done = (root / paths.CHECKPOINT.format(run=run)).is_file()
        seconds = rate.seconds(seen * factor) if rate and per_class else math.nan
        out.append(
            {
                "run": run,
                "clone": spec["clone"],
                "images_seen": seen,
                "crop_factor": round(factor, 3),
                "images_per_second": rate.images_per_second if rate else math.nan,
                "gpu_hours": 0.0 if done else seconds / 3600,
                "on_disk_gpu_hours": seconds / 3600 if done else 0.0,
                "status": "trained" if done else "to train",
                "throughput_from": rate.source if rate else "unknown: see docs/cost.md",
            }
        )
    return pd.DataFrame(
        out,
        columns=[
            "run",
            "clone",
            "images_seen",
            "crop_factor",
            "images_per_second",
            "gpu_hours",
            "on_disk_gpu_hours",
            "status",
            "throughput_from",
        ],
    )


# ---- the whole estimate --------------------------------------------------------------------------
@dataclass
class Estimate:
    generation: pd.DataFrame
    training: pd.DataFrame
    gpu: str | None
    sources: list[str]

    @property
    def gpu_hours(self) -> float:
        """NaN when any job's throughput is unknown: a partial sum would read as a price."""
        return float(self.generation.gpu_hours.sum(skipna=False)) + float(self.training.gpu_hours.sum(skipna=False))

    @property
    def on_disk_gpu_hours(self) -> float:
        return float(self.generation.on_disk_gpu_hours.sum()) + float(self.training.on_disk_gpu_hours.sum())


def estimate(
    config: dict, gpu: str | None = None, throughput: str | Path = THROUGHPUT, root: str | Path = "."
) -> Estimate:
    """The cost of a validated config (defaults filled), run in `root`."""
    root = Path(root)
    plan = build_plan(config)
    rows = load_throughput(throughput)
    rates = {
        c.generator: generator_rate(plan, c.generator, gpu, rows, root) for c in plan.clones.values() if not c.real
    }
    train_rates = {
        run: training_rate(config["trainings"][spec["training"]], gpu, rows) for run, spec in config["runs"].items()
    }
    used = [*rates.values(), *(rate for rate, _ in train_rates.values())]
    sources = sorted({rate.detail for rate in used if rate})
    return Estimate(generation_table(plan, rates, root), training_table(plan, train_rates, root), gpu, sources)


def load_config(configfiles: list[str]) -> dict:
    """Config files merged in order (as Snakemake does), checked and completed by the schema."""
    from snakemake.utils import update_config, validate

    config: dict = {}
    for name in configfiles:
        if not Path(name).is_file():
            raise ConfigError(f"config file not found: {name}")
        update_config(config, yaml.safe_load(Path(name).read_text()) or {})
    validator = jsonschema.validators.validator_for(schema())(schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    # One line naming the key, before Snakemake's validator (which fills the defaults) would dump the schema.
    if error is not None:
        raise ConfigError(f"{'.'.join(map(str, error.absolute_path)) or 'config'}: {error.message}")
    config = copy.deepcopy(config)
    validate(config, str(SCHEMA))
    return config


def hours(value: float) -> str:
    return "unknown" if math.isnan(value) else f"{value:,.1f}"


def markdown(table: pd.DataFrame) -> str:
    """Numbers written for people (thousands separators, hours to 0.1), then a Markdown table."""

    def cell(column: str, value) -> str:
        if isinstance(value, float) and column.endswith("hours"):
            return hours(value)
        if isinstance(value, float):
            return "unknown" if math.isnan(value) else f"{value:.3g}" if value < 100 else f"{value:,.0f}"
        return f"{value:,}" if isinstance(value, int) else str(value)

    shown = pd.DataFrame({c: [cell(c, v) for v in table[c].tolist()] for c in table.columns})
    return shown.to_markdown(index=False, disable_numparse=True)


def report(est: Estimate, title: str) -> str:
    gen, train = est.generation, est.training
    where = est.gpu or f"{DEFAULT_GPU} (table) or the device of measured chunks"
    lines = [f"# Cost of {title}", "", f"GPU-hours on {where}; wall-clock time = GPU-hours / GPUs working at once.", ""]
    if len(gen):
        lines += [
            "## Generation (one generate job per chunk)",
            "",
            markdown(gen),
            "",
            f"Images to generate: {gen.to_generate.sum():,} in {gen.jobs.sum():,} jobs "
            f"(chunks shared between clones counted once, under the first); on disk: {gen.on_disk.sum():,}.",
            "",
        ]
    if len(train):
        lines += ["## Training (images seen x crop_factor = images at the table's crop size)", "", markdown(train), ""]
    lines += [
        f"**Total to run: {hours(est.gpu_hours)} GPU-hours** "
        f"(already on disk: {hours(est.on_disk_gpu_hours)} GPU-hours' worth).",
        "",
    ]
    if any(frame.throughput_from.str.startswith("unknown").any() for frame in (gen, train) if len(frame)):
        lines += [
            "A throughput is unknown: generate one chunk and rerun (its stats JSON is then used), "
            "or add a row to the throughput table (docs/cost.md).",
            "",
        ]
    lines += ["Where the throughputs come from:"] + [f"- {s}" for s in est.sources]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagenet_sd.ops.cost", description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", nargs="+", default=["config.yaml"], help="config file(s), merged in order")
    parser.add_argument("--gpu", help="card to price on, e.g. H100, A100 (default: measured device, else H100)")
    parser.add_argument("--throughput", default=str(THROUGHPUT), help="throughput table (TSV)")
    args = parser.parse_args(argv)
    try:
        est = estimate(load_config(args.configfile), gpu=args.gpu, throughput=args.throughput)
    except (ConfigError, WorkflowError) as error:
        print(f"invalid config: {error}", file=sys.stderr)
        return 1
    print(report(est, " + ".join(args.configfile)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
