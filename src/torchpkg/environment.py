"""Where an exporter finds modules and names objects: the Importer protocol.

``sys_importer`` is the running interpreter; a ``PackageImporter`` is an
importer too, so objects loaded from one archive can be exported into another
(``importer=(package_importer, sys_importer)``).
"""

from __future__ import annotations

import enum
import importlib
import importlib.machinery
import importlib.util
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType, ModuleType
from typing import Any

from torchpkg.errors import ObjMismatchError, ObjNotFoundError
from torchpkg.mangling import demangle, is_mangled

__all__ = [
    "Importer",
    "ModuleSource",
    "OrderedImporter",
    "SourceStatus",
    "sys_importer",
]


class SourceStatus(enum.Enum):
    """Whether a module's Python source can be had, and if not, why."""

    OK = "ok"
    NOT_FOUND = "not found"
    EXTENSION = "C extension"
    NO_FILE = "no __file__"
    FILE_MISSING = "source file missing"


@dataclass(frozen=True)
class ModuleSource:
    """A module's source as an exporter needs it, found without running the module."""

    name: str
    status: SourceStatus
    is_package: bool = False
    source: str | None = None  # None for namespace packages (nothing to write)
    filename: str | None = None


def _getattribute(obj: Any, qualname: str) -> Any:
    for part in qualname.split("."):
        if part == "<locals>":
            raise AttributeError(f"{qualname} is defined inside a function")
        obj = getattr(obj, part)
    return obj


class Importer(ABC):
    """Imports modules by name and names objects for pickling.

    As in torch.package, a subclass must define ``import_module`` only;
    ``whichmodule``, ``get_name`` and ``module_source`` have defaults.
    """

    # The modules this importer has imported, by name. torch.package only declares it,
    # so a subclass may keep no such table: it reads as empty (and read-only, so
    # nothing written through one importer shows up in another's).
    modules: dict[str, ModuleType] = MappingProxyType({})  # type: ignore[assignment]

    @abstractmethod
    def import_module(self, module_name: str) -> ModuleType:
        """The module called ``module_name`` (demangled names are accepted)."""

    def module_source(self, module_name: str) -> ModuleSource:
        """The module's source, for the exporter.

        This default imports the module, as torch.package does with any importer,
        and reads the source its loader (or ``__file__``) points at. Importers
        that can find source without running modules override it.
        """
        try:
            module = self.import_module(module_name)
        except Exception:  # as torch.package: a module that fails to import is not there
            return ModuleSource(module_name, SourceStatus.NOT_FOUND)
        return source_of_module(module_name, module)

    def whichmodule(self, obj: Any, name: str) -> str:
        """The (demangled) name of the module that defines ``obj``."""
        module_name = getattr(obj, "__module__", None)
        if isinstance(module_name, str):
            return demangle(module_name)
        for module_name, module in list(sys.modules.items()):
            try:
                if module is not None and _getattribute(module, name) is obj:
                    return module_name
            except AttributeError:
                continue
        return "__main__"

    def get_name(self, obj: Any, name: str | None = None) -> tuple[str, str]:
        """``(module, qualname)`` under which ``obj`` can be found again, demangled.

        Raises ``ObjNotFoundError`` when the name leads nowhere and
        ``ObjMismatchError`` when it leads to a different object (typically a
        class loaded from a package while this importer is the environment's).
        """
        if name is None:
            name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
        if name is None:
            reduced = obj.__reduce__() if hasattr(obj, "__reduce__") else None
            if not isinstance(reduced, str):
                raise ObjNotFoundError(f"{obj!r} has no __qualname__ or __name__ to pickle it by")
            name = reduced
        module_name = self.whichmodule(obj, name)
        found_in = getattr(obj, "__module__", module_name)
        try:
            found = _getattribute(self.import_module(module_name), name)
        except (ImportError, AttributeError) as error:
            raise ObjNotFoundError(
                f"{obj!r} was not found as {module_name}.{name} ({error}). Define it at module "
                "level, or pass the PackageImporter it came from in importer=."
            ) from None
        if found is not obj:
            raise ObjMismatchError(
                f"{obj!r} is not the object found as {module_name}.{name}: "
                f"it comes from {found_in!r}, the name leads to one from "
                f"{getattr(found, '__module__', '?')!r}. If it was loaded from a package, pass "
                "importer=(that PackageImporter, sys_importer) to the PackageExporter."
            )
        return module_name, name


class _SysImporter(Importer):
    """The running interpreter's modules (``sys.modules`` and ``sys.meta_path``)."""

    def __init__(self) -> None:
        self.modules = sys.modules

    def import_module(self, module_name: str) -> ModuleType:
        return importlib.import_module(module_name)

    def module_source(self, module_name: str) -> ModuleSource:
        spec = find_spec_without_running(module_name)
        if spec is not None:
            return _source_from_spec(module_name, spec)
        module = sys.modules.get(module_name)
        if module is None:
            return ModuleSource(module_name, SourceStatus.NOT_FOUND)
        return source_of_module(module_name, module)

    def __repr__(self) -> str:
        return "sys_importer"


def source_of_module(name: str, module: ModuleType) -> ModuleSource:
    """The source of a module that is already imported, by its spec or ``__file__``.

    When neither gives source, ``__file__`` says why, as torch.package reads it:
    none, an extension module's suffix, or a file that cannot be read.
    """
    spec = getattr(module, "__spec__", None)
    if isinstance(spec, importlib.machinery.ModuleSpec):
        found = _source_from_spec(name, spec)
        if found.status is SourceStatus.OK:
            return found
    is_package = hasattr(module, "__path__")
    file = getattr(module, "__file__", None)
    if not isinstance(file, str):
        return ModuleSource(name, SourceStatus.NO_FILE, is_package)
    if file.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
        return ModuleSource(name, SourceStatus.EXTENSION, is_package, filename=file)
    spec = importlib.util.spec_from_file_location(name, file)
    from_file = _source_from_spec(name, spec) if spec is not None else None
    if from_file is None or from_file.status is not SourceStatus.OK:
        return ModuleSource(name, SourceStatus.FILE_MISSING, is_package, filename=file)
    return from_file


def _source_from_spec(name: str, spec: importlib.machinery.ModuleSpec) -> ModuleSource:
    is_package = spec.submodule_search_locations is not None
    loader = spec.loader
    origin = spec.origin
    if isinstance(loader, importlib.machinery.ExtensionFileLoader) or (
        origin is not None and origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    ):
        return ModuleSource(name, SourceStatus.EXTENSION, is_package, filename=origin)
    if loader is None or type(loader).__name__ == "NamespaceLoader":
        if is_package:
            return ModuleSource(name, SourceStatus.OK, True)
        return ModuleSource(name, SourceStatus.NO_FILE)
    if origin in (None, "built-in", "frozen") or not (
        hasattr(loader, "get_source") or origin.endswith(".py")
    ):
        return ModuleSource(name, SourceStatus.NO_FILE, is_package)
    try:
        filename, source = _loader_source(spec, loader, origin)
    except (ImportError, OSError):
        return ModuleSource(name, SourceStatus.FILE_MISSING, is_package, filename=origin)
    if source is None:
        return ModuleSource(name, SourceStatus.FILE_MISSING, is_package, filename=filename)
    return ModuleSource(name, SourceStatus.OK, is_package, source, filename)


def _loader_source(
    spec: importlib.machinery.ModuleSpec, loader: Any, origin: str
) -> tuple[str, str | None]:
    """``(file, source)``: the source the module's loader serves, and the file it names.

    The loader, not ``__file__``, decides: finders may hand out loaders that read
    another file (``get_filename``) or serve text of their own (``get_source``).
    The loader knows the module by its spec's name (``os.path`` is ``posixpath``).
    """
    if type(loader) is importlib.machinery.SourceFileLoader:
        # The common case reads the loader's own file: cached against that file.
        return loader.path, _cached_source(loader.path, lambda: loader.get_source(spec.name))
    if isinstance(loader, importlib.machinery.SourceFileLoader):
        return loader.get_filename(spec.name), loader.get_source(spec.name)
    get_source = getattr(loader, "get_source", None)
    if get_source is not None:
        return origin, get_source(spec.name)
    # Loaders such as pytest's assertion rewriter run .py files but cannot give source.
    plain = importlib.machinery.SourceFileLoader(spec.name, origin)
    return origin, _cached_source(origin, lambda: plain.get_source(spec.name))


_sources: dict[str, tuple[tuple[int, int], str | None]] = {}


def _cached_source(path: str, read: Callable[[], str | None]) -> str | None:
    """The text ``read`` decodes from the file ``path``, read again only when the file's
    size or mtime changed.

    Exporting the same model twice reads and decodes every source once. ``read`` must
    read ``path`` itself: the cache is only as right as its key.
    """
    try:
        info = os.stat(path)
    except OSError:
        return read()
    stamp = (info.st_mtime_ns, info.st_size)
    cached = _sources.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    source = read()
    _sources[path] = (stamp, source)
    return source


def find_spec_without_running(name: str) -> importlib.machinery.ModuleSpec | None:
    """Like ``importlib.util.find_spec`` but never executes a module, parents included.

    Dependency resolution only needs to know where a module is; running every
    module it meets (as torch.package does) imports thousands of modules on big
    libraries and runs their side effects.
    """
    module = sys.modules.get(name)
    if module is not None:
        spec = getattr(module, "__spec__", None)
        return spec if isinstance(spec, importlib.machinery.ModuleSpec) else None
    parent, _, _ = name.rpartition(".")
    path: list[str] | None = None
    if parent:
        parent_module = sys.modules.get(parent)
        if parent_module is not None:
            parent_path = getattr(parent_module, "__path__", None)
        else:
            parent_spec = find_spec_without_running(parent)
            parent_path = None if parent_spec is None else parent_spec.submodule_search_locations
        if parent_path is None:
            return None
        path = list(parent_path)
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            spec = find_spec(name, path)
        except (ImportError, ValueError):
            continue
        if spec is not None:
            return spec  # type: ignore[no-any-return]
    return None


sys_importer: Importer = _SysImporter()


def _is_package_placeholder(module: ModuleType) -> bool:
    """A parent package a PackageImporter made up for a folder with no ``__init__.py``."""
    return (
        bool(getattr(module, "__torch_package__", False))
        and getattr(module, "__file__", None) is None
    )


class OrderedImporter(Importer):
    """Asks several importers in turn; the first that has the module wins."""

    def __init__(self, *importers: Importer) -> None:
        for importer in importers:
            if not isinstance(importer, Importer):
                raise TypeError(
                    f"OrderedImporter takes Importers (sys_importer, PackageImporter, ...), "
                    f"not {type(importer).__name__}"
                )
        self._importers: tuple[Importer, ...] = importers
        self.modules = {}

    def import_module(self, module_name: str) -> ModuleType:
        last_error: ModuleNotFoundError | None = None
        try:
            for importer in self._importers:
                try:
                    module = importer.import_module(module_name)
                except ModuleNotFoundError as error:
                    last_error = error
                    continue
                if _is_package_placeholder(module) and importer is not self._importers[-1]:
                    continue
                return module
            raise last_error or ModuleNotFoundError(f"No module named {module_name!r}")
        finally:
            # The error's traceback holds this frame, and so the caller's: kept in a
            # local, the cycle would keep a pickler's buffer exported until a GC pass.
            last_error = None

    def module_source(self, module_name: str) -> ModuleSource:
        found = ModuleSource(module_name, SourceStatus.NOT_FOUND)
        for importer in self._importers:
            found = importer.module_source(module_name)
            if found.status is not SourceStatus.NOT_FOUND:
                return found
        return found

    def whichmodule(self, obj: Any, name: str) -> str:
        for importer in self._importers:
            module_name = importer.whichmodule(obj, name)
            if module_name != "__main__":
                return module_name
        return "__main__"

    def get_name(self, obj: Any, name: str | None = None) -> tuple[str, str]:
        """The name of ``obj`` in the first importer where it is found as itself.

        Each importer is asked in turn, as torch.package does: a model loaded from a
        package and traced with the environment's copy of a class the package also
        holds (an FX tracer) names that class through ``sys_importer``.
        """
        reasons = []
        for importer in self._importers:
            try:
                return importer.get_name(obj, name)
            except (ObjNotFoundError, ObjMismatchError) as error:
                reasons.append(f"{importer!r}: {error}")
        raise ObjNotFoundError(
            f"{obj!r} is not found as itself by any of the importers:\n" + "\n".join(reasons)
        )

    def __repr__(self) -> str:
        return f"OrderedImporter{self._importers!r}"


def mangled_name_hint(module_name: str) -> str | None:
    """What to do when a mangled name reaches an exporter that cannot resolve it."""
    if not is_mangled(module_name):
        return None
    return (
        f"{module_name!r} was loaded from a package; pass importer=(that PackageImporter, "
        "sys_importer) to the PackageExporter to re-export it."
    )
