"""The architecture, read from the code: each family of modules imports only from
itself and the families below it, the module graph has no cycle, no module is over 400
lines, and no function on the request path is over 60."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gateway"
# Lowest first. `appkeys` names its keys' types for the type checker only: at run time
# it imports nothing of ours, so any layer may read a key.
LAYERS: list[set[str]] = [
    {"__init__", "errors", "decoding", "appkeys"},
    {"prompts"},
    {"config"},
    {"providers"},
    {"telemetry"},
    {"store"},
    {"limits"},
    {"proxy"},
    {"evaluation", "shadow", "guards"},
    {"rollout"},
    {"admin"},
    {"console"},
    {"app", "reload"},
    {"cli", "__main__"},
]
# What runs per request: the proxy, the adapters and the recording of a request.
REQUEST_PATH = ("proxy", "providers", "telemetry/recorder.py")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, modules: dict[str, Path]) -> Iterator[str]:
    """The modules of ours imported at run time (not under `if TYPE_CHECKING:`)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                if child.module.split(".")[0] == "gateway":
                    for alias in child.names:
                        sub = f"{child.module}.{alias.name}"
                        yield sub if sub in modules else child.module
            elif isinstance(child, ast.Import):
                yield from (a.name for a in child.names if a.name.split(".")[0] == "gateway")
            stack.append(child)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {m for m in _imports(ast.parse(path.read_text()), modules) if m != name}
        for name, path in modules.items()
    }


def _layer(module: str) -> int:
    parts = module.split(".")
    family = parts[1] if len(parts) > 1 else "__init__"
    for index, families in enumerate(LAYERS):
        if family in families:
            return index
    raise AssertionError(f"{module}: its family `{family}` has no layer in LAYERS")


def test_every_module_belongs_to_a_layer() -> None:
    for module in _modules():
        _layer(module)


def test_no_family_imports_from_a_higher_one() -> None:
    upward = [
        f"{module} (layer {_layer(module)}) imports {imported} (layer {_layer(imported)})"
        for module, imports in sorted(_graph().items())
        for imported in sorted(imports)
        if _layer(imported) > _layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_the_module_graph_has_no_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[str] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == 1:
                cycles.append(" -> ".join([*path[path.index(imported) :], imported]))
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_no_module_is_over_400_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES


def test_no_function_on_the_request_path_is_over_60_lines() -> None:
    long = []
    for part in REQUEST_PATH:
        found = PACKAGE / part
        for path in sorted(found.rglob("*.py")) if found.is_dir() else [found]:
            if path.name.startswith("mock"):  # the mock provider is no request path
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    size = (node.end_lineno or node.lineno) - node.lineno + 1
                    if size > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert not long, "\n".join(long)
