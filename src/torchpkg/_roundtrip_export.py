"""How a roundtrip packages a model: the rules, the automatic externs, the export."""

from __future__ import annotations

import functools
import importlib.machinery
import io
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType
from typing import Any, BinaryIO

from torchpkg.environment import SourceStatus, find_spec_without_running, sys_importer
from torchpkg.errors import PackagingError, PackagingErrorReason
from torchpkg.exporter import PackageExporter
from torchpkg.glob import GlobGroup, GlobPattern
from torchpkg.mangling import is_mangled
from torchpkg.policy import is_implicitly_extern

__all__ = [
    "PACKAGE",
    "RESOURCE",
    "TOOLING_EXTERNS",
    "Exported",
    "Rules",
    "export",
    "own_packages",
    "patterns",
    "qualified_name",
]

PACKAGE = "model"
RESOURCE = "model.pkl"

# Test infrastructure that a model's module (a test file) may import: never part of a model.
TOOLING_EXTERNS = (
    "pytest.**",
    "_pytest.**",
    "pluggy.**",
    "hypothesis.**",
    "xdist.**",
    "execnet.**",
    "pytest_torchpkg.**",
    "torchpkg.**",
)
_TOOLING_TOPS = frozenset(pattern.partition(".")[0] for pattern in TOOLING_EXTERNS)


# --- the export --------------------------------------------------------------------------


def patterns(pattern: GlobPattern) -> tuple[str, ...]:
    return (pattern,) if isinstance(pattern, str) else tuple(pattern)


def qualified_name(model: Any) -> str:
    owner = model if isinstance(model, (type, FunctionType)) else type(model)
    return f"{owner.__module__}.{owner.__qualname__}"


def own_packages(model: Any) -> list[str]:
    """The top-level packages of the model's class and its submodules' classes."""
    owners: list[Any] = [model if isinstance(model, (type, FunctionType)) else type(model)]
    modules = getattr(model, "modules", None)
    torch: Any = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module) and callable(modules):
        owners.extend(type(module) for module in modules())
    tops: dict[str, None] = {}
    for owner in owners:
        name = getattr(owner, "__module__", None)
        if not isinstance(name, str) or not name or is_mangled(name):
            continue
        top = name.partition(".")[0]
        if top != "builtins" and not is_implicitly_extern(top) and top not in _TOOLING_TOPS:
            tops[top] = None
    return list(tops)


@functools.lru_cache(maxsize=256)
def _ships_extensions(top: str) -> bool:
    """Whether the installed package ``top`` contains compiled extension modules."""
    spec = find_spec_without_running(top)
    if spec is None or not spec.submodule_search_locations:
        return False
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    files_seen = 0
    for location in spec.submodule_search_locations:
        for _folder, _dirs, files in os.walk(location):
            if any(name.endswith(suffixes) for name in files):
                return True
            files_seen += len(files)
            if files_seen > 20_000:
                return False
    return False


def _auto_externs(error: BaseException, user_intern: GlobGroup) -> list[str]:
    """Unruled modules without Python source, or from packages with C extensions."""
    if not isinstance(error, PackagingError):
        return []
    found: dict[str, None] = {}
    no_source = {
        PackagingErrorReason.IS_EXTENSION_MODULE,
        PackagingErrorReason.NO_DUNDER_FILE,
        PackagingErrorReason.SOURCE_FILE_NOT_FOUND,
    }
    for problem in error.problems:
        name = problem.subject
        if problem.reason is PackagingErrorReason.NO_ACTION:
            if sys_importer.module_source(name).status is not SourceStatus.OK:
                found[name] = None
            elif _ships_extensions(name.partition(".")[0]):
                found[f"{name.partition('.')[0]}.**"] = None
        elif problem.reason in no_source and not user_intern.matches(name):
            found[name] = None
    return list(found)


@dataclass(frozen=True)
class Rules:
    mock: tuple[str, ...]
    extern: tuple[str, ...]
    intern: tuple[str, ...]
    own: tuple[str, ...]
    configure: Callable[[PackageExporter], None] | None = None

    def apply(self, exporter: PackageExporter, auto: list[str] | tuple[str, ...] = ()) -> None:
        """The rules in the order that decides: the user's, the hook's, the automatic
        externs, the model's own packages, then test tooling."""
        if self.mock:
            exporter.mock(self.mock)
        if self.extern:
            exporter.extern(self.extern)
        if self.intern:
            exporter.intern(self.intern)
        if self.configure is not None:
            self.configure(exporter)
        if auto:
            exporter.extern(auto)
        if self.own:
            exporter.intern([f"{top}.**" for top in self.own])
        exporter.extern(TOOLING_EXTERNS)


@dataclass(frozen=True)
class Exported:
    source: bytes | Path | None  # None: the export failed
    error: BaseException | None
    interned: tuple[str, ...]
    externed: tuple[str, ...]
    mocked: tuple[str, ...]
    size: int


_Lists = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def _export_once(
    model: Any, target: BinaryIO | Path, rules: Rules, auto: list[str]
) -> tuple[BaseException | None, _Lists]:
    exporter = PackageExporter(target)
    error: BaseException | None = None
    try:
        with exporter:
            rules.apply(exporter, auto)
            exporter.save_pickle(PACKAGE, RESOURCE, model)
    except Exception as raised:
        error = raised
    lists = (
        tuple(exporter.interned_modules()),
        tuple(exporter.externed_modules()),
        tuple(exporter.mocked_modules()),
    )
    return error, lists


def export(model: Any, folder: Path | None, rules: Rules) -> Exported:
    auto: list[str] = []
    user_intern = GlobGroup(rules.intern)
    while True:
        target: BinaryIO | Path = io.BytesIO() if folder is None else folder / "model.pt"
        error, lists = _export_once(model, target, rules, auto)
        if error is not None:
            more = [name for name in _auto_externs(error, user_intern) if name not in auto]
            if more and not auto:  # one retry, with every automatic extern at once
                auto.extend(more)
                continue
            return Exported(None, error, *lists, 0)
        if isinstance(target, Path):
            return Exported(target, None, *lists, target.stat().st_size)
        assert isinstance(target, io.BytesIO)
        data = target.getvalue()
        return Exported(data, None, *lists, len(data))
