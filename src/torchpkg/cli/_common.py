"""What every command shares: exit statuses, input errors, output, the package view."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from torchpkg._archive_reader import ArchiveReader, open_archive
from torchpkg._mock import MOCK_MODULE, MOCK_STUB_SOURCE, MOCK_SUPPORT_SOURCE
from torchpkg.errors import TorchpkgError
from torchpkg.security import is_pickle_record

__all__ = [
    "FINDINGS",
    "OK",
    "USAGE",
    "CommandError",
    "PackagedModule",
    "emit_json",
    "extern_modules",
    "human_bytes",
    "is_module_name",
    "modules_of_this_folder",
    "open_package",
    "packaged_modules",
    "pickle_records",
    "storage_records",
]

OK: Final = 0
FINDINGS: Final = 1  # findings, a failed verification, differences
USAGE: Final = 2  # bad arguments or input


class CommandError(TorchpkgError):
    """Input a command cannot work with (exit status 2); the message says what to do."""


def emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def is_module_name(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


@contextmanager
def modules_of_this_folder() -> Iterator[None]:
    """Find modules from the current folder too, as ``python -m`` would, while a command runs."""
    folder = os.getcwd()
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


def open_package(path: str) -> ArchiveReader:
    """Open PKG, saying clearly when it is not there (rather than "not a zip")."""
    if not os.path.exists(path):
        raise CommandError(f"{path}: no such file or folder; pass a package (.pt) or its folder")
    return open_archive(path)


@dataclass(frozen=True)
class PackagedModule:
    name: str
    record: str
    is_package: bool
    mocked: bool  # a stub that raises on use, written by mock()


def packaged_modules(reader: ArchiveReader) -> list[PackagedModule]:
    """The archive's modules by name (TorchScript's code under .data/ is not Python's)."""
    modules = []
    for record in reader.records():
        if not record.endswith(".py") or record.startswith(".data/"):
            continue
        parts = record[:-3].split("/")
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        size = reader.record_size(record)
        if name == MOCK_MODULE and size == len(MOCK_SUPPORT_SOURCE.encode()):
            continue  # the support code of mocked modules, not a module of the user's
        mocked = size == len(MOCK_STUB_SOURCE.encode()) and (
            reader.read(record).decode("utf-8", "replace") == MOCK_STUB_SOURCE
        )
        modules.append(PackagedModule(name, record, is_package, mocked))
    return sorted(modules, key=lambda module: module.name)


def extern_modules(reader: ArchiveReader) -> list[str]:
    if not reader.has_record(".data/extern_modules"):
        return []
    return reader.read_text(".data/extern_modules").split()


def python_version(reader: ArchiveReader) -> str | None:
    """The Python version the package was written with, where it records one."""
    if not reader.has_record(".data/python_version"):
        return None
    return reader.read_text(".data/python_version").strip()


def storage_records(reader: ArchiveReader) -> list[str]:
    return [r for r in reader.records() if r.startswith(".data/") and r.endswith(".storage")]


def pickle_records(reader: ArchiveReader) -> list[str]:
    return [record for record in reader.records() if is_pickle_record(reader, record)]
