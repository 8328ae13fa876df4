"""PackageImporter: loads code and objects from a package, hermetically.

Packaged modules are created by this importer, not by ``sys.meta_path``: each
importer serves them under its own mangle parent (``<torch_package_N>.foo``)
and gives them an ``__import__`` that looks in the archive first and in the
environment only for modules the archive lists as extern. The mangled modules
are also registered in ``sys.modules`` (their names cannot collide with real
ones), which is what ``dataclasses``, ``typing.get_type_hints``, ``inspect``
and TorchScript look them up by; ``close()`` removes them.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.machinery
import importlib.util
import io
import linecache
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, BinaryIO

from torchpkg import _package_imports, _tensors, _torchscript
from torchpkg._archive_reader import ArchiveReader, DirectoryArchiveReader, open_archive
from torchpkg._gc import paused_collection
from torchpkg._importlib import (
    PackageLoader,
    calc_package,
    compiled,
    resolve_name,
    torch_registry,
)
from torchpkg._module_tree import ModuleNode
from torchpkg._package_files import PackageFiles
from torchpkg._package_imports import PackagedDistribution
from torchpkg._paths import record_path
from torchpkg.environment import (
    Importer,
    ModuleSource,
    OrderedImporter,
    SourceStatus,
    sys_importer,
)
from torchpkg.errors import (
    ArchiveFormatError,
    ObjMismatchError,
    ObjNotFoundError,
    PackagedModuleNotFoundError,
)
from torchpkg.file_tree import Directory, directory_from_records
from torchpkg.glob import GlobPattern
from torchpkg.mangling import PackageMangler, is_mangled
from torchpkg.pickling import PackageUnpickler
from torchpkg.records import (
    ENVIRONMENT_RECORD,
    EnvironmentMismatchError,
    EnvironmentMismatchWarning,
    EnvironmentRecord,
)
from torchpkg.resolver import IMPORTER_MODULE
from torchpkg.resources import PackageResourceReader
from torchpkg.security import (
    DEFAULT_LIMITS,
    Allowlist,
    ArchiveLimits,
    PickleGuard,
    check_integrity,
)

# torch.package.importer's names too, so its imports and package_importer's
# both have their counterpart in this module.
__all__ = [
    "IMPLICIT_IMPORT_ALLOWLIST",
    "Importer",
    "ObjMismatchError",
    "ObjNotFoundError",
    "OrderedImporter",
    "PackageImporter",
    "sys_importer",
]

# Importable without an extern entry: torch itself depends on them behind the scenes.
IMPLICIT_IMPORT_ALLOWLIST = frozenset(
    {"numpy", "numpy.core", "numpy.core._multiarray_umath", "builtins"}
)


class PackageImporter(Importer):
    """Open a package archive (a path, a binary file object, or an unzipped folder).

    With ``mmap=True`` (the default) tensors are views of a private copy-on-write
    mapping of the archive: loading costs no copy and untouched weights take no
    memory. Writing to such a tensor never changes the file. Replace an archive
    with a new file (as PackageExporter does), never rewrite it in place, while
    its tensors are alive. ``mmap=False`` reads each storage into memory.

    Where the archive has an environment record (torchpkg writes one), the
    versions of its extern distributions, Python and torch are compared with
    this environment: a difference is an ``EnvironmentMismatchWarning``, or an
    ``EnvironmentMismatchError`` with ``strict_environment=True``.

    Packaged modules' ``__file__`` is mangled, as in torch.package, and names no
    file. With ``materialize=True`` the package's code folders are written once
    to a private, read-only directory named by their content (under
    ``$TORCHPKG_CACHE_DIR``, default ``~/.cache/torchpkg``) and ``__file__`` and
    ``__path__`` point there, for libraries that list or read the files next
    to their modules; names stay mangled and code still runs from the archive.

    With ``allow`` every ``load_pickle`` is safe loading (see ``load_pickle``)
    with these extra ``module.qualname`` patterns allowed; ``allow=[]`` allows
    nothing beyond the defaults. Hostile archives (escaping or colliding names,
    symlinks, zip bombs: see ``limits``) are an ``UnsafeArchiveError`` at open.

    With ``verify=True`` every record is hashed at open and compared with the
    digest manifest torchpkg wrote at export: an ``IntegrityError`` names each
    altered, missing or extra record, and an archive with no manifest (from
    torch.package) is an ``UnverifiedArchiveError``.
    """

    def __init__(
        self,
        file_or_buffer: str | os.PathLike[str] | BinaryIO,
        module_allowed: Callable[[str], bool] = lambda module_name: True,
        *,
        mmap: bool = True,
        strict_environment: bool = False,
        materialize: bool = False,
        allow: Iterable[str] | None = None,
        limits: ArchiveLimits = DEFAULT_LIMITS,
        verify: bool = False,
    ) -> None:
        # Checked first: a bad pattern is the caller's mistake, whatever the archive holds.
        self.allow: Allowlist | None = None if allow is None else Allowlist.of(allow)
        if isinstance(file_or_buffer, (str, os.PathLike)):
            self.filename = os.fspath(file_or_buffer)
        else:
            self.filename = "<binary>"
        self.zip_reader: ArchiveReader = open_archive(file_or_buffer, mmap=mmap, limits=limits)
        try:
            if verify:  # before anything is read from the archive
                check_integrity(self.zip_reader).raise_unless_verified()
            self.extern_modules = self.zip_reader.read_text(".data/extern_modules").split()
            disallowed = [name for name in self.extern_modules if not module_allowed(name)]
            if disallowed:
                raise ImportError(
                    f"package '{self.filename}' needs the external modules {disallowed} but "
                    "module_allowed disallows them; allow them, or re-export the package with "
                    "those modules interned or mocked."
                )
            self._root = ModuleNode.from_archive(self.zip_reader.records(), self.extern_modules)
            self._check_environment(strict_environment)
        except BaseException:
            self.zip_reader.close()
            raise
        self._distributions: dict[str, PackagedDistribution] | None = None
        self._mangler = PackageMangler()
        self._files = PackageFiles(self.zip_reader, self._mangler, self.filename, materialize)
        # local file -> record: code labelled with the file it came from, for coverage.py
        self.measured_files = self._files.measured
        self._loader = PackageLoader(self)
        self._lock = threading.RLock()
        self._depth = 0
        self._torch_pending: list[tuple[str, ModuleType]] = []
        self.modules: dict[str, ModuleType] = {}
        self.patched_builtins = dict(builtins.__dict__, __import__=self.__import__)
        # Packaged code reaches its importer with `import torch_package_importer`.
        self.modules[IMPORTER_MODULE] = self  # type: ignore[assignment]
        self.storage_context: Any = None
        self.last_map_location: Any = None
        _package_imports.register(self)

    # --- public API -----------------------------------------------------------------

    def import_module(self, name: str, package: str | None = None) -> ModuleType:
        """Import a module from the package (a name mangled by this importer is fine)."""
        del package  # importlib.import_module's signature; names here are absolute
        with self._transaction():
            return self._gcd_import(self._mangler.demangle(name))

    def load_pickle(
        self, package: str, resource: str, map_location: Any = None, *, safe: bool | None = None
    ) -> Any:
        """Unpickle ``package/resource``, importing its classes from the package.

        Safe loading (``safe=True``, the default when the importer was given
        ``allow``) lets the pickle reach only what the package defines, tensor
        rebuilders, curated builtins and torch types, and the ``allow`` patterns;
        anything else is an ``UnsafePickleError`` before any of the pickle runs.
        """
        path = self._record(package, resource)
        data = self.zip_reader.read(path)
        guard = None
        if safe or (safe is None and self.allow is not None):
            guard = PickleGuard(path, data, self, self.allow or Allowlist())
            guard.check_pickle()
        torch: Any = sys.modules.get("torch")
        restore: _tensors.RestoreLocation | None = None
        storages: dict[str, Any] = {}
        reduces: dict[Any, Any] = {}
        views = self.zip_reader.views()
        script_loader: _torchscript.ScriptLoader | None = None  # made for a ScriptModule

        def persistent_load(saved_id: Any) -> Any:
            nonlocal torch, restore, script_loader
            kind = saved_id[0].decode() if isinstance(saved_id[0], bytes) else saved_id[0]
            if kind == "storage":
                if torch is None:
                    import torch
                if restore is None:
                    restore = _tensors.restore_location(torch, map_location)
                storage_type, key, location, _size = saved_id[1:]
                key = str(key)  # torch.package pickles int keys, torchpkg str keys
                dtype = _tensors.storage_dtype(torch, storage_type)
                if key not in storages:
                    view = views.view(f".data/{key}.storage")
                    location = location.decode() if isinstance(location, bytes) else location
                    storages[key] = restore(_tensors.load_storage(torch, view), location)
                return torch.storage.TypedStorage(
                    wrap_storage=storages[key], dtype=dtype, _internal=True
                )
            if kind == "reduce_package":
                # torch's ScriptModule loader needs torch.package's reader: use ours instead.
                func = saved_id[-2]
                if _torchscript.is_unpackage_script_module(func):
                    if script_loader is None:
                        script_loader = _torchscript.ScriptLoader(
                            self.zip_reader, storages, map_location
                        )
                    func = script_loader
                if len(saved_id) == 3:  # archives from before reduce ids were recorded
                    return func(self, *saved_id[2])
                reduce_id, _, args = saved_id[1:]
                if reduce_id not in reduces:
                    reduces[reduce_id] = func(self, *args)
                return reduces[reduce_id]
            raise ArchiveFormatError(
                f"{path} in {self.filename} holds an unknown persistent id {kind!r}; it was "
                "written by a newer or different tool."
            )

        unpickler = PackageUnpickler(io.BytesIO(data), self, persistent_load, guard)
        self.last_map_location = map_location
        try:
            # Thousands of objects rebuilt stay alive: collecting on the way walks them
            # again and again (a tenth of loading a model of 5,000 tensors).
            with self._transaction(), paused_collection():
                result = unpickler.load()
        finally:
            self.last_map_location = None
        if torch is not None:
            torch._utils._validate_loaded_sparse_tensors()
            self._flush_torch_registry()
        return result

    def load_binary(self, package: str, resource: str) -> bytes:
        return self.zip_reader.read(self._record(package, resource))

    def load_text(
        self, package: str, resource: str, encoding: str = "utf-8", errors: str = "strict"
    ) -> str:
        return self.load_binary(package, resource).decode(encoding, errors)

    def get_resource_reader(self, fullname: str) -> PackageResourceReader | None:
        """importlib's resource reader for the packaged package ``fullname`` (its name
        mangled or not), as torch.package answers: ``None`` for a module the package
        does not serve (missing, or extern), ``TypeError`` for one that is no package.
        """
        name = self._mangler.demangle(fullname)
        node = self.interned_node(name)
        if node is None:
            return None
        if not node.is_package:
            raise TypeError(f"{name!r} is not a package")
        return self.resource_reader(name)

    def resource_reader(self, name: str) -> PackageResourceReader:
        """The reader of the files below ``name``'s folder in the archive, unchecked
        (the modules' loader hands it to importlib.resources)."""
        # In an unzipped package the resources are files: resource_path finds them.
        folder = self.filename if isinstance(self.zip_reader, DirectoryArchiveReader) else None
        return PackageResourceReader(
            self.zip_reader, name.replace(".", "/"), archive=self.filename, folder=folder
        )

    def file_structure(
        self,
        *,
        include: GlobPattern = "**",
        exclude: GlobPattern = (),
        include_private: bool = False,
    ) -> Directory:
        """A printable tree of the archive's records, filtered by glob patterns.

        torchpkg's own records (``.data/torchpkg/``: environment, sources,
        manifest) are private metadata, shown only with ``include_private=True``:
        the tree is the one torch.package shows for the same export.
        """
        return directory_from_records(
            self.filename,
            self.zip_reader.records(),
            include,
            exclude,
            include_private=include_private,
        )

    def id(self) -> str:
        """This importer's mangle parent, e.g. ``<torch_package_0>``."""
        return self._mangler.parent_name()

    def python_version(self) -> str | None:
        """The Python version that wrote the package, if it recorded one."""
        if not self.zip_reader.has_record(".data/python_version"):
            return None
        return self.zip_reader.read_text(".data/python_version").strip()

    def environment(self) -> EnvironmentRecord | None:
        """The environment the package was exported in, if it recorded one (torchpkg does)."""
        if not self.zip_reader.has_record(ENVIRONMENT_RECORD):
            return None
        return EnvironmentRecord.from_json(self.zip_reader.read(ENVIRONMENT_RECORD))

    def _check_environment(self, strict: bool) -> None:
        record = self.environment()
        mismatches = record.mismatches() if record is not None else []
        if not mismatches:
            return
        if strict:
            raise EnvironmentMismatchError(self.filename, mismatches)
        warnings.warn(EnvironmentMismatchWarning(self.filename, mismatches), stacklevel=3)

    def demangle(self, name: str) -> str:
        return self._mangler.demangle(name)

    def mangle(self, name: str) -> str:
        return self._mangler.mangle(name)

    def interned_node(self, name: str) -> ModuleNode | None:
        """The archive's node for ``name`` if the package serves it (not extern)."""
        node = self._find(name)
        return node if node is not None and not node.extern else None

    def module_file(self, node: ModuleNode) -> str | None:
        """The ``__file__`` of a packaged module: mangled, or in the materialised tree."""
        return None if node.source_file is None else self._files.module_file(node.source_file)

    def interned_distributions(self) -> dict[str, PackagedDistribution]:
        """The distributions the package interns, by normalised name, as its code sees them."""
        if self._distributions is None:
            record = self.environment()
            self._distributions = {
                _package_imports.normalize(name): PackagedDistribution(dist, self.filename)
                for name, dist in (record.interned.items() if record is not None else ())
            }
        return self._distributions

    def close(self) -> None:
        """Forget this importer's modules (sys.modules, linecache, torch's registry)."""
        with self._lock:
            for name in list(self.modules):
                self._forget(name)
            _package_imports.unregister(self)
            self.zip_reader.close()

    def __enter__(self) -> PackageImporter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the Importer protocol, for re-export -------------------------------------

    def module_source(self, module_name: str) -> ModuleSource:
        node = self._find(self._mangler.demangle(module_name))
        if node is None or node.extern:
            return ModuleSource(module_name, SourceStatus.NOT_FOUND)
        if node.source_file is None:
            return ModuleSource(module_name, SourceStatus.OK, True)
        source = self.zip_reader.read(node.source_file).decode("utf-8")
        return ModuleSource(module_name, SourceStatus.OK, node.is_package, source, node.source_file)

    def get_source(self, module_name: str) -> str | None:
        return self.module_source(module_name).source

    def is_package(self, module_name: str) -> bool:
        node = self._find(self._mangler.demangle(module_name))
        return node is not None and node.is_package

    # --- archive layout -----------------------------------------------------------

    def _find(self, name: str) -> ModuleNode | None:
        return self._root.find(name)

    def _record(self, package: str | ModuleType, resource: str) -> str:
        if isinstance(package, ModuleType):
            package = self._mangler.demangle(package.__name__)
        return record_path(package, resource)

    # --- the import system --------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """Undo every module the outermost import call added, if it fails."""
        with self._lock:
            before = set(self.modules) if self._depth == 0 else None
            real = dict(sys.modules) if self._depth == 0 and self._files.materialized else None
            self._depth += 1
            try:
                yield
            except BaseException:
                if before is not None:
                    for name in [name for name in self.modules if name not in before]:
                        self._forget(name)
                raise
            finally:
                self._depth -= 1
                if real is not None:
                    self._files.restore_real_names(real)

    def __import__(
        self,
        name: str,
        globals: dict[str, Any] | None = None,
        locals: dict[str, Any] | None = None,
        fromlist: tuple[str, ...] | list[str] = (),
        level: int = 0,
    ) -> ModuleType:
        with self._transaction():
            package = calc_package(globals or {}) if level > 0 else None
            if level == 0 and is_mangled(name):
                name = self._mangler.demangle(name)
                if is_mangled(name):  # another importer's module: importlib finds its owner
                    return importlib.import_module(name)
            module = self._gcd_import(name, package, level)
            if fromlist:
                return self._handle_fromlist(module, fromlist)
            if level == 0:
                return self._gcd_import(name.partition(".")[0])
            if not name:
                return module
            own = self._mangler.demangle(module.__name__)
            return self.modules[own[: len(own) - (len(name) - len(name.partition(".")[0]))]]

    def _gcd_import(self, name: str, package: str | None = None, level: int = 0) -> ModuleType:
        if level > 0:
            name = resolve_name(name, package, level)
        module = self.modules.get(name)
        if module is not None:
            return module
        parent = name.rpartition(".")[0]
        if parent:
            parent_module = self._gcd_import(parent)
            if name in self.modules:
                return self.modules[name]
            if not hasattr(parent_module, "__path__"):
                extern = self._find(name)
                if extern is not None and extern.extern:
                    # os.path, torch._C._nn: submodules of modules that are not packages,
                    # which only the environment's import system knows how to reach.
                    return self._load(name)
                raise PackagedModuleNotFoundError(
                    f"No module named {name!r}: {parent!r} is not a package", name=name
                )
        module = self._load(name)
        if parent:
            setattr(self.modules[parent], name.rpartition(".")[2], module)
        return module

    def _handle_fromlist(
        self, module: ModuleType, fromlist: tuple[str, ...] | list[str], recursive: bool = False
    ) -> ModuleType:
        if not hasattr(module, "__path__"):
            return module
        own = self._mangler.demangle(module.__name__)
        for attr in fromlist:
            if not isinstance(attr, str):
                raise TypeError(f"Item in {own}.__all__ must be str, not {type(attr).__name__}")
            if attr == "*":
                if not recursive and hasattr(module, "__all__"):
                    self._handle_fromlist(module, module.__all__, recursive=True)
            elif not hasattr(module, attr):
                try:
                    self._gcd_import(f"{own}.{attr}")
                except ModuleNotFoundError as error:
                    # `from pkg import name` where name is neither attribute nor module:
                    # Python raises ImportError at the IMPORT_FROM that follows.
                    if error.name != f"{own}.{attr}":
                        raise
        return module

    def _load(self, name: str) -> ModuleType:
        node = self._find(name)
        if (node is not None and node.extern) or (
            node is None and name in IMPLICIT_IMPORT_ALLOWLIST
        ):
            if name in _package_imports.FACADES:
                module = _package_imports.facade(self, name)
            else:
                module = importlib.import_module(name)
            self.modules[name] = module
            if name == "torch" or name.startswith("torch."):
                self._flush_torch_registry()
            return module
        if node is None:
            raise PackagedModuleNotFoundError(
                f"No module named {name!r} in package {self.filename!r}, and it is not one of "
                f"the package's extern modules {self.extern_modules}. Re-export the package "
                f"with {name!r} interned (its source goes in) or externed.",
                name=name,
            )
        return self._make_module(name, node)

    def _make_module(self, name: str, node: ModuleNode) -> ModuleType:
        mangled = self._mangler.mangle(name)
        spec = importlib.machinery.ModuleSpec(
            name, self._loader, origin="<package_importer>", is_package=node.is_package
        )
        module = importlib.util.module_from_spec(spec)
        module.__name__ = mangled
        namespace = module.__dict__
        file = self.module_file(node)
        if self._files.materialized and node.is_package and file is not None:
            module.__path__ = [os.path.dirname(file)]
        namespace.update(
            __file__=file,
            __cached__=None,
            __builtins__=self.patched_builtins,
            __torch_package__=True,
        )
        self.modules[name] = module
        sys.modules[mangled] = module
        self._torch_pending.append((mangled, module))
        if "torch" in sys.modules:
            self._flush_torch_registry()
        if node.source_file is not None and file is not None:
            raw = self.zip_reader.read(node.source_file)
            source = raw.decode("utf-8")
            code_file = self._files.measured_file(node.source_file, raw) or file
            if code_file == file and not self._files.materialized:
                # Tracebacks and inspect read the source from here.
                lines = source.splitlines(keepends=True)
                linecache.cache[file] = (len(source), None, lines, file)
            origin = self._files.origin(node.source_file)
            exec(compiled(source, node.source_file, code_file, origin), namespace)
        replaced = sys.modules.get(mangled)
        if replaced is not None and replaced is not module:
            # `sys.modules[__name__] = LazyModule(...)`: importers hand out the replacement.
            module = self.modules[name] = replaced
            self._torch_pending.append((mangled, module))
            self._flush_torch_registry()
        return module

    def _forget(self, name: str) -> None:
        module = self.modules.pop(name, None)
        mangled = self._mangler.mangle(name)
        if module is None or module.__dict__.get("__name__") != mangled:
            return  # extern: the environment's module, not ours to forget
        if sys.modules.get(mangled) is module:
            del sys.modules[mangled]
        node = self._find(name)
        if node is not None and node.source_file is not None:
            linecache.cache.pop(self._mangler.mangle(node.source_file), None)
        registry = torch_registry()
        if registry is not None and registry.get(mangled) is module:
            del registry[mangled]
        parent, _, child = name.rpartition(".")
        # A lazy module's __getattr__ may import on a miss: look in its dict only.
        holder = self.modules.get(parent) if parent else None
        if holder is not None and holder.__dict__.get(child) is module:
            delattr(holder, child)

    def _flush_torch_registry(self) -> None:
        registry = torch_registry()
        if registry is None:
            return
        for mangled, module in self._torch_pending:
            registry[mangled] = module
        self._torch_pending.clear()

    def __repr__(self) -> str:
        return f"<PackageImporter {self.id()} of {self.filename!r}>"
