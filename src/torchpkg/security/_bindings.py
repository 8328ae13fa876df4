"""How a packaged module's source binds its top-level names, read without running it.

A pickle may name ``pkg.mod.system`` where ``pkg/mod.py`` says ``from os import
system``: the name is in the package, the function is not. The scan reads the
module's source to see through such re-exports; the loader checks the object
it resolves instead (``_guard``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from torchpkg.security._rules import Binding

__all__ = ["top_level_bindings"]

Bound = tuple[Binding, tuple[str, str] | None]


def top_level_bindings(source: str | bytes, module: str, is_package: bool) -> dict[str, Bound]:
    """Each top-level name: how it is bound (the last binding in source order wins),
    and for an import, the ``(module, name)`` it stands for (``name`` is ``""`` for a
    module). Source that does not parse binds nothing."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    package = module if is_package else module.rpartition(".")[0]
    bindings: dict[str, Bound] = {}
    for statement in _top_level(tree.body):
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bindings[statement.name] = (Binding.DEFINED, None)
        elif isinstance(statement, ast.Import):
            for alias in statement.names:
                if alias.asname is not None:  # `import a.b as c` binds the submodule
                    bindings[alias.asname] = (Binding.IMPORTED, (alias.name, ""))
                else:  # `import a.b` binds `a`
                    top = alias.name.partition(".")[0]
                    bindings[top] = (Binding.IMPORTED, (top, ""))
        elif isinstance(statement, ast.ImportFrom):
            source_module = _absolute(statement.module or "", statement.level, package)
            for alias in statement.names:
                if alias.name != "*":
                    bound = alias.asname or alias.name
                    bindings[bound] = (Binding.IMPORTED, (source_module, alias.name))
        else:
            aliased = _alias(statement, bindings)
            for target in _assigned(statement):
                bindings[target] = aliased or (Binding.ASSIGNED, None)
    return bindings


def _alias(statement: ast.stmt, bindings: dict[str, Bound]) -> Bound | None:
    """``run = os.system``: another name for an imported global, seen through."""
    value = getattr(statement, "value", None)
    if not isinstance(statement, (ast.Assign, ast.AnnAssign)) or value is None:
        return None
    attributes: list[str] = []
    while isinstance(value, ast.Attribute):
        attributes.insert(0, value.attr)
        value = value.value
    if not isinstance(value, ast.Name):
        return None
    binding, target = bindings.get(value.id, (Binding.UNBOUND, None))
    if binding is not Binding.IMPORTED or target is None:
        return None
    module, name = target
    if not name and attributes:  # `import os` then `os.system`: os's attribute
        return Binding.IMPORTED, (module, ".".join(attributes))
    return Binding.IMPORTED, (module, ".".join([name, *attributes]) if name else "")


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run when the module does: into if/try/with/loops, not defs."""
    for statement in body:
        yield statement
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(statement, field, None)
            if isinstance(inner, list) and not isinstance(
                statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
            ):
                yield from _top_level(inner)
        for handler in getattr(statement, "handlers", ()):
            yield from _top_level(handler.body)


def _assigned(statement: ast.stmt) -> Iterator[str]:
    targets: list[ast.expr] = []
    if isinstance(statement, ast.Assign):
        targets = list(statement.targets)
    elif isinstance(statement, (ast.AnnAssign, ast.AugAssign)):
        targets = [statement.target]
    for target in targets:
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                yield node.id


def _absolute(name: str, level: int, package: str) -> str:
    if level == 0:
        return name
    parts = package.split(".") if package else []
    base = ".".join(parts[: len(parts) - (level - 1)]) if level - 1 <= len(parts) else ""
    return f"{base}.{name}" if base and name else base or name
