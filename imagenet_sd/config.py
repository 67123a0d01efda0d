"""The config schema (schemas/config.schema.yaml) as the one gate for types, enums, required pairs and defaults.

The Snakefile validates the whole config with it before anything else. Library functions that can also be
called on their own (tests, notebooks) resolve one named entry through `resolve_entry`, which applies the
same schema: no module keeps its own list of keys, defaults or allowed values.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import jsonschema
import yaml

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config, sheet or file problem found before any job runs. The message names the culprit."""


@functools.cache
def schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def entry_schema(section: str, *nested: str) -> dict:
    """The schema of one named entry of a config section (`recipes`, `trainings`, ...); `nested` keys lead to
    a named map deeper down (`robustness`, `attacks`)."""
    node = schema()["properties"][section]
    for key in nested:
        node = node["properties"][key]
    return node["additionalProperties"]


# Keys added to a section after outputs of it existed, each with the value that keeps the old behaviour (its
# default). A job's params leave such a key out while it holds that value: Snakemake reruns a job whose
# params changed, and a finished training must not rerun just because the schema grew.
LATE_DEFAULTS = {"trainings": {"flip": True}}


def job_params(section: str, entry: dict) -> dict:
    """`entry` as a job's params: its late keys (LATE_DEFAULTS) left out while they keep the old behaviour."""
    late = LATE_DEFAULTS.get(section, {})
    return {key: value for key, value in entry.items() if key not in late or value != late[key]}


def schema_defaults(section: str, *nested: str) -> dict:
    """Defaults of one named entry of a config section, as the schema writes them."""
    return {key: spec.get("default") for key, spec in entry_schema(section, *nested)["properties"].items()}


def resolve_entry(section: str, name: str, entry: dict) -> dict:
    """One named entry checked against the schema and completed with its defaults (a new dict).

    Raises ConfigError naming `section.name[.key]` and what is wrong.
    """
    spec = entry_schema(section)
    validator = jsonschema.validators.validator_for(schema())(spec)
    error = jsonschema.exceptions.best_match(validator.iter_errors(entry))
    if error is not None:
        where = ".".join([section, name, *map(str, error.absolute_path)])
        if error.validator == "additionalProperties":
            unknown = sorted(set(error.instance) - set(spec["properties"]))
            raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(spec['properties'])}")
        raise ConfigError(f"{where}: {error.message}")
    return {**copy.deepcopy(schema_defaults(section)), **entry}
