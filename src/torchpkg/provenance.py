"""The default policy by provenance: intern the repository's code, extern what is installed.

What a user means by "check my repository's models": the code that lives in
the repository goes into the package, and what the loading machine installs
itself (the standard library, distributions from an index) stays outside it.
A module no explicit rule matched is decided by where its file is:

- under one of the ``roots`` (the repository; an editable install of the
  project itself lives there too): interned;
- in a ``site-packages``/``dist-packages`` folder or the interpreter's
  library folders (installed, with or without distribution metadata),
  built in, frozen, or a C extension (no source to intern): extern;
- elsewhere, extern when a distribution's metadata claims its top-level
  package (an editable install of another project), interned otherwise
  (code on ``sys.path`` that nothing installs: the loading machine would not
  have it either).

Nothing here runs a module: locations come from the import system's finders.
"""

from __future__ import annotations

import enum
import functools
import importlib.machinery
import os
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from torchpkg.environment import find_spec_without_running
from torchpkg.policy import Action
from torchpkg.records import distribution_for_module

__all__ = ["Origin", "Provenance", "ProvenancePolicy"]

_INSTALL_FOLDERS = frozenset({"site-packages", "dist-packages"})


class Origin(enum.Enum):
    """Where a module comes from, as the default policy sees it."""

    REPOSITORY = "repository"  # under a root: interned
    UNINSTALLED = "uninstalled"  # on sys.path, claimed by no distribution: interned
    DISTRIBUTION = "distribution"  # installed (site-packages, editable elsewhere): extern
    STANDARD_LIBRARY = "standard library"
    NO_SOURCE = "no source"  # built-in, frozen or a C extension: extern
    NOT_FOUND = "not found"

    @property
    def action(self) -> Action | None:
        if self in (Origin.REPOSITORY, Origin.UNINSTALLED):
            return Action.INTERN
        if self is Origin.NOT_FOUND:
            return None
        return Action.EXTERN


@dataclass(frozen=True)
class Provenance:
    module: str
    origin: Origin
    location: str | None = None


@functools.lru_cache(maxsize=1)
def _library_folders() -> tuple[str, ...]:
    names = ("stdlib", "platstdlib", "purelib", "platlib")
    paths = {sysconfig.get_paths().get(name) for name in names}
    return tuple(sorted(os.path.realpath(path) for path in paths if path))


def _inside(path: str, folders: Iterable[str]) -> bool:
    return any(
        path == folder or path.startswith(folder.rstrip(os.sep) + os.sep) for folder in folders
    )


def _is_installed_path(path: str) -> bool:
    if _INSTALL_FOLDERS.intersection(Path(path).parts):
        return True
    return _inside(path, _library_folders())


class ProvenancePolicy:
    """Decides intern or extern for modules that no rule matched, by where they live.

    ``roots`` are the repository's folders (pytest's rootdir; the current
    directory when none is given). Use it on an exporter with
    ``exporter.fallback(ProvenancePolicy(roots))``.
    """

    def __init__(self, roots: Iterable[str | os.PathLike[str]] = ()) -> None:
        given = [os.path.realpath(root) for root in roots]
        self.roots: tuple[str, ...] = tuple(given) or (os.path.realpath(os.getcwd()),)

    def __call__(self, module: str) -> Action | None:
        return self.provenance(module).origin.action

    def provenance(self, module: str) -> Provenance:
        if module.partition(".")[0] in sys.stdlib_module_names:
            return Provenance(module, Origin.STANDARD_LIBRARY)
        spec = find_spec_without_running(module)
        if spec is None:
            return Provenance(module, Origin.NOT_FOUND)
        locations = _locations(spec)
        if not locations:
            return Provenance(module, Origin.NO_SOURCE, spec.origin)
        location = locations[0]
        if spec.origin is not None and spec.origin.endswith(
            tuple(importlib.machinery.EXTENSION_SUFFIXES)
        ):
            return Provenance(module, Origin.NO_SOURCE, location)
        installed = [path for path in locations if _is_installed_path(path)]
        if len(installed) == len(locations):
            return Provenance(module, Origin.DISTRIBUTION, location)
        if any(_inside(path, self.roots) for path in locations):
            return Provenance(module, Origin.REPOSITORY, location)
        if distribution_for_module(module) is not None:
            return Provenance(module, Origin.DISTRIBUTION, location)
        return Provenance(module, Origin.UNINSTALLED, location)

    def __repr__(self) -> str:
        return f"ProvenancePolicy(roots={list(self.roots)!r})"


def _locations(spec: importlib.machinery.ModuleSpec) -> list[str]:
    """Real paths of the module's file, or of a namespace package's folders."""
    if spec.origin not in (None, "built-in", "frozen", "namespace"):
        assert spec.origin is not None
        return [os.path.realpath(spec.origin)]
    if spec.origin is None or spec.origin == "namespace":
        folders = spec.submodule_search_locations or []
        return [os.path.realpath(folder) for folder in folders]
    return []
