"""Reading back the statement that defined an object of ``__main__``.

The interpreter keeps no source for ``__main__``, only where its code came
from: a script's file, the ``python -c`` text (in ``sys.orig_argv``), IPython's
cells (in ``linecache`` and its history). The statement found is compiled
again and its bytecode compared with the running object's, so an edited file
is an error, never other code.
"""

from __future__ import annotations

import ast
import linecache
import re
import symtable
import sys
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import CodeType, FunctionType
from typing import Any

__all__ = ["MainSources", "Statement", "functions_of", "is_lambda", "names_used"]

_IPYTHON_CELL = re.compile(r"<ipython-input-(\d+)-|<IPython cell (\d+)>")
_DEFINITIONS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef, ast.Assign)


@dataclass(frozen=True)
class Statement:
    """One top-level statement of the packaged module."""

    source: str
    order: tuple[int, int, int]  # where __main__ ran it: (file, line, after the line)
    needs: frozenset[str] = frozenset()  # names of __main__ it uses as it runs (not when called)
    annotations_future: bool = False


class MainSources:
    """Where the statements ``__main__`` ran can be read back."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self._namespace = namespace
        self._trees: dict[str, ast.Module | None] = {}
        self._ranks: dict[str, int] = {}
        cells = namespace.get("_ih")  # IPython's list of the cells it ran
        self._cells = [c for c in cells if isinstance(c, str)] if isinstance(cells, list) else []

    def find(self, name: str, value: type | FunctionType) -> Statement | str:
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
            needs = frozenset(names_used(source, at_definition=True))
            return Statement(source, order, needs, annotations)
        return why

    def _candidates(self, value: type | FunctionType) -> list[str]:
        files = [code.co_filename for _, code in _live_code(value)]
        if isinstance(value, type):
            # A class without methods names no file: where __main__'s statements are.
            main_file = self._namespace.get("__file__")
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
        return "".join(linecache.getlines(filename, self._namespace)) or None

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
    if is_lambda(value):
        return (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Lambda)
            and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
        )
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name


def is_lambda(value: type | FunctionType) -> bool:
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


def functions_of(value: Any) -> Iterator[FunctionType]:
    """A function, or the methods written in a class (its nested classes' too): a
    decorator's wrapper is followed to the function it wraps."""
    if isinstance(value, FunctionType):
        yield _unwrapped(value)
        return
    if not isinstance(value, type):
        return
    for member in vars(value).values():
        if isinstance(member, type) and member.__qualname__.startswith(value.__qualname__ + "."):
            yield from functions_of(member)
        # Not what another module's code put on the class (3.13's dataclasses add their
        # own __replace__): that was not written here and runs with its own globals.
        for function in map(_unwrapped, _functions(member)):
            if function.__module__ == value.__module__:
                yield function


def _live_code(value: Any) -> Iterator[tuple[str, CodeType]]:
    return ((function.__qualname__, function.__code__) for function in functions_of(value))


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


def names_used(source: str, at_definition: bool = False) -> list[str]:
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
