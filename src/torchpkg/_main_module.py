"""Objects defined in ``__main__`` (a script, ``python -c``, a notebook cell), packaged from source.

A pickle can name ``__main__.Model``, but the loading process has a ``__main__``
of its own. So each top-level object of ``__main__`` that a pickle needs is
written from the statement that defined it (``_main_source``) into one packaged
module, :data:`MAIN_MODULE`, with what its code uses from ``__main__``: the
classes and functions defined there (recursively), the modules and names it
imported (as import statements) and literal constants. Pickles name
``MAIN_MODULE`` instead of ``__main__``.
"""

from __future__ import annotations

import ast
import heapq
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import FunctionType, ModuleType
from typing import Any

from torchpkg._main_source import MainSources, Statement, functions_of, is_lambda, names_used
from torchpkg.environment import Importer
from torchpkg.errors import ObjMismatchError, ObjNotFoundError, PackagingErrorReason, Problem

__all__ = ["MAIN_MODULE", "MainModule", "MainRenamer", "as_main", "names_main"]

MAIN_MODULE = "__torchpkg_main__"

_MAIN_BYTES = re.compile(rb"__main__")
_LITERALS = (int, float, complex, str, bytes, bool, type(None), list, tuple, dict, set)


def as_main(name: str) -> str:
    """A demangled name as the exporting process knew it: the packaged module's were
    ``__main__``'s (``__torchpkg_main__.MLP`` is ``__main__.MLP``)."""
    first, dot, rest = name.partition(".")
    return f"__main__{dot}{rest}" if first == MAIN_MODULE else name


def names_main(data: memoryview) -> bool:
    """Whether a pickle may name an object of ``__main__`` (a quick look, no scan)."""
    return _MAIN_BYTES.search(data) is not None


class MainRenamer(Importer):
    """``importer``, but objects of ``__main__`` are named as :data:`MAIN_MODULE`'s, and
    kept in ``found`` by qualified name.

    They are not looked up in ``__main__``: a class of a script that ``runpy`` ran (a
    test running an example) says ``__main__``, which is no longer that script.
    """

    def __init__(self, importer: Importer) -> None:
        self._importer = importer
        self.modules = importer.modules
        self.found: dict[str, Any] = {}

    def import_module(self, module_name: str) -> ModuleType:
        return self._importer.import_module(module_name)

    def get_name(self, obj: Any, name: str | None = None) -> tuple[str, str]:
        qualname = name or getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
        if getattr(obj, "__module__", None) != "__main__" or not isinstance(qualname, str):
            return self._importer.get_name(obj, name)
        if not all(part.isidentifier() for part in qualname.split(".")):
            # A lambda or an object defined in a function: the importer's error says so.
            return self._importer.get_name(obj, name)
        self.found[qualname] = obj
        return MAIN_MODULE, qualname


@dataclass(frozen=True)
class _Walk:
    """One pass over what a pickle needs from ``__main__``."""

    namespace: dict[str, Any]
    sources: MainSources
    problems: list[Problem]

    def position(self, name: str) -> int:
        """Where ``name`` was first bound in ``__main__`` (its globals keep that order)."""
        return list(self.namespace).index(name)


class MainModule:
    """The packaged module standing for ``__main__``; it grows with each pickle."""

    def __init__(self, importer: Importer) -> None:
        self._importer = importer
        self._statements: dict[str, Statement] = {}
        self._seen: set[str] = set()

    def add(self, objects: Mapping[str, Any]) -> list[Problem]:
        """Take in the objects of ``__main__`` a pickle names (by qualified name); what
        cannot be, as problems."""
        problems: list[Problem] = []
        for qualname, obj in objects.items():
            namespace = _namespace(obj)
            name = qualname.partition(".")[0]
            found = _lookup(namespace, qualname)
            if found is not obj:
                why = (
                    f"{qualname} is now another object: it was defined again after this one"
                    if found is not None
                    else f"its globals have no {qualname}"
                )
                problems.append(_no_source(name, why))
                continue
            walk = _Walk(namespace, MainSources(namespace), problems)
            self._bind(name, namespace[name], walk, user=None)
        return problems

    def source(self) -> str:
        ordered = _ordered(self._statements)
        head = ['"""What the objects of this package need from __main__ (written by torchpkg)."""']
        if any(statement.annotations_future for statement in ordered):
            head.append("from __future__ import annotations")
        # Imports and constants first (they need nothing), then definitions, as PEP 8 spaces them.
        first = [s.source for s in ordered if s.order[0] < 0]
        rest = [s.source.rstrip() for s in ordered if s.order[0] >= 0]
        parts = ["\n".join(head), "\n".join(first), *rest]
        return "\n\n\n".join(part for part in parts if part) + "\n"

    def _bind(self, name: str, value: Any, walk: _Walk, user: str | None) -> None:
        """Give ``name`` (which ``user`` uses) its statement, and follow what it uses."""
        # The packaged module has its own `__name__`, `__file__`, ...: copied, `__name__`
        # would make the classes defined after it claim `__main__` again.
        if name in self._seen or _is_dunder(name):
            return
        self._seen.add(name)
        if isinstance(value, ModuleType):
            self._first(name, _import_module(name, value.__name__), walk)
            return
        defined = _defined_in_main(value)
        if defined is not None:
            self._define(name, value, defined, walk)
            return
        literal = _literal(value)
        if literal is not None:
            self._first(name, f"{name} = {literal}", walk)
            return
        imported = self._importable(value)
        if imported is not None:
            self._first(name, _import_name(name, *imported), walk)
            return
        walk.problems.append(
            Problem(
                PackagingErrorReason.MAIN_GLOBAL_WITHOUT_SOURCE,
                f"__main__.{name}",
                f"a {type(value).__qualname__} that {_used_by(user)} uses: only imports, "
                "literal constants and the classes and functions defined in __main__ are "
                "packaged from source",
            )
        )

    def _define(self, name: str, value: Any, defined: type | FunctionType, walk: _Walk) -> None:
        """``name`` from the statement that made ``value`` (``defined``, or a decorator's
        wrapper of it)."""
        namespace = walk.namespace
        qualname = defined.__qualname__
        top = name if is_lambda(defined) else qualname.partition(".")[0]
        if top != name or namespace.get(top) is not value:
            # An alias (`Net = MLP`) or a nested class (`Inner = Outer.Inner`): the
            # statement that defines its outermost class, then the name bound to it.
            if top not in namespace or "<locals>" in qualname:
                walk.problems.append(_no_source(name, f"{qualname} is not a name in it"))
                return
            self._bind(top, namespace[top], walk, user=name)
            target = self._statements.get(top)
            if target is not None:
                order = (target.order[0], target.order[1], 1)
                self._statements[name] = Statement(f"{name} = {qualname}", order, frozenset({top}))
            return
        found = walk.sources.find(name, defined)
        if isinstance(found, str):
            walk.problems.append(_no_source(name, found))
            return
        self._statements[name] = found
        for used in names_used(found.source):
            if used in namespace:
                self._bind(used, namespace[used], walk, user=name)

    def _first(self, name: str, source: str, walk: _Walk) -> None:
        self._statements[name] = Statement(source, (-1, walk.position(name), 0))

    def _importable(self, value: Any) -> tuple[str, str] | None:
        """``(module, qualname)`` of an object an import statement gets back, else None."""
        if not isinstance(
            getattr(value, "__qualname__", None) or getattr(value, "__name__", None), str
        ):
            return None  # instances: importing by name is for classes, functions and the like
        try:
            module, qualname = self._importer.get_name(value)
        except (ObjNotFoundError, ObjMismatchError):
            return None
        if module == "__main__":
            return None
        return module, qualname


def _defined_in_main(value: Any) -> type | FunctionType | None:
    """The class or function a statement of ``__main__`` made ``value`` from, if any:
    a decorator may have wrapped it (``functools.cache``)."""
    if getattr(value, "__module__", None) != "__main__":
        return None
    while not isinstance(value, (type, FunctionType)):
        value = getattr(value, "__wrapped__", None)
        if value is None:
            return None
    return value


def _namespace(obj: Any) -> dict[str, Any]:
    """The globals ``obj``'s code runs with: ``__main__``'s, or a script's that runpy ran."""
    function = next(functions_of(_defined_in_main(obj)), None)
    return function.__globals__ if function is not None else vars(sys.modules["__main__"])


def _lookup(namespace: dict[str, Any], qualname: str) -> Any:
    """What ``qualname`` names in ``namespace`` (None: nothing)."""
    first, _, rest = qualname.partition(".")
    value = namespace.get(first)
    for part in rest.split(".") if rest else ():
        value = getattr(value, part, None)
    return value


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _literal(value: Any) -> str | None:
    """``repr(value)`` when it is a literal that reads back as ``value``."""
    if not _is_literal(value):
        return None
    text = repr(value)
    try:
        return text if ast.literal_eval(text) == value else None
    except (ValueError, SyntaxError, RecursionError):
        return None


def _is_literal(value: Any) -> bool:
    if type(value) not in _LITERALS:
        return False
    if isinstance(value, dict):
        return all(_is_literal(k) and _is_literal(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return all(_is_literal(item) for item in value)
    return True


def _import_module(name: str, module: str) -> str:
    return f"import {module}" if module == name else f"import {module} as {name}"


def _import_name(name: str, module: str, qualname: str) -> str:
    first, _, rest = qualname.partition(".")
    statement = f"from {module} import {first}" + ("" if first == name else f" as {name}")
    return statement + (f"\n{name} = {name}.{rest}" if rest else "")


def _used_by(user: str | None) -> str:
    return f"__main__.{user}" if user is not None else "a pickle"


def _no_source(name: str, why: str) -> Problem:
    return Problem(PackagingErrorReason.MAIN_WITHOUT_SOURCE, f"__main__.{name}", why)


def _ordered(statements: dict[str, Statement]) -> list[Statement]:
    """As ``__main__`` ran them, but each after the names it uses as it runs."""
    needs = {name: set(s.needs & statements.keys()) - {name} for name, s in statements.items()}
    users: dict[str, list[str]] = {}
    for name, needed in needs.items():
        for other in needed:
            users.setdefault(other, []).append(name)
    ready = [(statements[name].order, name) for name, needed in needs.items() if not needed]
    heapq.heapify(ready)
    done: dict[str, None] = {}
    while ready:
        _, name = heapq.heappop(ready)
        done[name] = None
        for user in users.get(name, []):
            needs[user].discard(name)
            if not needs[user]:
                heapq.heappush(ready, (statements[user].order, user))
    # Left in a cycle (a name defined again later): in the order they ran.
    rest = sorted(
        (name for name in statements if name not in done), key=lambda n: statements[n].order
    )
    return [statements[name] for name in [*done, *rest]]
