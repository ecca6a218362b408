"""The package's layers: data flows one way, and no module imports itself round a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "promptrecorder"

# The modules at the top of the package every layer may use (no layer of their own).
SHARED = {"_diagnostics", "_version", "errors", "settings", "credentials", "terminal_text"}
# What each layer may import from promptrecorder besides itself and SHARED.
ALLOWED = {
    "recording": set(),
    "llm": {"recording"},
    "export": {"recording"},
    "readback": {"recording"},
    "cli": {"recording", "llm", "export", "readback", "__init__"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, *, runtime_only: bool) -> set[str]:
    """Every promptrecorder module ``path`` imports (``runtime_only``: not under TYPE_CHECKING)."""
    found: set[str] = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if runtime_only and isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("promptrecorder"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], base])
            if base.startswith("promptrecorder"):
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    module_file = SRC.parent / (candidate.replace(".", "/") + ".py")
                    package_dir = SRC.parent / candidate.replace(".", "/")
                    found.add(candidate if module_file.exists() or package_dir.is_dir() else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1] if parts[1] in ALLOWED else "shared"


MODULES = {_module_name(path): path for path in SRC.rglob("*.py")}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_layer_imports_only_the_layers_below_it(module: str) -> None:
    """recording imports no other layer; llm, export and readback import recording only."""
    layer = _layer(module)
    if layer in ("__init__",) or module == "promptrecorder.__main__":
        return  # the public surface and `python -m` may name anything
    allowed = {layer, "shared"} | ALLOWED.get(layer, set())
    if layer == "shared":
        allowed = {"shared"}
    wrong = sorted(
        target for target in _imports(MODULES[module], runtime_only=False) if _layer(target) not in allowed
    )
    assert wrong == [], f"{module} ({layer}) imports {wrong}"


def test_no_module_imports_itself_round_a_circle() -> None:
    """The runtime import graph (TYPE_CHECKING imports aside) has no cycle."""
    graph = {
        module: {
            target for target in _imports(path, runtime_only=True) if target in MODULES and target != module
        }
        for module, path in MODULES.items()
    }
    for package in [m for m, p in MODULES.items() if p.name == "__init__.py"]:
        # a subpackage's __init__ is imported on the way to each of its modules, not a dependency
        for module in graph:
            graph[module].discard(package)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def walk(module: str, stack: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                walk(target, [*stack, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert cycles == []


def test_every_exception_is_defined_in_errors_and_drawn_in_its_docstring() -> None:
    """One exception tree: each class deriving from Exception lives in errors.py, under
    PromptRecorderError, and the module docstring draws it."""
    from promptrecorder import errors

    elsewhere = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ClassDef)
                and any(
                    isinstance(base, ast.Name) and base.id.endswith(("Error", "Exception"))
                    for base in node.bases
                )
                and module != "promptrecorder.errors"
            ):
                elsewhere.append(f"{module}.{node.name}")
    assert elsewhere == []
    classes = [
        value for value in vars(errors).values() if isinstance(value, type) and issubclass(value, Exception)
    ]
    assert all(issubclass(cls, errors.PromptRecorderError) for cls in classes)
    assert all(cls.__name__ in (errors.__doc__ or "") for cls in classes)


def test_each_module_logs_to_its_own_logger() -> None:
    """`logging.getLogger(__name__)` in every module that logs; only _diagnostics names the parent."""
    named = [
        module
        for module, path in MODULES.items()
        if "getLogger(" in (text := path.read_text(encoding="utf-8"))
        and "getLogger(__name__)" not in text
        and module != "promptrecorder._diagnostics"
    ]
    assert named == []
