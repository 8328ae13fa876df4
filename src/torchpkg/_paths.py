"""Where things live inside an archive, and the records the exporter writes at close."""

from __future__ import annotations

import platform
import sys
from pathlib import PurePosixPath, PureWindowsPath

from torchpkg._archive import WRITTEN_VERSION, ArchiveWriter
from torchpkg._graph import ModuleNode
from torchpkg._mock import MOCK_MODULE, MOCK_STUB_SOURCE, MOCK_SUPPORT_SOURCE
from torchpkg.policy import Action
from torchpkg.records import ENVIRONMENT_RECORD, SOURCES_RECORD, EnvironmentRecord, SourceMap

__all__ = ["module_path", "record_path", "write_framework_records", "write_module"]


def record_path(package: str, resource: str) -> str:
    if PurePosixPath(resource).is_absolute() or PureWindowsPath(resource).anchor:
        raise ValueError(f"resource {resource!r} must be a relative path, not an absolute one")
    resource = resource.replace("\\", "/")
    if not resource or any(part in ("", ".", "..") for part in resource.split("/")):
        raise ValueError(
            f"resource {resource!r} must be a relative path without empty, '.' or '..' parts"
        )
    package_path = package.replace(".", "/")
    return f"{package_path}/{resource}" if package_path else resource


def module_path(module: str, is_package: bool) -> str:
    base = module.replace(".", "/")
    return f"{base}/__init__.py" if is_package else f"{base}.py"


def write_module(writer: ArchiveWriter, node: ModuleNode) -> None:
    """An interned module's source, or a mocked module's stub (and the stub's support)."""
    if node.action is Action.INTERN and node.source is not None:
        writer.write_record(module_path(node.name, node.is_package), node.source.encode("utf-8"))
    elif node.action is Action.MOCK:
        _write_mock_support(writer)
        writer.write_record(module_path(node.name, node.is_package), MOCK_STUB_SOURCE.encode())
    elif node.mock_support:
        _write_mock_support(writer)


def _write_mock_support(writer: ArchiveWriter) -> None:
    """Once per archive, however many mocks (and re-exported mocks) need it."""
    support = module_path(MOCK_MODULE, False)
    if not writer.has_record(support):
        writer.write_record(support, MOCK_SUPPORT_SOURCE.encode())


def write_framework_records(
    writer: ArchiveWriter, externs: list[str], interned: list[str], sources: SourceMap
) -> EnvironmentRecord:
    """The records under ``.data/`` (and ``byteorder``) that readers look for; returns the
    environment record written."""
    writer.write_record(".data/extern_modules", "".join(f"{name}\n" for name in externs).encode())
    writer.write_record(".data/python_version", platform.python_version().encode())
    writer.write_record(".data/version", f"{WRITTEN_VERSION}\n".encode())
    writer.write_record("byteorder", sys.byteorder.encode())
    record = EnvironmentRecord.of_environment(externs, interned)
    writer.write_record(ENVIRONMENT_RECORD, record.to_json())
    writer.write_record(SOURCES_RECORD, sources.to_json())
    return record
