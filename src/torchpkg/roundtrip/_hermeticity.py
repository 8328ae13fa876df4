"""Why packaged code failed where the original did not: the operation that is not hermetic.

Interned libraries fail deep inside their own code, with errors that name no
cause (``FileNotFoundError: '<torch_package_3>.transformers/models'``). This
walks the exception's chain, recognises the operations that reach outside a
package (files next to ``__file__``, imports the package cannot serve,
metadata lookups, registries that already hold a name) and places each at the
innermost line of packaged code that ran it.
"""

from __future__ import annotations

import enum
import importlib.metadata
import traceback
from collections.abc import Iterator
from dataclasses import dataclass

from torchpkg._materialize import packaged_record
from torchpkg.mangling import demangle, is_mangled, mentions_mangled

__all__ = ["NotHermetic", "Operation", "not_hermetic", "packaged_location"]


class Operation(enum.Enum):
    FILE_ACCESS = "file-system access next to __file__"
    IMPORT_BYPASS = "an import the package cannot serve"
    METADATA = "a distribution metadata lookup"
    REGISTRY = "a registry collision"


@dataclass(frozen=True)
class NotHermetic:
    operation: Operation
    location: str | None  # record:line of the innermost packaged frame
    detail: str
    next_step: str


def packaged_location(error: BaseException) -> str | None:
    """``transformers/utils/import_utils.py:3240``: the innermost packaged frame."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        record = packaged_record(frame.filename)
        if record is not None:
            return f"{record}:{frame.lineno}"
    return None


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def not_hermetic(error: BaseException) -> NotHermetic | None:
    """The innermost error of the chain that an operation outside the package explains."""
    found = None
    for link in _chain(error):
        classified = _classify(link)
        if classified is not None:
            found = classified  # later links are the causes: keep the deepest
    return found


def _classify(error: BaseException) -> NotHermetic | None:
    where = packaged_location(error)
    if isinstance(error, importlib.metadata.PackageNotFoundError):
        name = error.args[0] if error.args else "?"
        return NotHermetic(
            Operation.METADATA,
            where,
            f"importlib.metadata found no distribution {name!r}: the package does not "
            "intern it and this environment does not have it installed",
            f"install {name} where the package loads, or intern its modules so the package "
            "records its metadata.",
        )
    if isinstance(error, OSError) and error.filename is not None:
        filename = str(error.filename)
        if is_mangled(filename) or packaged_record(filename) is not None:
            writing = isinstance(error, PermissionError)
            verb = "writes" if writing else "reads or lists"
            step = (
                "packaged files are read-only: make the code write somewhere else (a "
                "temporary or cache directory)."
                if writing
                else "load with PackageImporter(..., materialize=True) so the files next to "
                "packaged modules exist (the roundtrip does when the package interns a "
                "library); if the file itself is missing, save it beside the module with "
                "exporter.save_binary(package, name, data)."
            )
            return NotHermetic(
                Operation.FILE_ACCESS,
                where,
                f"the code {verb} {demangle(filename)!r} next to its own module "
                f"({type(error).__name__})",
                step,
            )
    if isinstance(error, ImportError) and (
        mentions_mangled(str(error)) or (error.name is not None and is_mangled(error.name))
    ):
        missing = demangle(error.name) if error.name else None
        what = f"{missing!r}" if missing else "a module"
        return NotHermetic(
            Operation.IMPORT_BYPASS,
            where,
            f"the code imports {what} at run time (importlib or a lazy module's "
            f"__getattr__), and the package lacks it: {demangle(str(error))}",
            f"make the exporter take it: intern {missing or 'the module'} explicitly "
            "(exporter.save_module(name) or add_dependency(name)), since no import "
            "statement names it.",
        )
    text = str(error)
    if isinstance(error, (ValueError, KeyError)) and "already" in text and where is not None:
        return NotHermetic(
            Operation.REGISTRY,
            where,
            f"a registry already holds this name: {text}",
            "the packaged code registers into a registry of an extern library that the "
            "original registered into first; intern the library that owns the registry, "
            "or register under a name that does not collide.",
        )
    return None
