"""Which file names a package's modules carry: mangled, materialised, or their local source.

A packaged module's ``__file__`` is mangled by default, as in torch.package. With
``materialize=True`` it names a file of the package's code written to disk (for
libraries that read the files next to them). While coverage.py measures, code
exported from a local file that still holds exactly its source carries that
file's name, so coverage counts its lines there. The same record lets a module
use that file's fresh ``.pyc`` instead of being compiled again.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

from torchpkg._archive_reader import ArchiveReader
from torchpkg._materialize import code_records, materialize
from torchpkg.errors import CoverageNotMeasuredWarning
from torchpkg.mangling import PackageMangler, is_mangled
from torchpkg.records import SOURCES_RECORD, SourceMap

__all__ = ["PackageFiles"]


class PackageFiles:
    """The file names of one importer's modules, and what they take to provide."""

    def __init__(
        self, reader: ArchiveReader, mangler: PackageMangler, filename: str, materialized: bool
    ) -> None:
        self._reader = reader
        self._mangler = mangler
        self._filename = filename
        self.materialized = materialized
        self._tree: Path | None = None  # the materialised tree, once written
        self._sources: SourceMap | None = None
        self.measured: dict[str, str] = {}  # local file -> record, labelled for coverage
        self._unmeasured_said = False

    def module_file(self, record: str) -> str:
        """A module's ``__file__``: its mangled record, or the record in the materialised tree."""
        if self.materialized:
            if self._tree is None:
                self._tree = materialize(self._reader, code_records(self._reader.records()))
            return str(self._tree / record)
        return self._mangler.mangle(record)

    def origin(self, record: str) -> str | None:
        """The local file ``record`` was exported from, as the exporter recorded it."""
        return self.source_map().files.get(record, (None, ""))[0]

    def source_map(self) -> SourceMap:
        if self._sources is None:
            has = self._reader.has_record(SOURCES_RECORD)
            data = self._reader.read(SOURCES_RECORD) if has else None
            self._sources = SourceMap.from_json(data) if data is not None else SourceMap()
        return self._sources

    def measured_file(self, record: str, source: bytes) -> str | None:
        """While coverage.py measures, the local file a module came from, if unchanged.

        Coverage ignores code whose filename starts with ``<`` (every mangled name), so
        packaged code that came from an unchanged local file is labelled with that file
        and its lines count there; other packaged code stays unmeasured, said once.
        """
        coverage = sys.modules.get("coverage")
        if coverage is None or coverage.Coverage.current() is None:
            return None
        local = self.source_map().unchanged_file(record, source)
        if local is not None:
            self.measured[local] = record
        elif not self._unmeasured_said:
            self._unmeasured_said = True
            warnings.warn(
                f"coverage.py is measuring, but packaged code of {self._filename} whose source "
                f"is not an unchanged local file (first: {record}) is not measured; lines "
                "count only for modules exported from files that are still as they were.",
                CoverageNotMeasuredWarning,
                stacklevel=2,
            )
        return local

    def restore_real_names(self, before: dict[str, ModuleType]) -> None:
        """Undo real names bound to copies run from the materialised files.

        Code that loads the files next to it by path (``spec_from_file_location``,
        transformers' ``direct_transformers_import``) runs a second copy of them
        under a real name, e.g. ``sys.modules["transformers"]``; later imports in
        this process must still get the installed module, not that copy.
        """
        if self._tree is None:
            return
        root = str(self._tree) + os.sep
        for name, module in list(sys.modules.items()):
            if before.get(name) is module or is_mangled(name):
                continue
            file = vars(module).get("__file__") if isinstance(module, ModuleType) else None
            if isinstance(file, str) and file.startswith(root):
                if name in before:
                    sys.modules[name] = before[name]
                else:
                    del sys.modules[name]
