"""Objects defined in ``__main__`` (a script, ``python -c``, a notebook cell), packaged from source.

A pickle can name ``__main__.Model``, but the loading process has a ``__main__``
of its own. So each top-level object of ``__main__`` that a pickle needs is
read back from where the interpreter ran it (the script's file, the ``-c``
text, IPython's cells), checked against the running object's bytecode, and
written into one packaged module, :data:`MAIN_MODULE`, with what its code uses
from ``__main__``: the classes and functions defined there (recursively), the
modules and names it imported (as import statements) and literal constants.
Pickles name ``MAIN_MODULE`` instead of ``__main__``.
"""

from __future__ import annotations

import ast
import heapq
import linecache
import re
import symtable
import sys
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import CodeType, FunctionType, ModuleType
from typing import Any

from torchpkg.environment import Importer
from torchpkg.errors import ObjMismatchError, ObjNotFoundError, PackagingErrorReason, Problem

__all__ = ["MAIN_MODULE", "MainModule", "MainRenamer", "names_main"]

MAIN_MODULE = "__torchpkg_main__"

_MAIN_BYTES = re.compile(rb"__main__")
_IPYTHON_CELL = re.compile(r"<ipython-input-(\d+)-|<IPython cell (\d+)>")
_LITERALS = (int, float, complex, str, bytes, bool, type(None), list, tuple, dict, set)
_DEFINITIONS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef, ast.Assign)


def names_main(data: memoryview) -> bool:
    """Whether a pickle may name an object of ``__main__`` (a quick look, no scan)."""
    return _MAIN_BYTES.search(data) is not None


class MainRenamer(Importer):
    """``importer``, but objects of ``__main__`` are named as :data:`MAIN_MODULE`'s."""

    def __init__(self, importer: Importer) -> None:
        self._importer = importer
        self.modules = importer.modules

    def import_module(self, module_name: str) -> ModuleType:
        return self._importer.import_module(module_name)

    def get_name(self, obj: Any, name: str | None = None) -> tuple[str, str]:
        module, name = self._importer.get_name(obj, name)
        return (MAIN_MODULE if module == "__main__" else module), name


@dataclass(frozen=True)
class _Statement:
    """One top-level statement of the packaged module."""

    source: str
    order: tuple[int, int, int]  # where __main__ ran it: (file, line, after the line)
    needs: frozenset[str] = frozenset()  # names of __main__ it uses as it runs (not when called)
    annotations_future: bool = False


@dataclass(frozen=True)
class _Walk:
    """One pass over what a pickle needs from ``__main__``."""

    namespace: dict[str, Any]
    sources: _Sources
    problems: list[Problem]

    def position(self, name: str) -> int:
        """Where ``name`` was first bound in ``__main__`` (its globals keep that order)."""
        return list(self.namespace).index(name)


class MainModule:
    """The packaged module standing for ``__main__``; it grows with each pickle."""

    def __init__(self, importer: Importer) -> None:
        self._importer = importer
        self._statements: dict[str, _Statement] = {}
        self._seen: set[str] = set()

    def add(self, qualnames: Iterable[str]) -> list[Problem]:
        """Take in the objects of ``__main__`` a pickle names; what cannot be, as problems."""
        main = sys.modules["__main__"]
        walk = _Walk(vars(main), _Sources(main), [])
        for qualname in qualnames:
            name = qualname.partition(".")[0]
            if name not in walk.namespace:
                walk.problems.append(_no_source(name, "__main__ has no such name any more"))
                continue
            self._bind(name, walk.namespace[name], walk, user=None)
        return walk.problems

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
        if name in self._seen:
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
        top = name if _is_lambda(defined) else qualname.partition(".")[0]
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
                self._statements[name] = _Statement(f"{name} = {qualname}", order, frozenset({top}))
            return
        found = walk.sources.find(name, defined)
        if isinstance(found, str):
            walk.problems.append(_no_source(name, found))
            return
        self._statements[name] = found
        for used in _names_used(found.source):
            if used in namespace:
                self._bind(used, namespace[used], walk, user=name)

    def _first(self, name: str, source: str, walk: _Walk) -> None:
        self._statements[name] = _Statement(source, (-1, walk.position(name), 0))

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


class _Sources:
    """Where the statements ``__main__`` ran can be read back."""

    def __init__(self, main: ModuleType) -> None:
        self._main = main
        self._trees: dict[str, ast.Module | None] = {}
        self._ranks: dict[str, int] = {}
        cells = vars(main).get("_ih")  # IPython's list of the cells it ran
        self._cells = [c for c in cells if isinstance(c, str)] if isinstance(cells, list) else []

    def find(self, name: str, value: type | FunctionType) -> _Statement | str:
        """The statement that defined ``value`` as ``name``, or why there is none."""
        why = "no source for it: was it made by exec() or eval()?"
        for filename in self._candidates(value):
            text = self._text(filename)
            tree = self._tree(filename, text)
            if text is None or tree is None:
                continue
            nodes = [node for node in _definitions(tree.body) if _binds(node, name, value)]
            if not nodes:
                why = (
                    f"no class statement in {filename} defines it: was it made at run time "
                    "(type(), exec())?"
                    if isinstance(value, type)
                    else f"no def statement in {filename} defines it"
                )
                continue
            node = _pick(nodes, value, filename)
            source = _segment(text, node)
            if not _matches(text, filename, value):
                return (
                    f"its source in {filename} (line {node.lineno}) is not what is running: "
                    "the file changed after it ran"
                )
            annotations = any(_is_annotations_future(statement) for statement in tree.body)
            order = (self._rank(filename), node.lineno, 0)
            needs = frozenset(_names_used(source, at_definition=True))
            return _Statement(source, order, needs, annotations)
        return why

    def _candidates(self, value: type | FunctionType) -> list[str]:
        files = [code.co_filename for _, code in _live_code(value)]
        if isinstance(value, type):
            # A class without methods names no file: where __main__'s statements are.
            main_file = getattr(self._main, "__file__", None)
            if isinstance(main_file, str):
                files.append(main_file)
            if _dash_c_source() is not None:
                files.append("<string>")
            files.extend(f"<IPython cell {n}>" for n in reversed(range(len(self._cells))))
        return list(dict.fromkeys(files))

    def _text(self, filename: str) -> str | None:
        cell = _IPYTHON_CELL.fullmatch(filename)
        if cell is not None and cell.group(2) is not None:
            return self._cells[int(cell.group(2))]
        if filename == "<string>":
            return _dash_c_source()
        return "".join(linecache.getlines(filename, vars(self._main))) or None

    def _tree(self, filename: str, text: str | None) -> ast.Module | None:
        if filename not in self._trees:
            try:
                self._trees[filename] = ast.parse(text) if text is not None else None
            except SyntaxError:
                self._trees[filename] = None
        return self._trees[filename]

    def _rank(self, filename: str) -> int:
        """Cells in the order IPython ran them; other files in the order they were met."""
        cell = _IPYTHON_CELL.match(filename)
        if cell is not None:
            return int(cell.group(1) or cell.group(2))
        return self._ranks.setdefault(filename, 1_000_000 + len(self._ranks))


def _dash_c_source() -> str | None:
    """The program given with ``python -c``: the interpreter keeps it only in its argv."""
    argv = getattr(sys, "orig_argv", [])
    if sys.argv[:1] != ["-c"] or "-c" not in argv[:-1]:
        return None
    return str(argv[argv.index("-c") + 1])


def _definitions(nodes: Iterable[ast.AST]) -> Iterator[ast.stmt]:
    """The module-level definitions, those under ``if``/``try``/``with`` too."""
    for node in nodes:
        if isinstance(node, _DEFINITIONS):
            yield node
        elif isinstance(node, (ast.stmt, ast.excepthandler)):
            yield from _definitions(ast.iter_child_nodes(node))


def _binds(node: ast.stmt, name: str, value: type | FunctionType) -> bool:
    if isinstance(value, type):
        return isinstance(node, ast.ClassDef) and node.name == name
    if _is_lambda(value):
        return (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Lambda)
            and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
        )
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name


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


def _is_lambda(value: type | FunctionType) -> bool:
    return isinstance(value, FunctionType) and value.__name__ == "<lambda>"


def _start(node: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(decorator.lineno for decorator in decorators)])


def _pick(nodes: list[ast.stmt], value: type | FunctionType, filename: str) -> ast.stmt:
    """The statement that ran last before the object's code: a name may be defined twice."""
    lines = [code.co_firstlineno for _, code in _live_code(value) if code.co_filename == filename]
    for node in reversed(nodes):
        end = node.end_lineno or node.lineno
        if any(_start(node) <= line <= end for line in lines):
            return node
    return nodes[-1]


def _segment(text: str, node: ast.stmt) -> str:
    if isinstance(node, ast.Assign):
        return ast.get_source_segment(text, node) or ""
    lines = text.splitlines(keepends=True)[_start(node) - 1 : node.end_lineno]
    return textwrap.dedent("".join(lines))


def _matches(text: str, filename: str, value: type | FunctionType) -> bool:
    """Whether the text ``filename`` holds now compiles to the bytecode the object runs.

    The whole text, as the interpreter compiled it: the bytecode of a function
    depends on the module's imports. Only code from that file is compared: a
    dataclass's ``__init__`` was made from text of its own, and a decorator's
    wrapper is followed to the function it wraps.
    """
    compiled = {
        (path, code.co_firstlineno): code
        for path, code in _compiled(compile(text, filename, "exec", dont_inherit=True))
    }
    return all(
        (path, code.co_firstlineno) in compiled
        and _same_code(code, compiled[path, code.co_firstlineno])
        for path, code in _live_code(value)
        if code.co_filename == filename
    )


def _same_code(a: CodeType, b: CodeType) -> bool:
    def constants(code: CodeType) -> tuple[object, ...]:
        return tuple(c for c in code.co_consts if not isinstance(c, CodeType))

    return (a.co_code, a.co_names, constants(a)) == (b.co_code, b.co_names, constants(b))


def _compiled(code: CodeType, prefix: str = "") -> Iterator[tuple[str, CodeType]]:
    """Each code object under ``code`` by its qualified name (3.10 has no ``co_qualname``)."""
    for const in code.co_consts:
        if isinstance(const, CodeType):
            path = prefix + const.co_name
            yield path, const
            yield from _compiled(const, path + ".")


def _live_code(value: Any) -> Iterator[tuple[str, CodeType]]:
    """The code of a function, or of a class's methods (its nested classes' too)."""
    if isinstance(value, FunctionType):
        yield value.__qualname__, _unwrapped(value).__code__
        return
    if not isinstance(value, type):
        return
    for member in vars(value).values():
        if isinstance(member, type) and member.__qualname__.startswith(value.__qualname__ + "."):
            yield from _live_code(member)
        for function in _functions(member):
            yield function.__qualname__, _unwrapped(function).__code__


def _functions(member: Any) -> list[FunctionType]:
    """The functions a class attribute holds: methods, static and class methods, properties."""
    if isinstance(member, (staticmethod, classmethod)):
        member = member.__func__
    if isinstance(member, property):
        return [f for f in (member.fget, member.fset, member.fdel) if isinstance(f, FunctionType)]
    return [member] if isinstance(member, FunctionType) else []


def _unwrapped(function: FunctionType) -> FunctionType:
    wrapped = getattr(function, "__wrapped__", None)
    return _unwrapped(wrapped) if isinstance(wrapped, FunctionType) else function


def _names_used(source: str, at_definition: bool = False) -> list[str]:
    """The global names ``source`` uses; ``at_definition``: only those it uses as it runs
    (decorators, bases, class bodies, defaults), not those its functions use when called."""
    names: dict[str, None] = {}

    def walk(table: symtable.SymbolTable, running: bool) -> None:
        if running or not at_definition:
            for symbol in table.get_symbols():
                if symbol.is_referenced() and symbol.is_global():
                    names[symbol.get_name()] = None
        for child in table.get_children():
            walk(child, running and child.get_type() == "class")

    walk(symtable.symtable(source, "<main>", "exec"), running=True)
    return list(names)


def _is_annotations_future(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(alias.name == "annotations" for alias in node.names)
    )


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


def _ordered(statements: dict[str, _Statement]) -> list[_Statement]:
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
