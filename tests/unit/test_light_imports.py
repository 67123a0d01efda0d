"""What the login node and the light jobs load. Every `snakemake` call reads the config and plans the DAG through
the imports of rules/common.smk, and the CPU rules (tables, sheets, cards, pack, prompts) run scripts on small
files: none of them should load torch, whose import costs seconds per call and per job (measured: a dry run of
the demo went from 4.5 s to 1.2 s when planning stopped importing it)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "diffusers", "transformers")
# The scripts of the rules that run a network (GPU rules, and the login-node checks that open a checkpoint).
NETWORK_SCRIPTS = {
    "adapt",
    "attack",
    "check_model",
    "evaluate",
    "features",
    "fetch_model",
    "generate",
    "index_dataset",
    "prefetch_weights",
    "probe",
    "tiny_pipeline",
    "train",
}


def loaded_heavy(import_lines: str) -> list[str]:
    """The heavy packages that running `import_lines` in a fresh interpreter loads."""
    code = f"import sys\n{import_lines}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


def top_level_imports(path: Path) -> str:
    tree = ast.parse(path.read_text())
    return "\n".join(ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))


def test_planning_the_dag_loads_no_torch():
    imports = re.findall(
        r"^(?:from imagenet_sd\S* import .+|import imagenet_sd\S*)$", (REPO / "rules/common.smk").read_text(), re.M
    )
    assert len(imports) > 5, "rules/common.smk's imports of the package were not found"
    assert loaded_heavy("\n".join(imports)) == [], "planning the DAG (rules/common.smk's imports) loads these"


LIGHT = sorted(p.stem for p in (REPO / "workflow_scripts").glob("*.py") if p.stem not in NETWORK_SCRIPTS)


@pytest.mark.parametrize("script", LIGHT)
def test_a_light_rule_s_script_loads_no_torch(script):
    assert loaded_heavy(top_level_imports(REPO / "workflow_scripts" / f"{script}.py")) == []


def test_the_network_scripts_exist():
    """A renamed script would fall into LIGHT silently."""
    assert {p.stem for p in (REPO / "workflow_scripts").glob("*.py")} >= NETWORK_SCRIPTS
