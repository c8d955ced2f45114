"""The shape of the fne package: small modules and functions, spaces own their specifics, no import cycles.

Read with `ast` only (nothing is imported), so a broken module fails here with its name. Each test lists
every offender, one per line, so a failure says exactly what to split or move.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fne"
SPACE_PACKAGE = PACKAGE / "genotopheno"  # the only place that may know which space it has
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
COMPARISONS = (ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is, ast.IsNot)


@cache
def modules() -> dict[str, tuple[Path, ast.Module]]:
    """Dotted module name -> (path, syntax tree) of every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = (path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return found


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"


# ---- sizes -------------------------------------------------------------------------------------------------
def test_no_module_is_over_400_lines():
    offenders = [f"{path.relative_to(PACKAGE.parent)}: {lines} lines"
                 for path, _ in modules().values()
                 if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not offenders, f"modules over {MAX_MODULE_LINES} lines (split by concept):\n" + "\n".join(offenders)


def test_no_function_is_over_60_lines():
    offenders = [f"{_where(path, node)} {node.name}: {node.end_lineno - node.lineno + 1} lines"
                 for path, tree in modules().values() for node in ast.walk(tree)
                 if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                 and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(offenders)


# ---- search-space special cases ------------------------------------------------------------------------------
def _names_a_space(node: ast.AST) -> bool:
    """`space`, `space_name`, `tables.space`, `space.name`: an expression holding a search space or its name."""
    if isinstance(node, ast.Name):
        return "space" in node.id.lower()
    if isinstance(node, ast.Attribute):
        return "space" in node.attr.lower() or (node.attr == "name" and _names_a_space(node.value))
    return False


def _is_text(node: ast.AST) -> bool:
    """A string literal, or a tuple/list/set holding one (`space in ("darts", "nb201")`)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    return isinstance(node, ast.Tuple | ast.List | ast.Set) and any(_is_text(e) for e in node.elts)


def _space_classes(node: ast.AST) -> Iterator[str]:
    """Concrete space classes named in isinstance's second argument (SearchSpace itself is the interface)."""
    for part in node.elts if isinstance(node, ast.Tuple) else [node]:
        name = part.id if isinstance(part, ast.Name) else part.attr if isinstance(part, ast.Attribute) else ""
        if name.endswith("Space") and name != "SearchSpace":
            yield name


def _special_cases(tree: ast.Module) -> Iterator[tuple[ast.AST, str]]:
    for node in sorted(ast.walk(tree), key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance" \
                and len(node.args) == 2:
            for name in _space_classes(node.args[1]):
                yield node, f"isinstance(..., {name})"
        elif isinstance(node, ast.Compare) and any(isinstance(op, COMPARISONS) for op in node.ops):
            operands = [node.left, *node.comparators]
            if any(map(_names_a_space, operands)) and any(map(_is_text, operands)):
                yield node, ast.unparse(node)


def test_no_search_space_special_cases_outside_the_space_modules():
    offenders = [f"{_where(path, node)}: {text}"
                 for path, tree in modules().values() if not path.is_relative_to(SPACE_PACKAGE)
                 for node, text in _special_cases(tree)]
    assert not offenders, ("space-specific code outside fne/genotopheno (ask the space through a SearchSpace hook "
                           "instead):\n" + "\n".join(offenders))


def test_the_special_case_finder_finds_them():
    found = [text for _, text in _special_cases(ast.parse(
        "isinstance(space, DartsSpace)\nisinstance(s, (int, NB201Space))\nisinstance(s, SearchSpace)\n"
        "space.name == 'nb201'\nif tables.space == 'darts': pass\nspace not in (None, 'darts')\n"
        "space_name != 'x'\nname == 'darts'\nspace == other\n"))]
    assert found == ["isinstance(..., DartsSpace)", "isinstance(..., NB201Space)", "space.name == 'nb201'",
                     "tables.space == 'darts'", "space not in (None, 'darts')", "space_name != 'x'"]


# ---- import cycles -----------------------------------------------------------------------------------------
def _imported_modules(name: str, tree: ast.Module) -> Iterator[tuple[str, ast.AST]]:
    """fne modules this module imports anywhere (function-local imports included), with the import node."""
    known = modules()
    package = name if modules()[name][0].name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: strip level - 1 packages off this module's package
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            # `from fne.genotopheno import nb201` imports the submodule nb201, not only the package.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        resolved = []
        for target in targets:
            while target and target not in known:  # `import fne.x.y` of a name inside a module
                target = target.rpartition(".")[0]
            resolved.append(target)
        for target in dict.fromkeys(resolved):  # once per import statement
            if target and target != name:
                yield target, node


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_no_import_cycles_among_fne_modules():
    edges = {name: list(_imported_modules(name, tree)) for name, (_, tree) in modules().items()}
    graph = {name: {target for target, _ in imports} for name, imports in edges.items()}
    offenders = []
    for component in _cycles(graph):
        members = set(component)
        lines = [f"  {_where(modules()[name][0], node)} {name} imports {target}"
                 for name in component for target, node in edges[name] if target in members]
        offenders.append("cycle among " + ", ".join(component) + ":\n" + "\n".join(lines))
    assert not offenders, "import cycles (function-local imports count too):\n" + "\n".join(offenders)


def test_the_cycle_finder_finds_them():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
