"""The conda environment, the pip requirements and the config schema stay in step."""

import re

import yaml
from conftest import REPO


def pins(lines):
    return dict(
        re.match(r"^([A-Za-z0-9_.-]+)==(\S+)$", line.strip()).groups()
        for line in lines
        if line.strip() and not line.strip().startswith("#")
    )


def test_conda_env_pins_the_same_versions_as_requirements():
    requirements = pins((REPO / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((REPO / "envs/imagenet-sd.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pins(pip_section) == requirements


def walk_properties(schema, path="config"):
    """(path, sub-schema, parent schema) of every declared key, named entries included."""
    for name, sub in schema.get("properties", {}).items():
        yield f"{path}.{name}", sub, schema
        yield from walk_properties(sub, f"{path}.{name}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        yield from walk_properties(extra, f"{path}.<name>")


def test_every_schema_key_has_a_type_a_description_and_a_default_or_is_required():
    schema = yaml.safe_load((REPO / "schemas/config.schema.yaml").read_text())
    problems = []
    required = set()

    def collect_required(s, path="config"):
        required.update(f"{path}.{r}" for r in s.get("required", []))
        for name, sub in s.get("properties", {}).items():
            collect_required(sub, f"{path}.{name}")
        if isinstance(s.get("additionalProperties"), dict):
            collect_required(s["additionalProperties"], f"{path}.<name>")

    collect_required(schema)
    for path, sub, parent in walk_properties(schema):
        if "type" not in sub:
            problems.append(f"{path}: no type")
        if not sub.get("description"):
            problems.append(f"{path}: no description")
        alternatives = "oneOf" in parent  # e.g. an evaluation set has a path or a clone, neither by default
        # a key whose absence must stay distinct from any value (a filled-in default would change an output key)
        # says so first thing in its description
        said = sub.get("description", "").startswith("(No default")
        if "default" not in sub and path not in required and not alternatives and not said:
            problems.append(f"{path}: no default")
    assert not problems, "\n".join(problems)


def test_objects_in_the_schema_reject_unknown_keys():
    schema = yaml.safe_load((REPO / "schemas/config.schema.yaml").read_text())
    loose = [
        path
        for path, sub, _ in walk_properties(schema)
        if sub.get("type") == "object" and "properties" in sub and sub.get("additionalProperties") is not False
    ]
    assert not loose
