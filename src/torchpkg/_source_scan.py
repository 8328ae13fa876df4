"""Find the imports in a Python module's source, without running it.

The exporter follows these to decide which modules a package needs. One
``ast.parse`` and one visitor pass per module: the scan runs on thousands of
modules when a large library is interned.

What counts as an import is what would run: statements anywhere (function and
class bodies included), plus ``importlib.import_module`` / ``__import__`` calls
with constant arguments. Code under ``if TYPE_CHECKING:`` never runs, so it is
skipped; following it is what makes naive exports of big libraries explode.

The scan is in two steps so that its costly part can be cached by content:
``find_imports`` parses and depends on the text alone (relative imports stay
relative); ``resolve_imports`` makes them absolute for the importing module.
"""

from __future__ import annotations

import ast
import enum
import importlib.util
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from torchpkg._gc import paused_collection

__all__ = [
    "Anchor",
    "FoundImport",
    "ImportRef",
    "find_imports",
    "resolve_imports",
    "scan_imports",
]

# Handlers that swallow a failed import, so the import in the `try:` body is optional.
_IMPORT_ERROR_CATCHERS = frozenset(
    {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
)
_TYPING_MODULES = frozenset({"typing", "typing_extensions"})


@dataclass(frozen=True)
class ImportRef:
    """One import found in a module's source."""

    module: str
    """Absolute module name; relative imports are already resolved."""
    names: tuple[str, ...]
    """``from module import a, b`` gives ``("a", "b")``; ``()`` for ``import module``."""
    lineno: int
    """Line of the import statement or call."""
    optional: bool
    """Inside a ``try:`` body whose handlers catch a failed import."""
    dynamic: bool
    """Found from an ``importlib.import_module(...)`` or ``__import__(...)`` call."""


class Anchor(enum.Enum):
    """What a relative import is relative to, when the source does not name a package."""

    PACKAGE = "package"
    """The importing module's package (``from . import x``, ``__package__``)."""
    MODULE = "module"
    """The importing module itself (``import_module(".x", __name__)``)."""


@dataclass(frozen=True)
class FoundImport:
    """One import as the source writes it: the same for any name the module is given."""

    name: str
    """The module imported, without the leading dots of a relative import."""
    level: int
    """How many leading dots: 0 for an absolute import."""
    anchor: Anchor | str
    """What the dots start from: an ``Anchor``, or the package a constant names."""
    names: tuple[str, ...]
    lineno: int
    optional: bool
    dynamic: bool


def scan_imports(
    source: str | bytes, module_name: str, is_package: bool, filename: str = "<source>"
) -> list[ImportRef]:
    """Return the imports of ``source`` (the code of ``module_name``) in source order.

    Duplicates are kept. Raises ``SyntaxError`` for source that does not parse, and
    ``ValueError`` for a relative import that climbs above the top-level package.
    """
    return resolve_imports(find_imports(source, filename), module_name, is_package, filename)


def find_imports(source: str | bytes, filename: str = "<source>") -> tuple[FoundImport, ...]:
    """The imports of ``source`` in source order, relative ones unresolved.

    Raises ``SyntaxError`` for source that does not parse.
    """
    scanner = _Scanner()
    # Expressions can only import through these calls: without them in the text,
    # visiting statements alone finds everything, several times faster.
    text = source if isinstance(source, str) else source.decode("latin-1")
    scanner.skip_expressions = "import_module" not in text and "__import__" not in text
    scanner.visit(_parse(source, filename))
    return tuple(scanner.found)


def resolve_imports(
    found: Iterable[FoundImport], module_name: str, is_package: bool, filename: str = "<source>"
) -> list[ImportRef]:
    """``found`` (imports of ``module_name``'s source) with every module name absolute.

    Raises ``ValueError`` for a relative import that climbs above the top-level package.
    """
    package = module_name if is_package else module_name.rpartition(".")[0]
    anchors = {Anchor.PACKAGE: package, Anchor.MODULE: module_name}
    refs = []
    for ref in found:
        module = ref.name
        if ref.level:
            anchor = anchors[ref.anchor] if isinstance(ref.anchor, Anchor) else ref.anchor
            module = _absolute(ref, anchor, module_name, filename)
        refs.append(ImportRef(module, ref.names, ref.lineno, ref.optional, ref.dynamic))
    return refs


def _absolute(ref: FoundImport, anchor: str, module_name: str, filename: str) -> str:
    """Resolve ``ref``'s name, ``ref.level`` dots up from package ``anchor``."""
    level, name = ref.level, ref.name
    # Same rule as importlib: each dot past the first drops one component.
    parts = anchor.rsplit(".", level - 1) if anchor else []
    if len(parts) < level:
        start = f"package {anchor!r}" if anchor else "a top-level module"
        raise ValueError(
            f"{filename}:{ref.lineno}: relative import {'.' * level + name!r} in module "
            f"{module_name!r} goes {level} level(s) up from {start}, "
            "beyond the top-level package"
        )
    return f"{parts[0]}.{name}" if name else parts[0]


def _parse(source: str | bytes, filename: str) -> ast.Module:
    """``ast.parse``, with every kind of unreadable source reported as a ``SyntaxError``."""
    try:
        text = importlib.util.decode_source(source) if isinstance(source, bytes) else source
        with paused_collection():  # a syntax tree holds no cycles
            return ast.parse(text, filename=filename)
    except SyntaxError as exc:
        # A bad coding cookie, or NUL bytes, give errors that do not name the file.
        if exc.filename is None:
            exc.filename = filename
        raise
    except ValueError as exc:
        # Bytes invalid in the declared encoding; NUL bytes on older Pythons.
        raise SyntaxError(str(exc), (filename, None, None, None)) from exc


class _Scanner(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: list[FoundImport] = []
        # Enclosing `try:` bodies (in the current function) that catch a failed import.
        self._guarding_tries = 0
        # Names bound, so far in source order, to the objects we recognise.
        self._typing_names = set(_TYPING_MODULES)
        self._type_checking_names = {"TYPE_CHECKING"}
        self._importlib_names = {"importlib"}
        self._import_module_names: set[str] = set()

    skip_expressions = False

    def visit(self, node: ast.AST) -> None:
        if self.skip_expressions and isinstance(node, (ast.expr, ast.arguments)):
            return
        super().visit(node)

    # -- import statements ---------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, 0, Anchor.PACKAGE, (), node.lineno, dynamic=False)
            if alias.asname is not None:
                if alias.name in _TYPING_MODULES:
                    self._typing_names.add(alias.asname)
                elif alias.name == "importlib":
                    self._importlib_names.add(alias.asname)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        names = tuple(alias.name for alias in node.names if alias.name != "*")
        self._add(module, node.level, Anchor.PACKAGE, names, node.lineno, dynamic=False)
        if node.level:
            return  # a relative import never binds typing's or importlib's names
        for alias in node.names:
            bound = alias.asname or alias.name
            if module in _TYPING_MODULES and alias.name == "TYPE_CHECKING":
                self._type_checking_names.add(bound)
            elif module == "importlib" and alias.name == "import_module":
                self._import_module_names.add(bound)

    # -- dynamic imports -----------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "import_module"
            and isinstance(func.value, ast.Name)
            and func.value.id in self._importlib_names
        ) or (isinstance(func, ast.Name) and func.id in self._import_module_names):
            self._import_module_call(node)
        elif isinstance(func, ast.Name) and func.id == "__import__":
            self._dunder_import_call(node)
        self.generic_visit(node)

    def _import_module_call(self, node: ast.Call) -> None:
        args = _bind(node, ("name", "package"))
        if args is None:
            return
        name = _const_str(args.get("name"))
        if not name:
            return
        level = len(name) - len(name.lstrip("."))
        anchor = _anchor(args.get("package")) if level else Anchor.PACKAGE
        if anchor is None:
            return
        self._add(name[level:], level, anchor, (), node.lineno, dynamic=True)

    def _dunder_import_call(self, node: ast.Call) -> None:
        args = _bind(node, ("name", "globals", "locals", "fromlist", "level"))
        if args is None:
            return
        name = _const_str(args.get("name"))
        level_arg = args.get("level")
        level = 0 if level_arg is None else _const_int(level_arg)
        if name is None or level is None or level < 0 or (not name and not level):
            return
        fromlist = _const_fromlist(args.get("fromlist"))
        self._add(name, level, Anchor.PACKAGE, fromlist, node.lineno, dynamic=True)

    # -- control flow that decides whether an import runs, or may fail quietly -----

    def visit_If(self, node: ast.If) -> None:
        test, negated = node.test, False
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            test, negated = test.operand, True
        if not self._is_type_checking(test):
            self.generic_visit(node)
            return
        # Only the branch that runs when TYPE_CHECKING is False is real.
        for stmt in node.body if negated else node.orelse:
            self.visit(stmt)

    def _is_type_checking(self, test: ast.expr) -> bool:
        if isinstance(test, ast.Name):
            return test.id in self._type_checking_names
        return (
            isinstance(test, ast.Attribute)
            and test.attr == "TYPE_CHECKING"
            and isinstance(test.value, ast.Name)
            and test.value.id in self._typing_names
        )

    def visit_Try(self, node: ast.Try) -> None:
        self._visit_try(node.body, node.handlers, node.orelse, node.finalbody)

    if sys.version_info >= (3, 11):

        def visit_TryStar(self, node: ast.TryStar) -> None:
            self._visit_try(node.body, node.handlers, node.orelse, node.finalbody)

    def _visit_try(
        self,
        body: list[ast.stmt],
        handlers: list[ast.ExceptHandler],
        orelse: list[ast.stmt],
        finalbody: list[ast.stmt],
    ) -> None:
        guards = any(_catches_import_error(handler.type) for handler in handlers)
        self._guarding_tries += guards
        for stmt in body:
            self.visit(stmt)
        self._guarding_tries -= guards
        # Handlers, `else:` and `finally:` are outside the protection of this try.
        for part in (*handlers, *orelse, *finalbody):
            self.visit(part)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._visit_function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._visit_function(node)

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        # Decorators, defaults and annotations run at definition time, inside any
        # enclosing try; the body runs later, after that try is long gone.
        for decorator in node.decorator_list:
            self.visit(decorator)
        self.visit(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        self._visit_deferred(node.body)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit(node.args)
        self._visit_deferred([node.body])

    def _visit_deferred(self, body: Sequence[ast.AST]) -> None:
        saved, self._guarding_tries = self._guarding_tries, 0
        for child in body:
            self.visit(child)
        self._guarding_tries = saved

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        # Same work as generic_visit, but decorators first, as they appear in the source.
        for child in (*node.decorator_list, *node.bases, *node.keywords, *node.body):
            self.visit(child)

    # -- helpers -------------------------------------------------------------------

    def _add(
        self,
        name: str,
        level: int,
        anchor: Anchor | str,
        names: tuple[str, ...],
        lineno: int,
        *,
        dynamic: bool,
    ) -> None:
        optional = self._guarding_tries > 0
        self.found.append(FoundImport(name, level, anchor, names, lineno, optional, dynamic))


def _anchor(package: ast.expr | None) -> Anchor | str | None:
    """What a dynamic relative import resolves against, if known statically."""
    if isinstance(package, ast.Name):
        return {"__package__": Anchor.PACKAGE, "__name__": Anchor.MODULE}.get(package.id)
    # An empty or missing package makes importlib raise TypeError: nothing is imported.
    return _const_str(package) or None


def _catches_import_error(handler_type: ast.expr | None) -> bool:
    if handler_type is None:  # bare `except:`
        return True
    if isinstance(handler_type, ast.Tuple):
        return any(_catches_import_error(elt) for elt in handler_type.elts)
    if isinstance(handler_type, ast.Name):
        return handler_type.id in _IMPORT_ERROR_CATCHERS
    return isinstance(handler_type, ast.Attribute) and handler_type.attr in _IMPORT_ERROR_CATCHERS


def _bind(call: ast.Call, params: tuple[str, ...]) -> dict[str, ast.expr] | None:
    """Map a call's arguments to parameter names; None when that is not knowable."""
    if len(call.args) > len(params) or any(isinstance(arg, ast.Starred) for arg in call.args):
        return None
    bound = dict(zip(params, call.args, strict=False))
    for keyword in call.keywords:
        # `**kwargs`, or a keyword the call would reject anyway.
        if keyword.arg is None or keyword.arg not in params or keyword.arg in bound:
            return None
        bound[keyword.arg] = keyword.value
    return bound


def _const_str(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _const_int(node: ast.expr) -> int | None:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int)
        and not isinstance(node.value, bool)
    ):
        return node.value
    return None


def _const_fromlist(node: ast.expr | None) -> tuple[str, ...]:
    """The constant names of an ``__import__`` fromlist; ``*`` is left out, like in statements."""
    if not isinstance(node, ast.List | ast.Tuple):
        return ()
    names = (_const_str(elt) for elt in node.elts)
    return tuple(name for name in names if name is not None and name != "*")
