"""The DARTS reference text of a genotype, read without `eval`.

NAS-Bench-301, NASLib and the DARTS code print a cell pair as

    Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=range(2, 6))

`parse_darts_text` reads exactly that form (lists or tuples of (op name, input) pairs; concat as a list, a
tuple or `range(a, b)`) with Python's `ast` and literal evaluation only, so a table of genotypes can never
run code. Anything else is a GenotypeError naming what was expected.
"""

from __future__ import annotations

import ast

from fne.errors import GenotypeError
from fne.genotopheno.genotype import DartsGenotype

FIELDS = DartsGenotype._fields
_FORM = "Genotype(normal=[(op, input), ...], normal_concat=[...], reduce=[...], reduce_concat=[...])"


def looks_like_darts_text(text: str) -> bool:
    """Whether `text` is written in the DARTS reference form (starts with `Genotype(`)."""
    return text.lstrip().startswith("Genotype(")


def parse_darts_text(text: str) -> DartsGenotype:
    """The DartsGenotype of a `Genotype(normal=..., ...)` text; GenotypeError naming the problem otherwise."""
    short = text if len(text) <= 80 else text[:77] + "..."
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as error:
        raise GenotypeError(f"bad DARTS genotype {short!r}: not valid Python syntax ({error.msg}); "
                            f"expected {_FORM}") from None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Genotype"
            and not call.args):
        raise GenotypeError(f"bad DARTS genotype {short!r}: expected {_FORM} with keyword arguments only")
    given = {keyword.arg: keyword.value for keyword in call.keywords}
    missing = [name for name in FIELDS if name not in given]
    unknown = [str(name) for name in given if name not in FIELDS]
    if missing or unknown:
        problem = f"missing {', '.join(missing)}" if missing else f"unknown field {', '.join(unknown)}"
        raise GenotypeError(f"bad DARTS genotype {short!r}: {problem}; expected {_FORM}")
    values = {}
    for name in FIELDS:
        reader = _edges if name in ("normal", "reduce") else _concat
        values[name] = reader(given[name], name, short)
    return DartsGenotype(**values)


def _literal(node: ast.expr, field: str, short: str) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise GenotypeError(f"bad DARTS genotype {short!r}: {field} is not a literal value") from None


def _edges(node: ast.expr, field: str, short: str) -> list[tuple[str, int]]:
    value = _literal(node, field, short)
    if not isinstance(value, list | tuple) or not all(
            isinstance(edge, list | tuple) and len(edge) == 2 and isinstance(edge[0], str)
            and isinstance(edge[1], int) and not isinstance(edge[1], bool) for edge in value):
        raise GenotypeError(f"bad DARTS genotype {short!r}: {field} must be a list of (op name, input index) "
                            f"pairs")
    return [(op, int(index)) for op, index in value]


def _concat(node: ast.expr, field: str, short: str) -> list[int]:
    # DARTS's own genotypes.py writes `range(2, 6)`: the one call allowed, with literal integer bounds.
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" \
            and not node.keywords and 1 <= len(node.args) <= 2:
        bounds = [_literal(arg, field, short) for arg in node.args]
        if all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
            return list(range(*bounds))
    value = _literal(node, field, short)
    if not isinstance(value, list | tuple) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                       for v in value):
        raise GenotypeError(f"bad DARTS genotype {short!r}: {field} must be a list of node indices or range(a, b)")
    return [int(v) for v in value]
