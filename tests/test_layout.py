"""The package's shape: its import graph has no cycle and no upward import, pyproject lists every package, no module
is over 400 lines. Read from the source with `ast`, so nothing is imported."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The sub-packages, lowest first: a module may import from its own layer and the ones before it. `conf` holds only
# the YAML configs. The top-level modules (`stance/config.py`, `experiment.py`, `comparison.py`, `train.py`,
# `cli.py`) and the package itself (`stance/__init__.py`) sit above them all.
LAYERS = ("conf", "data", "features", "models", "evaluation", "tracking", "artifact", "predict", "analysis")
TOP = len(LAYERS)
# Imports that run against the layers on purpose, each with its reason.
ALLOWED_UPWARD = {
    ("stance.tracking.pyfunc", "stance.artifact.pyfunc"): "the alias that the code file of models logged before "
    "stance.artifact imports StanceModel through (see its docstring)",
}
MAX_LINES = 400


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by its dotted name."""
    return {module_name(path, root): path for path in sorted((root / "stance").rglob("*.py"))}


def imports(root: Path = ROOT) -> list[tuple[str, str, int]]:
    """(importer, imported module, line) for every import of a stance module, at the top or inside functions."""
    found = modules(root)
    edges = []
    for name, path in found.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the importer's package, up `level - 1` packages
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                # `from stance.features import finetune` imports a module; `from stance.config import build` a name.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in found else base for a in node.names]
            else:
                continue
            edges += [(name, target, node.lineno) for target in dict.fromkeys(targets) if target.startswith("stance")]
    return [(a, b, line) for a, b, line in edges if a != b]


def layer(module: str) -> int:
    """The module's layer: its sub-package's place in `LAYERS`, or `TOP` for the top-level modules and `stance`."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else TOP


def upward_imports(root: Path = ROOT) -> list[str]:
    """`importer:line -> imported` for every import from a lower layer into a higher one, bar `ALLOWED_UPWARD`."""
    return [
        f"{a}:{line} -> {b}" for a, b, line in imports(root) if layer(b) > layer(a) and (a, b) not in ALLOWED_UPWARD
    ]


def cycles(root: Path = ROOT) -> list[list[str]]:
    """The import cycles: each strongly connected group of two or more modules (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {}
    for a, b, _ in imports(root):
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_import_cycle_and_no_upward_import():
    assert cycles() == [], "import cycles (break each: move the shared piece down a layer)"
    assert upward_imports() == [], f"imports against the layers {' < '.join(LAYERS)} < top-level modules"


def test_the_allowed_upward_imports_still_exist():
    """An exemption outlives its import only by mistake: remove it with the alias."""
    edges = {(a, b) for a, b, _ in imports()}
    assert set(ALLOWED_UPWARD) <= edges


def test_pyproject_lists_every_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    folders = {module_name(init, ROOT) for init in (ROOT / "stance").rglob("__init__.py")}
    assert set(config["packages"]) == folders | {"stance.conf"}
    assert config["package-dir"] == {"stance.conf": "conf"}


def test_no_module_is_over_400_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"split these modules by job (at most {MAX_LINES} lines each)"


def test_the_top_level_conf_is_the_one_copy_of_the_configs(tmp_path):
    """The checkout's `conf/` is the package `stance.conf` (an edit shows without reinstalling); none in `stance/`."""
    import subprocess
    import sys

    assert not (ROOT / "stance" / "conf").exists()
    (ROOT / "conf" / "classifier" / "_layout_probe.yaml").write_text("_target_: sklearn.svm.LinearSVC\nC: 0.5\n")
    try:  # a fresh process in another folder, as a user would run it after editing conf/
        probe = (
            "from stance.config import compose_config; print(compose_config('classifier=_layout_probe').classifier.C)"
        )
        done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    finally:
        (ROOT / "conf" / "classifier" / "_layout_probe.yaml").unlink()
    assert done.stdout.strip() == "0.5", done.stderr[-2000:]
