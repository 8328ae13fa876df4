"""Which lines of which files ran, for the hermeticity and path checks.

A run is traced only where a caller says a file matters (``classify``): the
package's own code, the files it was exported from, the repository. Each line
counts once, in the order it first ran; for code outside the package the
first call into each file is kept with its call site. Code that comes with the
inputs (callables passed in, the methods of the inputs' classes) is not traced:
on another machine the caller brings its inputs and their code. On 3.12+ this uses
``sys.monitoring`` (each line location reports once, then is disabled); on
3.11 ``sys.settrace`` with local tracing only in the files that matter, and
not at all when another tracer (coverage.py, a debugger) holds the hook.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, FrameType, FunctionType, MethodType
from typing import Any

from torchpkg._materialize import packaged_record
from torchpkg.mangling import is_mangled
from torchpkg.provenance import _INSTALL_FOLDERS, _inside, _library_folders
from torchpkg.roundtrip._diagnostics import Diagnostic, DiagnosticKind, relative_path

__all__ = [
    "Classify",
    "Trace",
    "Traced",
    "divergence_diagnostic",
    "in_repository",
    "leak_diagnostics",
    "trace",
]

# (filename, packaged) -> the file's key (its record path), or None: not traced.
Classify = Callable[[str, bool], "str | None"]


@dataclass
class Traced:
    """What a traced run executed: packaged lines, and code from outside the package."""

    lines: list[tuple[str, int]] = field(default_factory=list)  # (record, line), first-run order
    # record -> (call site, line) of the first call into that file's unpackaged copy
    outside: dict[str, tuple[str, int]] = field(default_factory=dict)
    outside_lines: list[tuple[str, int]] = field(default_factory=list)
    available: bool = True  # False: another tracer held the hook, nothing was traced
    files: set[str] = field(default_factory=set)  # every file whose Python code started

    def keyed(self, records: dict[str, str]) -> Traced:
        """The lines outside the package under their records, where ``records`` has one."""
        return Traced(
            outside_lines=[(records[f], line) for f, line in self.outside_lines if f in records],
            available=self.available,
            files=self.files,
        )


def _site(frame: FrameType | None) -> tuple[str, int]:
    if frame is None:
        return ("?", 0)
    filename = frame.f_code.co_filename
    return (packaged_record(filename) or filename, frame.f_lineno)


def _packaged(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__")
    return isinstance(name, str) and is_mangled(name)


def in_repository(filename: str, roots: tuple[str, ...]) -> bool:
    """Whether ``filename`` is the repository's own code: under one of ``roots`` (folders
    ending with ``os.sep``) and not installed there. A virtualenv inside the repository
    (``<repo>/.venv/lib/python3.11/site-packages/torch/...``) holds torch's and the
    libraries' files: a ``site-packages``/``dist-packages`` folder below the root, or the
    interpreter's library folders where they lie inside it, are not the repository's
    (as :mod:`torchpkg.provenance` decides for modules)."""
    matched = [root for root in roots if filename.startswith(root)]
    return bool(matched) and not any(_installed_below(filename, root) for root in matched)


def _installed_below(filename: str, root: str) -> bool:
    if _INSTALL_FOLDERS.intersection(Path(filename[len(root) :]).parts):
        return True
    real_root = os.path.realpath(root)
    folders = [folder for folder in _library_folders() if _inside(folder, (real_root,))]
    return bool(folders) and _inside(os.path.realpath(filename), folders)


class Trace:
    """Context manager: traces the current thread while entered.

    The code that comes with ``inputs`` is not traced (see :class:`_InputWalk`);
    ``model`` (the model called on them) and its submodules are never taken for
    inputs, nor their classes' code.
    """

    def __init__(self, classify: Classify, inputs: object = (), *, model: object = None) -> None:
        self.result = Traced()
        self._classify = classify
        # Code the test passed in runs where it was written: not the package's.
        walk = _InputWalk(model)
        self._ignored = walk.code_of(inputs)
        self._input_files = walk.files()
        self._model_files = walk.model_files()
        self._keys: dict[tuple[str, bool], str | None] = {}
        self._seen: set[tuple[str, bool, int]] = set()
        self._tool: int | None = None

    def _key(self, filename: str, packaged: bool) -> str | None:
        cache_key = (filename, packaged)
        if cache_key not in self._keys:
            brought = (
                not packaged
                and filename.startswith(self._input_files)
                and filename not in self._model_files
            )
            self._keys[cache_key] = None if brought else self._classify(filename, packaged)
        return self._keys[cache_key]

    def _record(self, key: str, packaged: bool, line: int, caller: FrameType | None) -> None:
        if (key, packaged, line) in self._seen:
            return
        self._seen.add((key, packaged, line))
        if packaged:
            self.result.lines.append((key, line))
        else:
            self.result.outside_lines.append((key, line))
            self.result.outside.setdefault(key, _site(caller))

    # --- 3.11: sys.settrace ------------------------------------------------------------

    def _call(self, frame: FrameType, event: str, arg: Any) -> Any:
        self.result.files.add(frame.f_code.co_filename)
        if frame.f_code in self._ignored:
            return None
        packaged = _packaged(frame)
        if self._key(frame.f_code.co_filename, packaged) is None:
            return None
        return self._line

    def _line(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            packaged = _packaged(frame)
            key = self._key(frame.f_code.co_filename, packaged)
            if key is not None:
                self._record(key, packaged, frame.f_lineno, frame.f_back)
        return self._line

    # --- 3.12+: sys.monitoring -----------------------------------------------------------

    def _monitored_line(self, code: CodeType, line: int) -> Any:
        monitoring: Any = getattr(sys, "monitoring")  # noqa: B009 (3.12+ only)
        if code in self._ignored:
            return monitoring.DISABLE
        frame = sys._getframe(1)
        packaged = _packaged(frame)
        key = self._key(code.co_filename, packaged)
        if key is not None:
            self._record(key, packaged, line, frame.f_back)
        return monitoring.DISABLE  # each line location reports once

    def _monitored_start(self, code: CodeType, offset: int) -> Any:
        self.result.files.add(code.co_filename)
        return getattr(sys, "monitoring").DISABLE  # noqa: B009 (3.12+ only)

    def __enter__(self) -> Traced:
        monitoring: Any = getattr(sys, "monitoring", None)
        if monitoring is not None:
            for tool in (monitoring.PROFILER_ID, monitoring.OPTIMIZER_ID, 4, 3):
                if monitoring.get_tool(tool) is None:
                    monitoring.use_tool_id(tool, "torchpkg")
                    self._tool = tool
                    break
            else:
                self.result.available = False
                return self.result
            events = monitoring.events
            monitoring.register_callback(self._tool, events.LINE, self._monitored_line)
            monitoring.register_callback(self._tool, events.PY_START, self._monitored_start)
            monitoring.set_events(self._tool, events.LINE | events.PY_START)
            return self.result
        if sys.gettrace() is not None:
            self.result.available = False
            return self.result
        sys.settrace(self._call)
        return self.result

    def __exit__(self, *exc_info: object) -> None:
        monitoring: Any = getattr(sys, "monitoring", None)
        if monitoring is not None:
            if self._tool is not None:
                monitoring.set_events(self._tool, 0)
                monitoring.register_callback(self._tool, monitoring.events.LINE, None)
                monitoring.register_callback(self._tool, monitoring.events.PY_START, None)
                monitoring.free_tool_id(self._tool)
                monitoring.restart_events()
            return
        if self.result.available:
            sys.settrace(None)


def trace(classify: Classify, inputs: object = (), *, model: object = None) -> Trace:
    return Trace(classify, inputs, model=model)


# --- the code that comes with the inputs -------------------------------------------------

_DEPTH = 6  # containers and attributes followed from the inputs
_BUDGET = 10_000  # objects looked at, so that a large input costs little
_ITEMS = 1_000  # items looked at in one container (a large one holds few kinds of objects)
_ATOMS = (str, bytes, bytearray, int, float, complex, bool, type(None), range, slice)
_CONTAINERS = (list, tuple, set, frozenset, dict)
_FOREIGN = frozenset({"builtins", "torch"})  # top-level modules whose classes are not walked


class _InputWalk:
    """The code that comes with the inputs: of the callables among them, and of the
    methods of the classes of the objects reachable from them (through containers,
    dataclass fields, ``__slots__`` and ``__dict__`` values, a few levels deep), each
    class with its MRO. A quadrature module given a distribution of the repository's
    class runs the distribution's methods, and on another machine the caller brings
    that distribution and its code. ``model`` and its submodules are not inputs: they
    are not walked, and their classes' code stays traced. torch's and built-in classes
    are skipped (their code is never the repository's)."""

    def __init__(self, model: object) -> None:
        parts: list[Any] = [] if model is None else [model]
        if _is_module(model):
            parts = list(parts[0].modules())  # nn.Module.modules(): itself and its submodules
        self._seen: set[int] = {id(part) for part in parts}
        self._own: set[type] = {klass for part in parts for klass in type(part).__mro__}
        self._classes: set[type] = set()
        self._code: set[CodeType] = set()
        self._budget = _BUDGET
        self._packages: set[str] = set()

    def code_of(self, inputs: object) -> set[CodeType]:
        self._walk(inputs, 0)
        return self._code

    def model_files(self) -> frozenset[str]:
        """The files of the model's own classes: traced even inside an input's package."""
        modules = (sys.modules.get(klass.__module__) for klass in self._own)
        files = (getattr(module, "__file__", None) for module in modules)
        return frozenset(file for file in files if isinstance(file, str))

    def files(self) -> tuple[str, ...]:
        """The folders (and single-file modules) of the top-level packages the inputs'
        classes come from. Their code, run from its files, is the caller's: a
        likelihood given the library's own distribution runs the distribution's
        module and everything it calls in that library (gpytorch's settings, its
        memoization helpers), which on another machine the caller brings."""
        found: list[str] = []
        for name in sorted(self._packages):
            module = sys.modules.get(name)
            paths = getattr(module, "__path__", None)
            file = getattr(module, "__file__", None)
            if paths is not None:
                found.extend(os.path.join(path, "") for path in paths)
            elif isinstance(file, str):
                found.append(file)
        return tuple(found)

    def _walk(self, obj: object, depth: int) -> None:
        if isinstance(obj, _ATOMS) or id(obj) in self._seen or self._budget <= 0:
            return
        self._seen.add(id(obj))
        self._budget -= 1
        for function in _functions(obj):  # a function, method or partial passed in
            self._code.update(_code_tree(function))
        if isinstance(obj, type):
            self._add_class(obj)
        else:
            self._add_class(type(obj))
        if depth >= _DEPTH:
            return
        for child in _children(obj):
            self._walk(child, depth + 1)

    def _add_class(self, cls: type) -> None:
        for klass in cls.__mro__:
            if klass in self._classes or klass in self._own or _top(klass) in _FOREIGN:
                continue
            self._classes.add(klass)
            if not is_mangled(klass.__module__):
                self._packages.add(_top(klass))
            for value in list(vars(klass).values()):
                for function in _functions(value):
                    self._code.update(_code_tree(function))


def _top(cls: type) -> str:
    module = getattr(cls, "__module__", None)
    return module.partition(".")[0] if isinstance(module, str) else ""


def _is_module(obj: object) -> bool:
    torch_nn = sys.modules.get("torch.nn")
    return torch_nn is not None and isinstance(obj, torch_nn.Module)


def _functions(value: object) -> Iterator[FunctionType]:
    """The Python functions behind ``value``: a function or method, a static or class
    method, a property's accessors, a cached property, a partial, and what they wrap
    (``functools.wraps``, ``functools.cache``)."""
    if isinstance(value, (staticmethod, classmethod, MethodType)):
        value = value.__func__
    if isinstance(value, property):
        candidates: list[object] = [value.fget, value.fset, value.fdel]
    elif isinstance(value, (functools.cached_property, functools.partial)):
        candidates = [value.func]
    else:
        candidates = [value]
    for first in candidates:
        candidate = first
        for _ in range(8):  # a chain of wrappers
            if isinstance(candidate, FunctionType):
                yield candidate
            elif type(candidate).__module__ != "functools":
                break
            candidate = getattr(candidate, "__wrapped__", None)


def _code_tree(function: FunctionType) -> Iterator[CodeType]:
    """A function's code and the code nested in it (comprehensions, lambdas, inner
    functions)."""
    stack: list[CodeType] = [function.__code__]
    while stack:
        code = stack.pop()
        yield code
        stack.extend(const for const in code.co_consts if isinstance(const, CodeType))


def _children(obj: object) -> Iterable[object]:
    if isinstance(obj, dict):
        items = itertools.islice(obj.items(), _ITEMS)
        return [part for item in items for part in item]
    if isinstance(obj, _CONTAINERS):
        return list(itertools.islice(obj, _ITEMS))
    if isinstance(obj, type):
        return ()
    children: list[object] = []
    if isinstance(obj, functools.partial):
        children += [obj.func, *obj.args, *obj.keywords.values()]
    if isinstance(obj, MethodType):  # a bound method: its object's class too
        children.append(obj.__self__)
    if dataclasses.is_dataclass(obj):
        children += [getattr(obj, f.name, None) for f in dataclasses.fields(obj)]
    state = _instance_dict(obj)
    if state is not None:
        children += list(state.values())
    for klass in type(obj).__mro__:
        slots = vars(klass).get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__"):
                children.append(getattr(obj, name, None))
    return children


def _instance_dict(obj: object) -> dict[str, Any] | None:
    try:
        state = object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        return None
    return state if isinstance(state, dict) else None


# --- what the traces say ---------------------------------------------------------------


def leak_diagnostics(clone: Traced, roots: Iterable[str] = ()) -> list[Diagnostic]:
    """Code from the files the package was made from, run while the clone ran.

    Paths under one of ``roots`` (the repository) are shown relative to it."""
    diagnostics = []
    for key, (site, line) in clone.outside.items():
        file, where = relative_path(key, roots), f"{relative_path(site, roots)}:{line}"
        diagnostics.append(
            Diagnostic(
                DiagnosticKind.HERMETICITY_LEAK,
                f"while the clone ran, {file} ran from its file on disk, not from the package "
                f"(first called from {where}): the clone is not using only the package",
                "the clone reached the original code: an import at run time that the package "
                "cannot serve (importlib.import_module of a computed name), or an object of "
                "the original kept somewhere both can see (a cache or registry in an extern "
                "module). Intern the module explicitly, or keep such objects out of extern "
                "state.",
                where,
            )
        )
    return diagnostics


def divergence_diagnostic(
    original: Traced, clone: Traced, roots: Iterable[str] = ()
) -> Diagnostic | None:
    """Where the original and the clone, on the same inputs, took different paths.

    Only a fork is reported: in the files both runs went through, each ran lines the
    other did not. One run doing a subset of the other's lines is no fork: a warm
    ``functools.cache`` in the original (it skipped the body the clone ran), a test that
    patched the model's ``forward`` for its call, code the original ran from elsewhere.
    Paths under one of ``roots`` are shown relative to it.
    """
    if not (original.available and clone.available):
        return None
    ran = set(original.outside_lines)
    cloned = set(clone.lines)
    shared = {record for record, _ in original.outside_lines} & {
        record for record, _ in clone.lines
    }
    only_original = [step for step in original.outside_lines if step[0] in shared]
    only_original = [step for step in only_original if step not in cloned]
    only_clone = [step for step in clone.lines if step[0] in shared and step not in ran]
    if not (only_original and only_clone):
        return None
    record, line = only_original[0]
    where = f"{relative_path(record, roots)}:{line}"
    return Diagnostic(
        DiagnosticKind.DIVERGENT_PATH,
        f"on the same inputs the original ran {where} and the clone did not "
        f"({_lines(len(only_original))} only the original ran, {_lines(len(only_clone))} "
        "only the clone): the two took different paths, whatever their outputs",
        "look at the condition that leads to that line: an isinstance check against a "
        "class the package also has (packaged and installed classes differ), a registry "
        "lookup, or a module-level flag that differs inside the package.",
        where,
    )


def _lines(count: int) -> str:
    return "1 line" if count == 1 else f"{count} lines"
