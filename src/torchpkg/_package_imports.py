"""importlib for packaged code: dynamic imports and metadata probes stay inside the package.

Libraries load their submodules lazily with
``importlib.import_module("." + name, self.__name__)``; inside a package
``__name__`` is mangled (``<torch_package_3>.transformers``), a name the
interpreter's finders have never heard of. Two mechanisms answer such calls:

* ``MangledNameFinder``, first on ``sys.meta_path``, serves every mangled name
  from the live importer that owns it, whoever asks (packaged code, an extern
  library, ``importlib.util.find_spec``). It claims nothing else.
* Packaged code that imports ``importlib``, ``importlib.util`` or
  ``importlib.metadata`` gets a view of them in which names the package
  interns resolve inside the package (``import_module("transformers.x")``
  does what ``import transformers.x`` does there) and the distributions it
  interns answer metadata lookups with the versions they were packaged with.
  Everything else is the real module's.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import re
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import PurePosixPath
from types import ModuleType
from typing import TYPE_CHECKING, Any

from torchpkg.mangling import get_mangle_prefix, is_mangled

if TYPE_CHECKING:
    from torchpkg.importer import PackageImporter
    from torchpkg.records import InternedDistribution

__all__ = [
    "FACADES",
    "MangledNameFinder",
    "PackagedDistribution",
    "facade",
    "register",
    "unregister",
]

_live: dict[str, weakref.ref[PackageImporter]] = {}
# Reentrant: a dropped importer's weakref callback (``_collected``) can run inside
# ``register`` on the same thread, whenever an allocation there starts a GC pass.
_live_lock = threading.RLock()


def register(importer: PackageImporter) -> None:
    """Let importlib reach ``importer``'s modules by their mangled names.

    The finder is on ``sys.meta_path`` only while some importer is alive (closed
    or collected importers take it away), so a process that loads no package
    keeps the import system it had.
    """
    parent = importer.id()
    with _live_lock:
        _live[parent] = weakref.ref(importer, lambda _ref: _collected(parent))
        if not any(isinstance(finder, MangledNameFinder) for finder in sys.meta_path):
            # First, so a materialised ``__path__`` never lets the path finder load a
            # packaged module from disk as a second, unmanaged copy.
            sys.meta_path.insert(0, MangledNameFinder())


def unregister(importer: PackageImporter) -> None:
    _forget(importer.id())


def _collected(parent: str) -> None:
    if sys.meta_path is not None:  # None while the interpreter shuts down: nothing to do
        _forget(parent)


def _forget(parent: str) -> None:
    with _live_lock:
        _live.pop(parent, None)
        root = sys.modules.get(parent)
        if isinstance(root, _Root):
            del sys.modules[parent]
        if not _live:
            sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, MangledNameFinder)]


def owner(name: str) -> PackageImporter | None:
    """The live importer whose mangle parent starts ``name``."""
    ref = _live.get(get_mangle_prefix(name))
    return ref() if ref is not None else None


class MangledNameFinder(importlib.abc.MetaPathFinder):
    """Finds ``<torch_package_N>.…`` modules in the importer that owns them."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("<torch_package_"):
            return None
        importer = owner(fullname)
        if importer is None:
            return None
        if fullname == importer.id():
            # importlib imports every parent first, up to the mangle parent itself.
            return importlib.machinery.ModuleSpec(fullname, _RootLoader(), is_package=True)
        return packaged_spec(importer, importer.demangle(fullname))

    def __repr__(self) -> str:
        return "<torchpkg MangledNameFinder>"


def packaged_spec(importer: PackageImporter, name: str) -> importlib.machinery.ModuleSpec | None:
    """A spec for the packaged module ``name`` (demangled) that imports it on load."""
    node = importer.interned_node(name)
    if node is None:
        return None
    return importlib.machinery.ModuleSpec(
        importer.mangle(name),
        _Delegate(importer, name),
        origin=importer.module_file(node),
        is_package=node.is_package,
    )


class _Delegate(importlib.abc.Loader):
    """Hands importlib the module the PackageImporter makes (or made) for a name."""

    def __init__(self, importer: PackageImporter, name: str) -> None:
        self._importer = importer
        self._name = name
        self._own_spec: Any = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = self._importer.import_module(self._name)
        self._own_spec = getattr(module, "__spec__", None)
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The module ran in create_module; importlib has since set our spec on it.
        if self._own_spec is not None:
            module.__spec__ = self._own_spec


class _Root(ModuleType):
    """``sys.modules["<torch_package_N>"]`` while importlib walks a mangled name's parents."""


class _RootLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return _Root(spec.name)

    def exec_module(self, module: ModuleType) -> None:
        pass


# --- the importlib that packaged code sees ---------------------------------------------

FACADES = frozenset({"importlib", "importlib.util", "importlib.metadata"})


class _Facade(ModuleType):
    """A real module with a few functions replaced; every other attribute is the real one."""

    def __init__(self, real: ModuleType, children: Callable[[str], ModuleType | None]) -> None:
        super().__init__(real.__name__, real.__doc__)
        self.__dict__["_real"] = real
        self.__dict__["_children"] = children

    def __getattr__(self, name: str) -> Any:
        child = self.__dict__["_children"](name)
        if child is not None:
            return child
        return getattr(self.__dict__["_real"], name)

    def __repr__(self) -> str:
        return f"<module {self.__name__!r} (as packaged code sees it)>"


def facade(importer: PackageImporter, name: str) -> ModuleType:
    """The view of the real module ``name`` (one of FACADES) given to ``importer``'s code."""
    real = importlib.import_module(name)

    def children(attr: str) -> ModuleType | None:
        if name == "importlib" and f"importlib.{attr}" in FACADES:
            return importer.import_module(f"importlib.{attr}")
        return None

    view = _Facade(real, children)
    overrides: dict[str, Callable[..., Any]]
    if name == "importlib":
        overrides = {"import_module": _import_module(importer)}
    elif name == "importlib.util":
        overrides = {"find_spec": _find_spec(importer)}
    else:
        overrides = _metadata(importer.interned_distributions())
    for attr, function in overrides.items():
        function.__module__ = name
        function.__qualname__ = function.__name__ = attr
        setattr(view, attr, function)
    return view


def _absolute(name: str, package: str | None) -> str:
    if not name.startswith("."):
        return name
    if not package:
        raise TypeError(
            f"the 'package' argument is required to perform a relative import for {name!r}"
        )
    return importlib.util.resolve_name(name, package)


def _inside(importer: PackageImporter, name: str, package: str | None) -> bool:
    """A relative name anchored at a package this importer serves."""
    return (
        name.startswith(".")
        and package is not None
        and importer.interned_node(importer.demangle(package)) is not None
    )


def _import_module(importer: PackageImporter) -> Callable[..., ModuleType]:
    def import_module(name: str, package: str | None = None) -> ModuleType:
        absolute = _absolute(name, package)
        own = importer.demangle(absolute)
        if not is_mangled(own) and importer.interned_node(own) is not None:
            return importer.import_module(own)
        if _inside(importer, name, package):
            # Relative to a packaged package: never the installed module of that name.
            raise ModuleNotFoundError(
                f"No module named {own!r} in package {importer.filename!r}: the code "
                "imports it by a computed name, which the exporter cannot see",
                name=importer.mangle(own),
            )
        return importlib.import_module(absolute)

    return import_module


def _find_spec(importer: PackageImporter) -> Callable[..., importlib.machinery.ModuleSpec | None]:
    def find_spec(name: str, package: str | None = None) -> importlib.machinery.ModuleSpec | None:
        absolute = _absolute(name, package)
        own = importer.demangle(absolute)
        if not is_mangled(own) and importer.interned_node(own) is not None:
            return packaged_spec(importer, own)
        if _inside(importer, name, package):
            return None
        return importlib.util.find_spec(absolute)

    return find_spec


# --- importlib.metadata, with the package's own distributions ----------------------


def normalize(name: str) -> str:
    """Distribution names compare as PEP 503 says: case and runs of ``-_.`` do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


class PackagedDistribution(importlib.metadata.Distribution):
    """A distribution interned in a package: the metadata it had at export."""

    def __init__(self, record: InternedDistribution, where: str) -> None:
        self._record = record
        self._where = where

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def packages(self) -> tuple[str, ...]:
        return self._record.packages

    def read_text(self, filename: str) -> str | None:
        if filename in ("METADATA", "PKG-INFO"):
            return self._record.metadata
        if filename == "top_level.txt":
            return "".join(f"{package}\n" for package in self._record.packages)
        return None

    def locate_file(self, path: Any) -> Any:  # nothing is on disk: a path for messages
        return PurePosixPath(self._where, str(path))

    def __repr__(self) -> str:
        return f"<PackagedDistribution {self._record.name} {self._record.version}>"


def _metadata(packaged: Mapping[str, PackagedDistribution]) -> dict[str, Callable[..., Any]]:
    real = importlib.metadata

    def distribution(distribution_name: str) -> importlib.metadata.Distribution:
        found = packaged.get(normalize(distribution_name))
        return found if found is not None else real.distribution(distribution_name)

    def version(distribution_name: str) -> str:
        return distribution(distribution_name).version

    def metadata(distribution_name: str) -> Any:
        return distribution(distribution_name).metadata

    def requires(distribution_name: str) -> list[str] | None:
        return distribution(distribution_name).requires

    def files(distribution_name: str) -> Any:
        return distribution(distribution_name).files

    def distributions(**kwargs: Any) -> Iterable[importlib.metadata.Distribution]:
        if kwargs:  # a search by name or path: what the finders say, packaged first
            name = kwargs.get("name")
            found = packaged.get(normalize(name)) if isinstance(name, str) else None
            if found is not None:
                return iter([found])
            return real.distributions(**kwargs)
        installed = [
            found
            for found in real.distributions()
            if normalize(found.metadata["Name"] or "") not in packaged
        ]
        return iter([*packaged.values(), *installed])

    def packages_distributions() -> Mapping[str, list[str]]:
        table = dict(real.packages_distributions())
        for found in packaged.values():
            for package in found.packages:
                table[package] = [found.name]
        return table

    return {
        "distribution": distribution,
        "version": version,
        "metadata": metadata,
        "requires": requires,
        "files": files,
        "distributions": distributions,
        "packages_distributions": packages_distributions,
    }
