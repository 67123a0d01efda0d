"""The package graph of imagenet_sd follows the pipeline: a module imports the shared modules at the top, its
own stage and earlier stages only; the planners over all stages (imagenet_sd.planning) come after the stages,
ops after the planners, and inside planning a planner imports only the planners before it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "imagenet_sd"
# Top-level modules that every stage may import: they import no stage themselves.
SHARED = ("config", "paths", "seeds", "runtime", "progress")
# The order data flows in (the order rules/ runs them); planning reads every stage's checks and names to plan
# the whole run from the config; ops reads the plan of a whole run.
STAGES = ("prompts", "generate", "data", "quality", "train", "evaluate", "report")
LAYERS = ("shared", *STAGES, "planning", "ops")
# The planners in the order they may import each other (imagenet_sd/planning/__init__.py says what each plans).
PLANNERS = ("keys", "sheets", "adaptation", "clones", "quality", "models", "transfer", "outputs", "report")


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(path, package): path for path in sorted(package.rglob("*.py"))}


def imported(path: Path, known: set[str], top_level_only: bool = False) -> set[str]:
    """The imagenet_sd modules a file imports (`from pkg import module` counted as the module);
    `top_level_only`: only the imports that run when the module is imported (not those inside functions)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module in known:
            submodules = {f"{node.module}.{a.name}" for a in node.names} & known
            found |= submodules or {node.module}
    return found


def layer(module: str) -> str:
    """The layer of a module: its stage package, or what a top-level module is; an unknown one is named."""
    parts = module.split(".")[1:]
    if not parts:
        return "package"  # imagenet_sd/__init__.py
    if parts[0] in LAYERS:
        return parts[0]
    if parts[0] in SHARED:
        return "shared"
    raise AssertionError(f"{module} is in no layer: name it in SHARED or put it in a package of LAYERS")


def planner_rank(module: str) -> int | None:
    """A planner's place in PLANNERS (None for a module outside imagenet_sd.planning); an unknown one is named."""
    parts = module.split(".")[1:]
    if len(parts) < 2 or parts[0] != "planning":
        return None
    if parts[1] not in PLANNERS:
        raise AssertionError(f"{module} is not in PLANNERS: name it there, after the planners it imports")
    return PLANNERS.index(parts[1])


def against_the_flow(name: str, target: str) -> bool:
    """Whether `name` importing `target` goes upstream: a later layer, or a later planner inside planning."""
    if layer(target) == "package":
        return False
    own = LAYERS.index(layer(name)) if layer(name) != "package" else len(LAYERS)
    if LAYERS.index(layer(target)) != own:
        return LAYERS.index(layer(target)) > own
    ranks = planner_rank(name), planner_rank(target)
    return None not in ranks and ranks[1] > ranks[0]


def flow_violations(package: Path = PACKAGE) -> list[str]:
    found = modules(package)
    known = set(found)
    wrong = []
    for name, path in found.items():
        planner_rank(name)  # every planner has its place, imported or not
        for target in sorted(imported(path, known)):
            if against_the_flow(name, target):
                wrong.append(f"{name} ({layer(name)}) imports {target} ({layer(target)}), later in the flow")
    return wrong


def import_cycles(package: Path = PACKAGE) -> list[list[str]]:
    """Cycles among the imports that run at import time (depth-first search, each cycle reported once)."""
    found = modules(package)
    graph = {name: imported(path, set(found), top_level_only=True) - {name} for name, path in found.items()}
    graph = {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in graph.items()}
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_imports_flow_from_the_shared_modules_through_the_stages_in_order():
    assert flow_violations() == []


def test_there_is_no_import_cycle():
    assert import_cycles() == []


def test_every_stage_package_says_what_it_offers():
    for stage in (*STAGES, "planning", "ops"):
        init = PACKAGE / stage / "__init__.py"
        assert init.exists(), f"{stage} is not a package"
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init} has no docstring"
    top = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    assert top == set(SHARED), f"top-level modules outside SHARED: {top - set(SHARED)}"
    planners = {path.stem for path in (PACKAGE / "planning").glob("*.py")} - {"__init__"}
    assert planners == set(PLANNERS), f"planners not in PLANNERS: {planners ^ set(PLANNERS)}"


def write(root: Path, files: dict[str, str]) -> Path:
    """A package of the given modules (path -> source), an empty __init__.py in each of its folders."""
    for name, text in files.items():
        for folder in (root / name).relative_to(root).parents[:-1]:
            (root / folder).mkdir(parents=True, exist_ok=True)
            (root / folder / "__init__.py").touch()
        (root / name).write_text(text)
    return root / "imagenet_sd"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "from imagenet_sd.train.models import x\n",
            "imagenet_sd.generate.text2image (generate) imports imagenet_sd.train.models",
        ),
        (
            "from imagenet_sd.planning import clones\n",
            "imagenet_sd.generate.text2image (generate) imports imagenet_sd.planning.clones",
        ),
        (
            "from imagenet_sd.ops import status\n",
            "imagenet_sd.generate.text2image (generate) imports imagenet_sd.ops.status",
        ),
    ],
)
def test_an_import_against_the_flow_is_named(tmp_path, source, expected):
    package = write(
        tmp_path,
        {
            "imagenet_sd/planning/clones.py": "",
            "imagenet_sd/runtime.py": "",
            "imagenet_sd/generate/text2image.py": "from imagenet_sd.runtime import y\n" + source,
            "imagenet_sd/train/models.py": "from imagenet_sd.generate.text2image import z\n",
            "imagenet_sd/ops/status.py": "",
        },
    )
    wrong = flow_violations(package)
    assert len(wrong) == 1 and wrong[0].startswith(expected), wrong


def test_a_cycle_of_top_level_imports_is_found_and_one_inside_a_function_is_not(tmp_path):
    package = write(
        tmp_path,
        {
            "imagenet_sd/generate/a.py": "from imagenet_sd.generate.b import x\n",
            "imagenet_sd/generate/b.py": "def f():\n    from imagenet_sd.generate.a import y\n",
        },
    )
    assert import_cycles(package) == []
    (package / "generate/b.py").write_text("from imagenet_sd.generate import a\n")
    assert import_cycles(package) == [["imagenet_sd.generate.a", "imagenet_sd.generate.b", "imagenet_sd.generate.a"]]


def test_a_planner_importing_a_later_planner_is_named(tmp_path):
    package = write(
        tmp_path,
        {
            "imagenet_sd/planning/keys.py": "",
            "imagenet_sd/planning/clones.py": "from imagenet_sd.planning.keys import short_hash\n",
            "imagenet_sd/planning/models.py": "from imagenet_sd.planning import clones\n",
        },
    )
    assert flow_violations(package) == []
    (package / "planning/keys.py").write_text("def f():\n    from imagenet_sd.planning.models import Model\n")
    assert flow_violations(package) == [
        "imagenet_sd.planning.keys (planning) imports imagenet_sd.planning.models (planning), later in the flow"
    ]
    (package / "planning/extra.py").write_text("")
    with pytest.raises(AssertionError, match="imagenet_sd.planning.extra is not in PLANNERS"):
        flow_violations(package)
