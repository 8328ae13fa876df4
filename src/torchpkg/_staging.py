"""Where an export is written until it succeeds: nothing reaches the target before.

A path target gets a temp file in the same folder (so the final rename is atomic
and cannot cross file systems), fsynced and renamed over the target on commit.
A file-object target gets a spooled temp file, copied into it on commit.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from pathlib import Path
from typing import IO, BinaryIO, cast

__all__ = ["StagedTarget"]

_SPOOL_BYTES = 64 << 20


class StagedTarget:
    """A temp file standing in for the export's target until ``commit()``."""

    def __init__(self, target: str | os.PathLike[str] | BinaryIO) -> None:
        self._path: Path | None = None
        self._file: BinaryIO | None = None
        self._temp: IO[bytes]
        if isinstance(target, (str, os.PathLike)):
            self._path = Path(target)
            folder = self._path.parent
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"cannot write {self._path}: folder {folder} does not exist"
                )
            self._temp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - owned until commit/discard
                dir=folder, prefix=f".{self._path.name}.", suffix=".tmp", delete=False
            )
            # Dropped without commit() or discard(): the temp file must not stay behind.
            self._cleanup = weakref.finalize(self, _remove, self._temp)
            self.archive_name = self._path.stem or "archive"
        else:
            if not hasattr(target, "write"):
                raise TypeError(
                    "f must be a path or a writable binary file object, "
                    f"not {type(target).__name__}"
                )
            self._file = target
            self._temp = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
            self.archive_name = "archive"

    @property
    def file(self) -> BinaryIO:
        return cast(BinaryIO, self._temp)

    def commit(self) -> None:
        self._temp.flush()
        if self._path is not None:
            os.fsync(self._temp.fileno())
            self._temp.close()
            os.replace(self._temp.name, self._path)
            self._cleanup.detach()
            return
        assert self._file is not None
        self._temp.seek(0)
        while chunk := self._temp.read(_SPOOL_BYTES):
            self._file.write(chunk)
        self._temp.close()

    def discard(self) -> None:
        if self._path is not None:
            self._cleanup()
        else:
            self._temp.close()


def _remove(temp: IO[bytes]) -> None:
    temp.close()
    Path(temp.name).unlink(missing_ok=True)
