"""Writing archives record by record with torchpkg's ArchiveWriter (torch-free)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import BinaryIO

from torchpkg._archive import ArchiveWriter


def write_records(
    out: BinaryIO, records: Mapping[str, bytes | memoryview], archive_name: str
) -> None:
    """Write ``records``, in order, as an archive whose top-level folder is ``archive_name``."""
    writer = ArchiveWriter(out, archive_name)
    for name, data in records.items():
        writer.write_record(name, data)
    writer.close()
