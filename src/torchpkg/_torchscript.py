"""TorchScript modules inside packages, in torch.package's layout.

A ScriptModule pickles itself with ``__reduce_package__``: it asks the exporter
for ``script_module_serializer`` and writes its code and constants under
``.data/ts_code/<id>/`` and ``.data/ts_code/code/``, and its tensors as
``.data/<n>.storage``, the same records plain pickled tensors use. torch's
serializer can only write into a ``torch._C.PyTorchFileWriter``, so it writes
into a side archive whose records are copied into ours at close.

Only imported once torch objects are being saved or loaded.
"""

from __future__ import annotations

import io
import re
import sys
import tempfile
import weakref
from collections.abc import Iterable
from typing import Any, BinaryIO, cast

from torchpkg._archive import ArchiveWriter
from torchpkg._archive_reader import ArchiveReader, ZipArchiveReader

__all__ = [
    "GATE_MESSAGE",
    "ScriptArchive",
    "ScriptLoader",
    "is_script_module",
    "is_unpackage_script_module",
]

GATE_MESSAGE = (
    "Serializing ScriptModules directly into a package is a beta feature, as in "
    "torch.package. To use it, set `torchpkg.exporter._gate_torchscript_serialization` "
    "to False before saving."
)

_STORAGE_RECORD = re.compile(r"\.data/(\d+)\.storage")
# Records the side writer adds for itself; ours has its own version and byteorder.
_SIDE_ONLY = ("version", "byteorder", ".data/version", ".data/serialization_id")


def is_script_module(obj: object) -> bool:
    """What torch.package gates: a ScriptModule made by script, trace or jit.load."""
    script = sys.modules.get("torch.jit._script")
    return script is not None and isinstance(obj, script.RecursiveScriptModule)


def is_unpackage_script_module(func: object) -> bool:
    """Whether a reduce_package loader is torch's, which needs torch.package's importer."""
    script = sys.modules.get("torch.jit._script")
    return script is not None and func is getattr(script, "unpackage_script_module", None)


class ScriptArchive:
    """torch's ScriptModuleSerializer over a side archive, for one export.

    The serializer names every storage it meets by a shared storage context,
    and so do tensors pickled from then on. The storages the exporter wrote
    before (keys 0, 1, ... in order) are registered first, so they keep their
    numbers and a storage shared by a ScriptModule and a pickled tensor has one
    key and one record.
    """

    def __init__(self, written_storages: Iterable[tuple[str, Any]]) -> None:
        import torch

        # A temporary file rather than memory: the side archive holds the weights.
        self._file: BinaryIO = cast(BinaryIO, tempfile.TemporaryFile())  # noqa: SIM115
        # An export abandoned before close() still closes (and so deletes) the file.
        self._finalizer = weakref.finalize(self, self._file.close)
        self._writer = torch._C.PyTorchFileWriter(self._file)
        self.serializer = torch._C.ScriptModuleSerializer(self._writer)
        self.storage_context = self.serializer.storage_context()
        for key, storage in written_storages:  # (key, storage) in the order written
            number = self.storage_context.get_or_add_storage(storage)
            if str(number) != key:  # the context numbers from 0 in order of addition
                raise RuntimeError(
                    f"torch's storage context numbered storage {key} as {number}; "
                    "torchpkg cannot share storage keys with TorchScript in this torch version"
                )

    def storage_key(self, untyped: Any) -> str:
        """The key of a storage, shared with the ScriptModules of this export."""
        return str(self.storage_context.get_or_add_storage(untyped))

    def copy_into(self, writer: ArchiveWriter) -> None:
        """Finish the side archive and copy its TorchScript records into ``writer``.

        A storage the exporter already wrote (a tensor pickled after the
        ScriptModule met it) is not copied twice.
        """
        self.serializer.write_files()
        self._writer.write_end_of_file()
        self._file.seek(0)
        with ZipArchiveReader(self._file, mmap=True) as side:
            views = side.views()
            for name in side.records():
                if name in _SIDE_ONLY or writer.has_record(name):
                    continue
                writer.write_record(name, views.view(name))

    def close(self) -> None:
        self._finalizer()


class ScriptLoader:
    """Loads the ScriptModules of one ``load_pickle`` call.

    Stands in for ``torch.jit._script.unpackage_script_module``, which needs
    torch.package's importer (a ``PyTorchFileReader``). Storages are shared
    both ways through one deserialization context: those the pickle loaded
    before go into it, and those TorchScript loaded go into ``storages`` for
    the tensors pickled after.
    """

    def __init__(self, archive: ArchiveReader, storages: dict[Any, Any], map_location: Any) -> None:
        import torch

        self._torch: Any = torch
        self._archive = archive
        self._storages = storages
        self._map_location = map_location
        self._context = torch._C.DeserializationStorageContext()
        self._reader: Any = None

    def __call__(self, importer: object, script_module_id: str) -> Any:
        del importer  # the reduce_package signature; the reader is ours
        torch = self._torch
        # Same rule as torch.package: TorchScript takes a device, not a mapping.
        device = torch.jit._script.validate_map_location(self._map_location)
        for key, storage in list(self._storages.items()):
            name = f"{key}.storage"
            if not self._context.has_storage(name):
                empty = torch.empty(0, dtype=torch.uint8, device=storage.device)
                self._context.add_storage(name, empty.set_(storage))
        if self._reader is None:
            self._reader = _torch_reader(torch, self._archive)
        cpp_module = torch._C._import_ir_module_from_package(
            torch._C.CompilationUnit(),
            self._reader,
            self._context,
            device,
            str(script_module_id),
        )
        self._share_loaded_storages()
        return torch.jit._recursive.wrap_cpp_module(cpp_module)

    def _share_loaded_storages(self) -> None:
        for record in self._archive.records():
            match = _STORAGE_RECORD.fullmatch(record)
            if match is None:
                continue
            number = match.group(1)
            name = f"{number}.storage"
            if number in self._storages or not self._context.has_storage(name):
                continue
            storage = self._context.get_storage(name, self._torch.uint8).untyped_storage()
            self._storages[number] = storage


def _torch_reader(torch: Any, archive: ArchiveReader) -> Any:
    """A ``PyTorchFileReader`` over the same archive, for torch's TorchScript loader."""
    if isinstance(archive, ZipArchiveReader):
        # A path torch opens itself; a caller's file object is shared (it has no path).
        if archive._owns_file:
            return torch._C.PyTorchFileReader(archive.name)
        archive._file.seek(0)  # torch reads the zip from the current position on
        return torch._C.PyTorchFileReader(archive._file)
    # An unzipped package: zip its framework records in memory for torch.
    buffer = io.BytesIO()
    writer = ArchiveWriter(buffer)
    for name in archive.records():
        if name.startswith(".data/"):
            writer.write_record(name, archive.read_view(name))
    if not writer.has_record(".data/version"):
        writer.write_record(".data/version", f"{archive.version()}\n".encode())
    writer.close()
    buffer.seek(0)
    return torch._C.PyTorchFileReader(buffer)
