"""The shape of the package: layers, no import circles, short functions and modules.

The package reads as the algorithm (docs/design.md, "Layout"): the runtime
settings (config) -> math on one chunk (kernels) -> what was observed (data) -> the public model -> the
selection (imputation, background) -> executors -> the EM fit -> estimators
-> tools. A module may import from its own layer and the layers below it,
never from a layer above, and no chain of imports (including imports inside
functions) may lead back to where it started.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pygmmis_ng"
NAME = PACKAGE.name

#: the layers, lowest first; a module's layer is its subpackage (or its top-level name)
LAYERS = ("config", "kernels", "data", "model", "selection", "execution", "fitting", "estimators", "tools")
#: top-level modules and the layer each belongs to; the package's __init__/__main__ may import anything
TOP_LEVEL = {"config": "config", "model": "model", "model_checks": "model", "model_files": "model",
             "conditioning": "model"}
ENTRY_POINTS = {NAME, f"{NAME}.__main__"}

#: the sub-layers of ``fitting``, lowest first; the modules directly in ``fitting/`` (the entry
#: points ``fit``, ``partial_fit``, ``cv_fit``/``stack``) sit above them all
FITTING_SUBLAYERS = ("problem", "em", "online", "starts", "setup")

MAX_FUNCTION_LINES = 120      # lines of code, docstring, comments and blank lines aside
MAX_MODULE_LINES = 400        # lines of the file
MAX_FLAT_MODULES = 8          # modules directly in pygmmis_ng/ (besides __init__ and __main__)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The package modules an import statement of ``module`` loads (submodules where named)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == NAME]
    if node.level:
        is_pkg = MODULES[module].name == "__init__.py"
        base = module.split(".")
        if not is_pkg:
            base = base[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != NAME:
        return []
    found = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        found.append(sub if sub in MODULES else target)
    return found


def _imports(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.update(m for m in _resolve(module, node) if m != module)
    return out


GRAPH = {m: _imports(m) for m in MODULES}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if module in ENTRY_POINTS:
        return None
    if parts[1] in TOP_LEVEL and len(parts) == 2:
        return TOP_LEVEL[parts[1]]
    return parts[1] if parts[1] in LAYERS else "unknown"


def _sublayer(module: str) -> int | None:
    """Rank of a ``fitting`` module's sub-layer (the entry modules: above all), else None."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] != "fitting":
        return None
    if len(parts) >= 4 and parts[2] in FITTING_SUBLAYERS:
        return FITTING_SUBLAYERS.index(parts[2])
    if len(parts) == 3 and parts[2] in FITTING_SUBLAYERS:      # a sub-layer's __init__
        return FITTING_SUBLAYERS.index(parts[2])
    return len(FITTING_SUBLAYERS)


def test_fitting_sub_layers_import_downwards_only():
    bad = []
    for module, targets in GRAPH.items():
        here = _sublayer(module)
        if here is None:
            continue
        for target in targets:
            there = _sublayer(target)
            if there is not None and there > here:
                bad.append(f"{module} imports {target}")
    assert not bad, "imports against the sub-layers of fitting:\n" + "\n".join(bad)


def test_every_fitting_module_is_in_a_sub_layer():
    entry = {m for m in MODULES if _sublayer(m) == len(FITTING_SUBLAYERS)}
    assert entry == {f"{NAME}.fitting", f"{NAME}.fitting.fitter", f"{NAME}.fitting.partial",
                     f"{NAME}.fitting.stacking"}, sorted(entry)


def test_the_sub_layer_checker_sees_a_wrong_import():
    assert _sublayer(f"{NAME}.fitting.em.estep") < _sublayer(f"{NAME}.fitting.setup.checks")
    assert _sublayer(f"{NAME}.fitting.problem") == 0
    assert _sublayer(f"{NAME}.kernels.fused") is None


def test_starts_are_seeded_run_and_reported_in_one_place():
    """Full-batch and online EM share one driver: only it draws the starts' seeds (and the
    fit's sampler entropy is the only other draw of a fit's stream), and only the end of a
    fit issues the ConvergenceWarning of a fit."""
    fitting = [m for m in MODULES if m.startswith(f"{NAME}.fitting.")]
    draws = {m for m in fitting if "2**62" in MODULES[m].read_text()}     # seed draws
    assert draws == {f"{NAME}.fitting.starts.driver", f"{NAME}.fitting.setup.prepare",
                     f"{NAME}.fitting.stacking"}, sorted(draws)
    warns = {m for m in fitting if "ConvergenceWarning, stacklevel" in MODULES[m].read_text()}
    assert warns == {f"{NAME}.fitting.starts.finish"}, sorted(warns)
    runners = [m for m in fitting if "def complete(self" in MODULES[m].read_text()]
    assert sorted(runners) == [f"{NAME}.fitting.em.runner", f"{NAME}.fitting.online.runner",
                               f"{NAME}.fitting.problem.problem"]       # two runners, one protocol


def test_every_module_has_a_layer():
    unknown = [m for m in MODULES if _layer(m) == "unknown"]
    assert not unknown, f"modules outside the layers {LAYERS}: {unknown}"


def test_the_graph_sees_the_imports():
    # guards the checker itself: known edges must be found
    assert f"{NAME}.kernels.fused" in GRAPH[f"{NAME}.kernels.dense"]
    assert f"{NAME}.data.observed" in GRAPH[f"{NAME}.model"]
    assert f"{NAME}.fitting.fitter" in GRAPH[f"{NAME}.estimators.mixture"]
    assert f"{NAME}.fitting.em.estep" in GRAPH[f"{NAME}.fitting.em.em_loop"]


def test_lower_layers_never_import_higher_ones():
    rank = {name: i for i, name in enumerate(LAYERS)}
    bad = []
    for module, targets in GRAPH.items():
        layer = _layer(module)
        if layer is None:
            continue
        for target in targets:
            t_layer = _layer(target)
            if t_layer is not None and rank[t_layer] > rank[layer]:
                bad.append(f"{module} ({layer}) imports {target} ({t_layer})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


@pytest.mark.parametrize("layer, forbidden", [
    ("kernels", ("fitting", "execution", "estimators", "selection", "data", "model", "tools")),
    ("model", ("fitting", "execution", "estimators", "tools")),
])
def test_named_rules(layer, forbidden):
    bad = [(m, t) for m, targets in GRAPH.items() if _layer(m) == layer
           for t in targets if _layer(t) in forbidden]
    assert not bad, bad


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_circles():
    # a subpackage's __init__ is a module like any other: importing a package runs it
    cycle = _find_cycle(GRAPH)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_cycle_finder_finds_cycles():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def _code_lines(node: ast.AST, source_lines: list[str]) -> int:
    """Lines of code of a function: docstring, comment-only and blank lines aside."""
    body = node.body
    start = body[0].lineno
    if isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        start = body[0].end_lineno + 1
    lines = source_lines[start - 1:node.end_lineno]
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


def _functions():
    for module, path in MODULES.items():
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield module, node, _code_lines(node, lines)


def test_no_long_functions():
    long = [f"{m}.{node.name}: {n} lines" for m, node, n in _functions() if n > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines of code: {long}"


def test_no_long_modules():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_few_flat_modules():
    flat = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(flat) <= MAX_FLAT_MODULES, flat


def report() -> str:
    """The longest function and the largest module (for the notes)."""
    m, node, n = max(_functions(), key=lambda t: t[2])
    big = max(MODULES, key=lambda mod: len(MODULES[mod].read_text().splitlines()))
    return (f"longest function {m}.{node.name}: {n} lines of code; largest module {big}: "
            f"{len(MODULES[big].read_text().splitlines())} lines")


if __name__ == "__main__":
    print(report())
