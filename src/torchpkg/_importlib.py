"""The loader packaged modules carry as ``__loader__`` / ``__spec__.loader``.

Modules are created and executed by the PackageImporter itself (it must control
mangling and the import hook); this loader answers the questions the rest of
Python asks about them: source (linecache, inspect, TorchScript), whether a
name is a package, and resources (importlib.resources).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import marshal
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable
from types import CodeType
from typing import TYPE_CHECKING, Any

from torchpkg.resources import PackageResourceReader

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    from torchpkg.importer import PackageImporter

__all__ = [
    "PackageLoader",
    "cache_code",
    "cached_code",
    "calc_package",
    "compiled",
    "resolve_name",
    "torch_registry",
]


class PackageLoader(importlib.abc.Loader):
    """importlib's loader protocol for the modules of one PackageImporter."""

    def __init__(self, importer: PackageImporter) -> None:
        self._importer = importer

    def create_module(self, spec: ModuleSpec) -> None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        raise ImportError(
            f"{module.__name__} lives in a package archive and cannot be re-executed "
            "(importlib.reload is not supported); load the package again with a new "
            "PackageImporter.",
            name=module.__name__,
        )

    def get_source(self, fullname: str) -> str | None:
        try:
            return self._importer.get_source(fullname)
        except ValueError:  # the importer was closed: tracebacks show no line, never fail
            return None

    def is_package(self, fullname: str) -> bool:
        return self._importer.is_package(fullname)

    def get_resource_reader(self, fullname: str) -> PackageResourceReader:
        return self._importer.resource_reader(self._importer.demangle(fullname))

    def __repr__(self) -> str:
        return f"<PackageLoader of {self._importer.id()} ({self._importer.filename})>"

    def __reduce__(self) -> Any:
        raise TypeError("a package loader cannot be pickled")


_CODE_CACHE_SIZE = 2048
_code_cache: OrderedDict[tuple[str, str], CodeType] = OrderedDict()
_code_cache_lock = threading.Lock()


def compiled(source: str, record: str, filename: str, origin: str | None = None) -> CodeType:
    """Bytecode for a packaged module, shared by every importer of the same source.

    Each importer needs its own mangled ``co_filename``; relabelling a cached code
    object is far cheaper than compiling again. ``origin`` is the local file the
    source was exported from: where it still holds exactly this source, the
    interpreter's own ``.pyc`` of it saves the compile (interning transformers
    compiles ~250 modules: most of a first load).
    """
    key = (record, source)
    with _code_cache_lock:
        code = _code_cache.get(key)
        if code is not None:
            _code_cache.move_to_end(key)
    if code is None and origin is not None:
        code = _bytecode_of(origin, source.encode("utf-8"))
    if code is None:
        code = compile(source, record, "exec", dont_inherit=True)
        cache_code([(key, code)])
    return _relabel(code, filename)


def cached_code() -> list[tuple[tuple[str, str], CodeType]]:
    """The compiled packaged modules this process holds: ((record, source), code)."""
    with _code_cache_lock:
        return list(_code_cache.items())


def cache_code(entries: Iterable[tuple[tuple[str, str], CodeType]]) -> None:
    """Hold compiled packaged modules for later imports of the same source (the clone
    worker hands its children's compiles to the children after them)."""
    with _code_cache_lock:
        for key, code in entries:
            _code_cache[key] = code
            _code_cache.move_to_end(key)
        while len(_code_cache) > _CODE_CACHE_SIZE:
            _code_cache.popitem(last=False)


def _bytecode_of(path: str, source: bytes) -> CodeType | None:
    """The code in ``path``'s ``__pycache__`` entry, if valid for it and it holds ``source``."""
    try:
        with open(path, "rb") as file:
            if file.read() != source:
                return None
        stat = os.stat(path)
        with open(importlib.util.cache_from_source(path), "rb") as file:
            data = file.read()
    except (OSError, NotImplementedError, ValueError):
        return None
    if data[:4] != importlib.util.MAGIC_NUMBER or len(data) < 16:
        return None
    flags = int.from_bytes(data[4:8], "little")
    if flags & 0b1:  # hash-based pyc
        fresh = data[8:16] == importlib.util.source_hash(source)
    else:
        fresh = int.from_bytes(data[8:12], "little") == int(stat.st_mtime) & 0xFFFFFFFF
        fresh = fresh and int.from_bytes(data[12:16], "little") == stat.st_size & 0xFFFFFFFF
    if not fresh:
        return None
    try:
        code = marshal.loads(data[16:])
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, CodeType) else None


def _relabel(code: CodeType, filename: str) -> CodeType:
    consts = tuple(
        _relabel(const, filename) if isinstance(const, CodeType) else const
        for const in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)


def torch_registry() -> Any:
    """torch's registry of packaged modules (torch.compile and inspect look there)."""
    if "torch" not in sys.modules:
        return None
    try:
        import torch.package.package_importer
    except ImportError:  # torch dropped torch.package: nothing looks there any more
        return None
    return getattr(torch.package.package_importer, "_package_imported_modules", None)


def calc_package(globals: dict[str, Any]) -> str:
    package = globals.get("__package__")
    if package is not None:
        return str(package)
    spec = globals.get("__spec__")
    if spec is not None:
        return str(spec.parent)
    name = str(globals["__name__"])
    return name if "__path__" in globals else name.rpartition(".")[0]


def resolve_name(name: str, package: str | None, level: int) -> str:
    if not package:
        raise ImportError("attempted relative import with no known parent package")
    bits = package.rsplit(".", level - 1)
    if len(bits) < level:
        raise ImportError("attempted relative import beyond top-level package")
    base = bits[0]
    return f"{base}.{name}" if name else base
