"""Why a clone behaves differently although it packaged fine.

Two sharp edges that no exception names: module globals that the original's
run changed (the clone starts from the values at import), and objects that
cross from the original's namespace into the clone's, where ``isinstance``
against the clone's classes (or registries of them) fails.
"""

from __future__ import annotations

import dataclasses
import enum
import linecache
import re
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import BuiltinFunctionType, FunctionType, ModuleType
from typing import Any

from torchpkg.mangling import demangle, demangle_text, is_mangled
from torchpkg.roundtrip._diagnostics import Diagnostic, DiagnosticKind

__all__ = [
    "GlobalValue",
    "crossing_objects",
    "global_state_diagnostics",
    "isinstance_diagnostics",
    "snapshot_globals",
]


# --- module globals ----------------------------------------------------------------------

_UNTRACKED = object()
_CONTAINERS: tuple[type[Any], ...] = (dict, list, tuple, set, frozenset)
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
    base = next((b for b in _CONTAINERS if isinstance(value, b)), None)
    if depth >= 3 or base is None:
        return _UNTRACKED
    # The base type's methods: a subclass's may compute (transformers' lazy mappings
    # import every model when iterated).
    size = base.__len__(value)
    if size > _MAX_ITEMS:
        return (type(value).__name__, size, None)
    if base is dict:
        items = [
            (_fingerprint(k, depth + 1), _fingerprint(v, depth + 1)) for k, v in dict.items(value)
        ]
        content: Any = tuple(sorted(items, key=repr))
    else:
        elements = [_fingerprint(v, depth + 1) for v in base.__iter__(value)]
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
    text = demangle_text(text)
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


def _members(value: Any) -> Iterable[Any] | None:
    """A container's keys and values by its base type's methods (see _fingerprint)."""
    base = next((b for b in _CONTAINERS if isinstance(value, b)), None)
    if base is dict:
        return [*dict.keys(value), *dict.values(value)]
    return None if base is None else base.__iter__(value)


def _registries(modules: Mapping[str, ModuleType]) -> dict[str, set[str]]:
    """Module-level containers that hold packaged classes: ``{"mod.NAME": {class names}}``."""
    registries: dict[str, set[str]] = {}
    identities: dict[str, tuple[int, bool]] = {}
    for module_name, module in modules.items():
        for name, value in list(vars(module).items()):
            if name.startswith("__"):
                continue
            members = _members(value)
            if members is None:
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
