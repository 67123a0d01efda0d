"""The jobs of a dry run counted by rule from Snakemake's 'Job stats' table (imagenet_sd.ops.dry_run), as the
planning benchmark (bench/planning.py) and the workflow tests read them."""

import pytest

from imagenet_sd.ops.dry_run import parse_job_stats

DRY_RUN = """Building DAG of jobs...
Job stats:
job          count
---------  -------
all              1
generate        12
prompts          6
total           19

Reasons:
"""


def test_jobs_are_counted_per_rule_and_nothing_to_do_counts_none():
    assert parse_job_stats(DRY_RUN) == {"all": 1, "generate": 12, "prompts": 6}
    assert parse_job_stats("Building DAG of jobs...\nNothing to be done (all requested files are present).") == {}


def test_output_without_job_stats_is_an_error_that_shows_it():
    with pytest.raises(ValueError, match="no job stats in snakemake output:\nMissingInputException"):
        parse_job_stats("MissingInputException in rule pack")
