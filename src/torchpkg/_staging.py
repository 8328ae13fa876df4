"""Where an export is written until it succeeds: nothing reaches the target before.

A path target gets a temp file in the same folder (so the final rename is atomic
and cannot cross file systems), fsynced and renamed over the target on commit.
It is named ``.<target name>.<8 random characters>.tmp`` and its writer holds an
exclusive lock on it: an export killed outright (SIGKILL runs no cleanup) leaves
it behind, unlocked, and the next export to the same target removes it.

A file-object target gets a spooled temp file (anonymous once on disk: nothing
stays behind), copied into it on commit; if that copy fails, what it appended to
the file is cut off again where the file allows it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import sys
import tempfile
import weakref
from pathlib import Path
from typing import IO, BinaryIO, cast

__all__ = ["StagedTarget", "stale_temp_files"]

_SPOOL_BYTES = 64 << 20
# Thousands of small records go out in a few large writes, not a system call each;
# a write larger than this bypasses the buffer (large storages are never copied).
_BUFFER = 1 << 20


class StagedTarget:
    """A temp file standing in for the export's target until ``commit()``."""

    def __init__(self, target: str | os.PathLike[str] | BinaryIO, *, durable: bool = True) -> None:
        self._durable = durable
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
            self._temp_path, self._temp = _create_temp(self._path)
            # Dropped without commit() or discard(): the temp file must not stay behind.
            self._cleanup = weakref.finalize(self, _remove, self._temp, self._temp_path)
            for stale in stale_temp_files(self._path):
                with contextlib.suppress(OSError):  # removed meanwhile by another export
                    stale.unlink()
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
            if self._durable:  # on disk before the rename: a power cut leaves old or new
                os.fsync(self._temp.fileno())
            with contextlib.suppress(OSError):  # the target's mode, as rewriting it keeps it
                os.chmod(self._temp_path, stat.S_IMODE(os.stat(self._path).st_mode))
            self._temp.close()
            os.replace(self._temp_path, self._path)
            self._cleanup.detach()
            return
        assert self._file is not None
        start = _appending_at(self._file)
        try:
            self._temp.seek(0)
            while chunk := self._temp.read(_SPOOL_BYTES):
                view = memoryview(chunk)
                while view:  # raw streams may take part of a buffer per call
                    written = self._file.write(view)
                    view = view[len(view) if written is None else written :]
        except BaseException:
            if start is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._file.seek(start)
                    self._file.truncate()
            raise
        finally:
            self._temp.close()

    def discard(self) -> None:
        """Drop the temp file; never raises, so the export's own error is the one seen."""
        if self._path is not None:
            self._cleanup()
        else:
            with contextlib.suppress(OSError):
                self._temp.close()


def stale_temp_files(target: Path) -> list[Path]:
    """Temp files of exports to ``target`` that died before committing: named as
    StagedTarget names them, and locked by no writer."""
    pattern = re.compile(re.escape(f".{target.name}.") + r"[0-9a-f]{8}\.tmp")
    try:
        names = [entry for entry in os.listdir(target.parent) if pattern.fullmatch(entry)]
    except OSError:
        return []
    stale = []
    for name in names:
        path = target.parent / name
        try:
            with open(path, "rb") as file:
                if _lock(file):
                    stale.append(path)
        except OSError:
            continue  # gone meanwhile, or not readable: not ours to judge
    return stale


def _create_temp(target: Path) -> tuple[Path, IO[bytes]]:
    """A new, locked temp file next to ``target``, with the mode a plain open() gives."""
    while True:
        path = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            fd = os.open(path, flags, 0o666)  # less the umask, as open() would
        except FileExistsError:
            continue
        file = os.fdopen(fd, "w+b", buffering=_BUFFER)
        _lock(file)
        return path, file


def _lock(file: IO[bytes]) -> bool:
    """Take an exclusive lock on ``file`` without waiting: False when a live writer holds
    one. The lock goes with the writer's process, however it ends."""
    if sys.platform == "win32":
        return False  # an open file cannot be removed there anyway: nothing is swept
    import fcntl

    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _appending_at(file: BinaryIO) -> int | None:
    """Where the export starts in ``file``, if it adds at the end of a file that can be
    cut back; None otherwise (a pipe, or a file the export overwrites in place)."""
    try:
        if not file.seekable():
            return None
        start = file.tell()
        end = file.seek(0, os.SEEK_END)
        file.seek(start)
    except (AttributeError, OSError, ValueError):
        return None
    return start if start == end else None


def _remove(temp: IO[bytes], path: Path) -> None:
    # Closing flushes what is buffered, and fails again on a full disk: remove it anyway.
    with contextlib.suppress(OSError):
        temp.close()
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
