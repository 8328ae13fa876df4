"""What went wrong in a roundtrip, and what to do about it.

Each finder looks at one sharp edge of packaging: members that cannot be
pickled, module globals the clone never saw change, objects that cross from
the original's namespace into the clone's (where ``isinstance`` fails), stubs
of mocked modules that the clone called, and the grouped ``PackagingError``
with the ``extern``/``mock`` patterns that would fix it.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import linecache
import pickle
import re
import sys
import traceback
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import BuiltinFunctionType, FunctionType, ModuleType
from typing import Any

from torchpkg.errors import PackagingError, PackagingErrorReason
from torchpkg.mangling import demangle, is_mangled

__all__ = [
    "Diagnostic",
    "DiagnosticKind",
    "GlobalValue",
    "crossing_objects",
    "error_diagnostic",
    "error_diagnostics",
    "find_unpicklable",
    "global_state_diagnostics",
    "isinstance_diagnostics",
    "mocked_use_diagnostic",
    "packaging_diagnostics",
    "pickling_failed",
    "snapshot_globals",
]


class DiagnosticKind(enum.Enum):
    OUTPUT_MISMATCH = "output-mismatch"
    STATE_DICT_MISMATCH = "state-dict-mismatch"
    PACKAGING_ERROR = "packaging-error"
    ISINSTANCE_ACROSS_NAMESPACES = "isinstance-across-namespaces"
    GLOBAL_STATE_MUTATED = "global-state-mutated"
    MOCKED_MODULE_USED = "mocked-module-used"
    UNPICKLABLE_MEMBER = "unpicklable-member"
    LOAD_ERROR = "load-error"
    RUN_ERROR = "run-error"


@dataclass(frozen=True)
class Diagnostic:
    """One finding: what is wrong, what to do next, and where (when it has a place)."""

    kind: DiagnosticKind
    message: str
    next_step: str
    location: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "message": self.message,
            "next_step": self.next_step,
            "location": self.location,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Diagnostic:
        return cls(
            DiagnosticKind(data["kind"]), data["message"], data["next_step"], data.get("location")
        )


_PATTERN_ARGS = (
    "as roundtrip() arguments, in @pytest.mark.torchpkg(...), or in the torchpkg_extern / "
    "torchpkg_mock ini keys"
)


# --- packaging ---------------------------------------------------------------------------


def packaging_diagnostics(
    error: BaseException, unpicklable: tuple[str, str] | None
) -> list[Diagnostic]:
    """The export failed: the grouped error, suggested patterns, the unpicklable member."""
    if not isinstance(error, PackagingError):
        return [
            Diagnostic(
                DiagnosticKind.PACKAGING_ERROR,
                f"exporting the model failed: {type(error).__name__}: {error}",
                "fix the error above (it was raised while the model was exported); the "
                "traceback of a direct PackageExporter.save_pickle() call shows where.",
            )
        ]
    groups = error.by_reason()
    externs = _suggested_externs(groups)
    steps = []
    if externs:
        listed = ", ".join(repr(p) for p in externs)
        steps.append(
            f"declare what the package does not contain: extern=[{listed}] (the environment "
            f"that loads the package provides them) or mock=[{listed}] (only if the model "
            f"never runs their code), {_PATTERN_ARGS}; intern=[...] puts their source in "
            "the package instead."
        )
    steps.extend(
        reason.next_step for reason in groups if reason is not PackagingErrorReason.NO_ACTION
    )
    diagnostics = [
        Diagnostic(
            DiagnosticKind.PACKAGING_ERROR,
            f"exporting the model failed:\n{str(error).strip()}",
            " ".join(steps) or "see the problems above.",
        )
    ]
    for problem in groups.get(PackagingErrorReason.MOCKED_BUT_STILL_USED, ()):
        diagnostics.append(
            Diagnostic(
                DiagnosticKind.MOCKED_MODULE_USED,
                f"{problem.subject} is mocked, but the pickled model holds objects of it"
                + (f" ({problem.context})" if problem.context else ""),
                f"stop mocking {problem.subject}: intern or extern it instead.",
                problem.subject,
            )
        )
    if unpicklable is not None:
        path, reason = unpicklable
        diagnostics.append(
            Diagnostic(
                DiagnosticKind.UNPICKLABLE_MEMBER,
                f"{path} cannot be pickled: {reason}",
                "replace it with something picklable (a module-level function or class, an "
                "nn.Module such as nn.Identity(), a plain value), or leave it out of the "
                "pickled state (__getstate__) and rebuild it in __setstate__. Lambdas, local "
                "functions and classes, locks and open files cannot be pickled.",
                path,
            )
        )
    return diagnostics


def _suggested_externs(groups: Mapping[PackagingErrorReason, list[Any]]) -> list[str]:
    patterns: dict[str, None] = {}
    for problem in groups.get(PackagingErrorReason.NO_ACTION, ()):
        patterns[f"{problem.subject.partition('.')[0]}.**"] = None
    for reason in (
        PackagingErrorReason.IS_EXTENSION_MODULE,
        PackagingErrorReason.NO_DUNDER_FILE,
        PackagingErrorReason.SOURCE_FILE_NOT_FOUND,
    ):
        for problem in groups.get(reason, ()):
            patterns[problem.subject] = None
    return list(patterns)


def pickling_failed(error: BaseException) -> bool:
    if not isinstance(error, PackagingError):
        return False
    reasons = {PackagingErrorReason.UNPICKLABLE, PackagingErrorReason.OBJECT_NOT_FOUND}
    return any(problem.reason in reasons for problem in error.problems)


# --- unpicklable members -----------------------------------------------------------------


class _Probe(pickle.Pickler):
    """A pickler that skips tensor data: it only answers 'can this be pickled?'."""

    def persistent_id(self, obj: Any) -> Any:
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(
            obj, (torch.Tensor, torch.storage.UntypedStorage, torch.storage.TypedStorage)
        ):
            return id(obj)
        return None


def _pickle_error(obj: Any) -> str | None:
    try:
        _Probe(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def _children(obj: Any) -> Iterator[tuple[str, Any]]:
    torch = sys.modules.get("torch")
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield f"[{key!r}]", value
        return
    if isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            yield f"[{index}]", value
        return
    if isinstance(obj, (set, frozenset)):
        for value in obj:
            yield f"{{{value!r}}}", value
        return
    state = getattr(obj, "__dict__", None)
    if not isinstance(state, dict):
        state = {}
    if torch is not None and isinstance(obj, torch.nn.Module):
        for name, child in obj._modules.items():
            yield (f"[{name}]" if name.isdigit() else f".{name}"), child
        skip = {"_modules", "_parameters", "_buffers"}
        state = {k: v for k, v in state.items() if k not in skip}
    for name, value in state.items():
        yield f".{name}", value
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                yield f".{name}", getattr(obj, name)


def find_unpicklable(obj: Any, root: str = "model") -> tuple[str, str] | None:
    """The path to the deepest member that makes ``obj`` unpicklable, and why."""
    error = _pickle_error(obj)
    if error is None:
        return None
    path, seen = root, {id(obj)}
    while True:
        for suffix, child in _children(obj):
            if id(child) in seen:
                continue
            seen.add(id(child))
            child_error = _pickle_error(child)
            if child_error is not None:
                obj, path, error = child, path + suffix, child_error
                break
        else:
            return path, error


# --- module globals ----------------------------------------------------------------------

_UNTRACKED = object()
_MAX_ITEMS = 1000


def _fingerprint(value: Any, depth: int = 0) -> Any:
    """A comparable summary of a module global's value, or ``_UNTRACKED``."""
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return ("value", repr(value))
    if isinstance(value, (type, FunctionType, BuiltinFunctionType)):
        module = demangle(getattr(value, "__module__", "") or "")
        return ("ref", f"{module}.{getattr(value, '__qualname__', '?')}")
    if isinstance(value, enum.Enum):
        return ("value", f"{type(value).__qualname__}.{value.name}")
    if depth >= 3 or not isinstance(value, (tuple, list, dict, set, frozenset)):
        return _UNTRACKED
    size = len(value)
    if size > _MAX_ITEMS:
        return (type(value).__name__, size, None)
    if isinstance(value, dict):
        items = [(_fingerprint(k, depth + 1), _fingerprint(v, depth + 1)) for k, v in value.items()]
        content: Any = tuple(sorted(items, key=repr))
    else:
        elements = [_fingerprint(v, depth + 1) for v in value]
        content = (
            tuple(sorted(elements, key=repr))
            if isinstance(value, (set, frozenset))
            else tuple(elements)
        )
    if _contains_untracked(content):
        content = None
    return (type(value).__name__, size, content)


def _contains_untracked(content: Any) -> bool:
    if content is _UNTRACKED:
        return True
    if isinstance(content, tuple):
        return any(_contains_untracked(item) for item in content)
    return False


@dataclass(frozen=True)
class GlobalValue:
    fingerprint: Any
    shown: str
    identity: int  # id() of a mutable container (one object under several names), else 0
    defined: bool = False  # the module's source assigns the name (rather than importing it)


def _defines(module: ModuleType, name: str) -> bool:
    """Whether ``module``'s source assigns ``name`` at top level (not just imports it)."""
    file = getattr(module, "__file__", None)
    if not isinstance(file, str):
        return False
    assignment = re.compile(rf"{re.escape(name)}\s*(:[^=\n]*)?=(?!=)")
    return any(assignment.match(line) for line in linecache.getlines(file))


def _representatives(identities: Mapping[str, tuple[int, bool]]) -> set[str]:
    """One name per shared object: the one whose module defines it, else the first."""
    keep: set[str] = set()
    groups: dict[int, list[tuple[bool, str]]] = {}
    for key, (identity, defined) in identities.items():
        if identity:
            groups.setdefault(identity, []).append((not defined, key))
        else:
            keep.add(key)
    keep.update(min(members)[1] for members in groups.values())
    return keep


def snapshot_globals(modules: Mapping[str, ModuleType]) -> dict[str, GlobalValue]:
    """``{"pkg.mod.NAME": value summary}`` for the state-like globals of ``modules``."""
    snapshot: dict[str, GlobalValue] = {}
    for module_name, module in modules.items():
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for name, value in list(namespace.items()):
            if name.startswith("__") or isinstance(
                value, (ModuleType, type, FunctionType, BuiltinFunctionType)
            ):
                continue
            fingerprint = _fingerprint(value)
            if fingerprint is _UNTRACKED:
                continue
            mutable = isinstance(value, (list, dict, set))
            snapshot[f"{module_name}.{name}"] = GlobalValue(
                fingerprint,
                _shown(value),
                id(value) if mutable else 0,
                mutable and _defines(module, name),
            )
    return snapshot


def _shown(value: Any) -> str:
    if isinstance(value, (list, dict, set, frozenset, tuple)) and len(value) > 8:
        return f"{type(value).__name__} of {len(value)} items"
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    text = re.sub(r"<torch_package_\d+>\.", "", text)
    return text if len(text) <= 80 else text[:77] + "..."


def global_state_diagnostics(
    before: Mapping[str, GlobalValue],
    after: Mapping[str, GlobalValue],
    clone: Mapping[str, GlobalValue],
) -> list[Diagnostic]:
    """Globals that the original's run changed, or that differ from the fresh clone's."""
    diagnostics: list[Diagnostic] = []
    known = {**before, **after}
    names = _representatives({k: (v.identity, v.defined) for k, v in known.items()})
    next_step = (
        "keep the state on the model (an attribute or a registered buffer, which are pickled "
        "with it) instead of in a module global, or make the result independent of it: a "
        "package re-imports its modules, so the clone starts from the import-time value and "
        "never sees changes made at run time."
    )
    for name in sorted(names):
        old, new, fresh = before.get(name), after.get(name), clone.get(name)
        if old is not None and new is not None and old.fingerprint != new.fingerprint:
            seen = f"; the clone's copy started at {fresh.shown}" if fresh is not None else ""
            message = f"{name} changed during the original's run: {old.shown} -> {new.shown}{seen}"
        elif old is not None and fresh is not None and old.fingerprint != fresh.fingerprint:
            message = (
                f"{name} is {old.shown} in the original's module but {fresh.shown} in the "
                "clone's freshly imported copy: it was changed after import (by earlier calls "
                "or by the code that built the model)"
            )
        else:
            continue
        diagnostics.append(
            Diagnostic(DiagnosticKind.GLOBAL_STATE_MUTATED, message, next_step, name)
        )
    return diagnostics


# --- objects crossing namespaces ---------------------------------------------------------

_SITE_LINES = 4  # a check, then a raise or a branch a few lines below it
_ISINSTANCE_SITE = re.compile(
    r"\b(isinstance|issubclass)\(|\btype\([^()]*\)\s*(is|==|!=|in)\b|__class__\s*(is|==)"
)


def crossing_objects(
    inputs: tuple[Any, ...], kwargs: Mapping[str, Any], interned: Iterable[str]
) -> list[tuple[str, str]]:
    """``(path, class name)`` of inputs whose classes are packaged: the clone has its own."""
    names = set(interned)
    found: list[tuple[str, str]] = []
    roots = [(f"inputs[{i}]", value) for i, value in enumerate(inputs)]
    roots += [(f"kwargs[{key!r}]", value) for key, value in kwargs.items()]
    for path, value in roots:
        _walk_crossing(value, path, names, found, depth=0, seen=set())
    return found


def _walk_crossing(
    value: Any,
    path: str,
    names: set[str],
    found: list[tuple[str, str]],
    *,
    depth: int,
    seen: set[int],
) -> None:
    if id(value) in seen or depth > 4:
        return
    seen.add(id(value))
    cls = value if isinstance(value, type) else type(value)
    if cls.__module__ in names:
        found.append((path, f"{cls.__module__}.{cls.__qualname__}"))
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _walk_crossing(item, f"{path}[{key!r}]", names, found, depth=depth + 1, seen=seen)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _walk_crossing(item, f"{path}[{index}]", names, found, depth=depth + 1, seen=seen)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            item = getattr(value, field.name, None)
            _walk_crossing(item, f"{path}.{field.name}", names, found, depth=depth + 1, seen=seen)


def _registries(modules: Mapping[str, ModuleType]) -> dict[str, set[str]]:
    """Module-level containers that hold packaged classes: ``{"mod.NAME": {class names}}``."""
    registries: dict[str, set[str]] = {}
    identities: dict[str, tuple[int, bool]] = {}
    for module_name, module in modules.items():
        for name, value in list(vars(module).items()):
            if name.startswith("__"):
                continue
            if isinstance(value, dict):
                members: Iterable[Any] = [*value.keys(), *value.values()]
            elif isinstance(value, (list, tuple, set, frozenset)):
                members = value
            else:
                continue
            classes = {
                demangle(f"{m.__module__}.{m.__qualname__}")
                for m in list(members)[:_MAX_ITEMS]
                if isinstance(m, type) and is_mangled(m.__module__)
            }
            if classes:
                key = f"{module_name}.{name}"
                registries[key] = classes
                identities[key] = (id(value), _defines(module, name))
    keep = _representatives(identities)
    return {key: classes for key, classes in registries.items() if key in keep}


def isinstance_diagnostics(
    crossing: list[tuple[str, str]],
    clone_modules: Mapping[str, ModuleType],
    error: BaseException | None,
) -> list[Diagnostic]:
    """Inputs of packaged classes, the registries that hold their clone twins, the check site."""
    diagnostics: list[Diagnostic] = []
    site = _isinstance_site(error) if error is not None else None
    at = f" The clone failed at {site}." if site else ""
    next_step = (
        "build inputs from tensors, builtins, or classes of extern modules; or extern the "
        "module that defines the class (extern=[...]) so the original and the clone share "
        "it; or check by duck typing or by class name instead of isinstance() / type() is."
    )
    for path, class_name in crossing:
        diagnostics.append(
            Diagnostic(
                DiagnosticKind.ISINSTANCE_ACROSS_NAMESPACES,
                f"{path} is a {class_name} made by the original code; the clone's code has its "
                f"own copy of that class (<torch_package_N>.{class_name}), so isinstance() and "
                f"type() is checks in the clone are False for it.{at}",
                next_step,
                path,
            )
        )
    crossing_classes = {class_name for _, class_name in crossing}
    for registry, classes in _registries(clone_modules).items():
        shared = sorted(classes & crossing_classes)
        if shared:
            diagnostics.append(
                Diagnostic(
                    DiagnosticKind.ISINSTANCE_ACROSS_NAMESPACES,
                    f"{registry} is a registry of classes; in the clone it holds the clone's "
                    f"classes, so lookups and isinstance() checks against it fail for inputs "
                    f"of the original's {', '.join(shared)}.",
                    next_step,
                    registry,
                )
            )
    if not diagnostics and site is not None:
        diagnostics.append(
            Diagnostic(
                DiagnosticKind.ISINSTANCE_ACROSS_NAMESPACES,
                f"the clone failed at a type check, {site}: objects made outside the package "
                "are not instances of the clone's classes.",
                next_step,
                site.partition(":")[0] if ":" in site else site,
            )
        )
    return diagnostics


def _isinstance_site(error: BaseException) -> str | None:
    """The type check nearest the error in packaged code: the failing line or just above it."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if not is_mangled(frame.filename) or frame.lineno is None:
            continue
        for lineno in range(frame.lineno, max(frame.lineno - _SITE_LINES, 0), -1):
            line = linecache.getline(frame.filename, lineno)
            if _ISINSTANCE_SITE.search(line):
                return f"{demangle(frame.filename)}:{lineno}: {line.strip()}"
    return None


# --- errors raised by the clone ----------------------------------------------------------


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def mocked_use_diagnostic(error: BaseException, mocked: Iterable[str]) -> Diagnostic | None:
    """The clone touched a stub of a mocked module (``MockedObjectUsedError``)."""
    for exc in _chain(error):
        name = getattr(exc, "name", None)
        if type(exc).__name__ == "MockedObjectUsedError" and isinstance(name, str):
            used = demangle(name)
            owners = [m for m in mocked if used == m or used.startswith(m + ".")]
            module = max(owners, key=len) if owners else used.rpartition(".")[0] or used
            return Diagnostic(
                DiagnosticKind.MOCKED_MODULE_USED,
                f"the clone used {used}, but {module} was mocked: its objects are stubs that "
                f"raise when used ({exc})",
                f"stop mocking {module} (remove it from mock=[...]): extern it if the loading "
                "environment has it, or intern it so its source goes into the package.",
                used,
            )
    return None


def error_diagnostic(kind: DiagnosticKind, what: str, error: BaseException) -> Diagnostic:
    """A load or run error: the exception, the innermost packaged frame, a short traceback."""
    frames = traceback.extract_tb(error.__traceback__)
    packaged = [f for f in frames if is_mangled(f.filename)]
    location = None
    if packaged:
        last = packaged[-1]
        location = f"{demangle(last.filename)}:{last.lineno}"
    shown = frames[frames.index(packaged[0]) :] if packaged else frames[-4:]
    tail = "".join(traceback.format_list(shown[-8:]))
    tail = re.sub(r"<torch_package_\d+>\.", "", tail)
    message = f"{what} raised {type(error).__name__}: {error}\n{tail.rstrip()}"
    if kind is DiagnosticKind.LOAD_ERROR:
        next_step = (
            "the packaged code fails when imported from the archive: look for module-level "
            "code that reads files next to __file__, importlib.import_module() of packaged "
            "modules, or a dependency that should be extern; load it by hand with "
            "torchpkg.PackageImporter(...).load_pickle('model', 'model.pkl') to debug."
        )
    else:
        next_step = (
            "the original ran on the same inputs; see the other diagnostics for the usual "
            "causes (isinstance across namespaces, mocked modules, global state), or load the "
            "package with torchpkg.PackageImporter and call the model to debug."
        )
    return Diagnostic(kind, message, next_step, location)


def error_diagnostics(
    kind: DiagnosticKind, what: str, error: BaseException, mocked: Iterable[str]
) -> list[Diagnostic]:
    diagnostics = [error_diagnostic(kind, what, error)]
    mocked_use = mocked_use_diagnostic(error, mocked)
    if mocked_use is not None:
        diagnostics.append(mocked_use)
    return diagnostics
