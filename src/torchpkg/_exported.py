"""``torch.export.ExportedProgram`` inside packages (torch.package cannot save them).

A program is written with ``torch.export.save`` as the record
``.data/exported/<id>.pt2`` and pickled as a reduce_package persistent id whose
loader, :func:`load_exported_program`, is this module's: the loading
environment needs torchpkg installed (it is extern, like torch). Importing this
module does not import torch.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torchpkg.exporter import PackageExporter

__all__ = ["load_exported_program", "reducer"]

Reducer = Callable[[Any, "PackageExporter"], tuple[Any, tuple[str]]]


def is_exported_program(cls: type) -> bool:
    # A dict lookup while torch.export is not loaded (then no such object exists).
    module = sys.modules.get("torch.export.exported_program")
    return module is not None and issubclass(cls, module.ExportedProgram)


def reducer(obj: object) -> Reducer | None:
    """The ``__reduce_package__`` stand-in for ``obj`` if it is an ExportedProgram."""
    return _reduce_exported_program if is_exported_program(type(obj)) else None


def _reduce_exported_program(program: Any, exporter: PackageExporter) -> tuple[Any, tuple[str]]:
    import torch

    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    record = f".data/exported/{exporter.get_unique_id()}.pt2"
    # A framework record: save_binary cannot name paths under ".data/".
    exporter._writer.write_record(record, buffer.getbuffer())
    return (load_exported_program, (record,))


def load_exported_program(importer: Any, record: str) -> Any:
    """Rebuild an ExportedProgram from its record (torchpkg's or torch.package's importer)."""
    import torch

    reader = importer.zip_reader
    # torch.package's readers have get_record; torchpkg's ArchiveReader has read.
    read = getattr(reader, "get_record", None) or reader.read
    return torch.export.load(io.BytesIO(read(record)))
