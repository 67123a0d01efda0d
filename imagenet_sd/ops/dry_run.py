"""The jobs a Snakemake dry run schedules, counted by rule, read from its 'Job stats' table (the benchmark of
planning and the workflow tests count them)."""

from __future__ import annotations

import re
from collections import Counter


def parse_job_stats(text: str) -> Counter:
    """Jobs per rule in a dry run's output; empty when Snakemake has nothing to do."""
    counts: Counter = Counter()
    if "Nothing to be done" in text:
        return counts
    match = re.search(r"Job stats:\n(.*?)\n\s*total\s+\d+", text, re.S)
    if not match:
        raise ValueError(f"no job stats in snakemake output:\n{text[-3000:]}")
    for line in match.group(1).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] += int(parts[1])
    return counts
