"""How long the login node spends planning a full-scale config (`snakemake -n`), and the jobs per rule.

Usage: .venv/bin/python bench/planning.py [configfile ...]   (default: both full-scale configs)
"""

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from imagenet_sd.ops.dry_run import parse_job_stats  # noqa: E402

SNAKEMAKE = [sys.executable, "-m", "snakemake"]  # the Snakemake of the Python that runs this script


def plan(configfile: str, repeats: int = 3) -> tuple[float, dict]:
    times, jobs = [], {}
    for _ in range(repeats):
        started = time.perf_counter()
        proc = subprocess.run(
            [*SNAKEMAKE, "-n", "--cores", "1", "--configfile", configfile],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(time.perf_counter() - started)
        jobs = parse_job_stats(proc.stdout + proc.stderr)
    return sorted(times)[len(times) // 2], dict(jobs)


if __name__ == "__main__":
    for configfile in sys.argv[1:] or ["config/imagenet100_sd.yaml", "config/imagenet1k_sd.yaml"]:
        seconds, jobs = plan(configfile)
        print(f"{configfile}: {sum(jobs.values())} jobs planned in {seconds:.1f} s (median of 3)")
        for rule, count in sorted(jobs.items()):
            print(f"  {rule:16s} {count}")
