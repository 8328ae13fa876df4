"""Changing an archive after export, as a tool that knows nothing of manifests would.

The archive is read and written again with Python's zipfile: records keep their
top-level folder and their order (their 64-byte alignment is lost, which
readers do not need), and the manifest is left as it was.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

Records = dict[str, bytes]  # named without the top-level folder


def read_records(path: Path) -> tuple[str, Records]:
    """The archive's top-level folder (with its slash) and its records, in order."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        prefix = names[0].partition("/")[0] + "/"
        return prefix, {name[len(prefix) :]: zf.read(name) for name in names}


def tamper(path: Path, change: Callable[[Records], None]) -> None:
    """Rewrite the archive at ``path`` after ``change`` edited its records in place."""
    prefix, records = read_records(path)
    change(records)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in records.items():
            zf.writestr(prefix + name, data)


def replace(path: Path, record: str, data: bytes) -> None:
    """Give ``record`` new bytes, or add it at the end if the archive has none by that name."""
    tamper(path, lambda records: records.__setitem__(record, data))


def remove(path: Path, record: str) -> None:
    tamper(path, lambda records: records.__delitem__(record))
