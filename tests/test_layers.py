"""The import graph of `pipelines/` and `dchag_cli/` has no circle and no import that runs
up the layers (docs/architecture.md draws them): a shared concept lives below all of its
users, so a newcomer knows where a new feature goes."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from dchag_cli.root import STAGES

ROOT = Path(__file__).resolve().parents[1]

# bottom first; a module may import its own layer and any layer below it
LAYERS: list[tuple[str, ...]] = [
    ("pipelines", "pipelines.errors", "pipelines.extras", "pipelines.notes",
     "pipelines.progress", "pipelines.fsops", "pipelines.locks", "pipelines.faults",
     "pipelines.provenance", "pipelines.model_header", "pipelines.guard",
     "pipelines.figures", "pipelines.limits"),
    ("pipelines.data",),
    ("pipelines.metrics",),
    ("pipelines.sample",),
    ("pipelines.model",),
    ("pipelines.parallel",),
    ("pipelines.run",),
    ("pipelines.train",),
    ("pipelines.eval",),
    ("pipelines.bench",),
    ("pipelines.plots",),
    ("pipelines.jobs",),
    ("dchag_cli",),
]


def _modules() -> dict[str, Path]:
    found = {}
    for top in ("pipelines", "dchag_cli"):
        for path in (ROOT / top).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports_a_stage_by_name(node: ast.AST) -> bool:
    """`importlib.import_module(f"dchag_cli.{module}")`: the registry's hidden edges."""
    if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
            and node.args and isinstance(node.args[0], ast.JoinedStr)):
        return False
    first = node.args[0].values[0]
    return isinstance(first, ast.Constant) and str(first.value).startswith("dchag_cli.")


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports anywhere in its body (inside functions
    too), plus the stages `dchag_cli.root` loads by name through importlib."""
    mods = _modules()
    edges: dict[str, set[str]] = defaultdict(set)
    stages = {f"dchag_cli.{module}" for module, _, _ in STAGES.values()}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            elif _imports_a_stage_by_name(node):
                targets = sorted(stages)
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges[name].add(target)
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> int:
    best, level = -1, -1
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and len(n) > best:
                best, level = len(n), i
    assert level >= 0, f"{module} is in no layer: add it to LAYERS and the architecture page"
    return level


def test_the_import_graph_has_no_circle():
    assert circles(import_graph()) == []


def test_no_import_runs_up_the_layers():
    upward = [f"{m} → {t}" for m, ts in import_graph().items() for t in ts
              if layer_of(t) > layer_of(m)]
    assert upward == []


def test_the_checks_see_what_they_are_for():
    """A circle through a function-level import, and the registry's importlib edges."""
    edges = import_graph()
    assert "dchag_cli.recipe" in edges["dchag_cli.root"]  # loaded through importlib
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("pipelines.run.load") > layer_of("pipelines.data.times")
    assert layer_of("pipelines.figures") == 0 < layer_of("pipelines.plots.era5")
