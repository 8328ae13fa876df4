"""Reading packages: zip archives (mapped without copies) and unzipped folders.

Records are named without the archive's top-level folder. Stored records of a
real file are served as views of a private copy-on-write ``mmap``; everything
damaged (truncation, bad CRCs, unknown versions) is an ``ArchiveFormatError``
and everything hostile (names that escape the folder or collide, symlinks in
a package folder, records that would inflate past ``ArchiveLimits``, records
that overlap) an ``UnsafeArchiveError``, each saying what to do. All of it is
checked when the archive is opened, before anything is read from it.
"""

from __future__ import annotations

import io
import mmap as _mmap
import os
import stat
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from torchpkg._archive import (
    _LOCAL,
    _RECOPY,
    _VERSION_RECORDS,
    _ZIP_ERRORS,
    WRITTEN_VERSION,
    _escapes,
    _parse_version,
)
from torchpkg._archive_checks import (
    DEFAULT_LIMITS,
    DISTRUST,
    ArchiveLimits,
    RecordInfo,
    UnsafeArchiveError,
    check_inflation,
    check_overlaps,
    refuse_links,
)
from torchpkg._zip_directory import read_directory
from torchpkg.errors import ArchiveFormatError, RecordNotFoundError

__all__ = [
    "DEFAULT_LIMITS",
    "ArchiveLimits",
    "ArchiveReader",
    "DirectoryArchiveReader",
    "RecordViews",
    "UnsafeArchiveError",
    "ZipArchiveReader",
    "open_archive",
]


class ArchiveReader(ABC):
    """Read access to a package's records, named without the top-level folder."""

    name: str  # for messages: the path, or "<binary>"
    _version: int

    def version(self) -> int:
        return self._version

    @abstractmethod
    def records(self) -> list[str]: ...

    @abstractmethod
    def has_record(self, name: str) -> bool: ...

    @abstractmethod
    def read(self, name: str) -> bytes: ...

    def read_text(self, name: str) -> str:
        """A text record (extern list, versions), refused as damaged when it is not UTF-8."""
        try:
            return self.read(name).decode()
        except UnicodeDecodeError as exc:
            raise ArchiveFormatError(
                f"{self.name} has a record {name!r} that is not UTF-8 text ({exc}). {_RECOPY}"
            ) from None

    @abstractmethod
    def record_size(self, name: str) -> int:
        """The record's size in bytes once read (uncompressed), without reading it."""

    @abstractmethod
    def read_view(self, name: str) -> memoryview:
        """A writable buffer of the record's bytes, independent of every other view:
        writes to it never reach the archive, the caller's buffer or another view."""

    def views(self) -> RecordViews:
        """Buffers of several records that are private to the holder as a set.

        A loader takes one set per load, so the storages of one load share a
        single copy-on-write map while two loads never see each other's writes.
        """
        return RecordViews(self.read_view)

    @abstractmethod
    def record_offset(self, name: str) -> int | None:
        """Absolute file offset of a stored record's data; None where there is none."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _read_version(self, *, required: bool) -> int:
        for record in _VERSION_RECORDS:
            if self.has_record(record):
                return _parse_version(self.read(record), self.name)
        if required:
            raise ArchiveFormatError(
                f"{self.name} has no .data/version record, so it is not a torch.package archive "
                "(a zip made by another tool, or a torch.save/TorchScript file?). Open a file "
                "written by PackageExporter, or load other files with torch.load/torch.jit.load."
            )
        return WRITTEN_VERSION


@dataclass(frozen=True)
class RecordViews:
    """Writable record buffers handed out by ``ArchiveReader.views()``."""

    view: Callable[[str], memoryview]


# Encrypted (bits 0 and 6) and patched (bit 5) records: zipfile cannot read them.
_UNREADABLE_FLAGS = 0x1 | 0x20 | 0x40
_READABLE_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


@dataclass
class _Entry:
    info: RecordInfo
    # Where a stored record's data starts (None: compressed); read from its local
    # header on first use, not at open: thousands of records, one seek each.
    offset: int | None = None
    located: bool = False


class ZipArchiveReader(ArchiveReader):
    """Reads a zip archive from a path or a binary file object.

    With ``mmap=True`` stored records of a real file are served as views of a
    private copy-on-write map of it, so large storages are never copied; each
    ``views()`` set maps the file anew. Records of an ``io.BytesIO`` are copied
    once (sharing its buffer would let loaded tensors write into the caller's bytes).
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | BinaryIO,
        *,
        mmap: bool = True,
        limits: ArchiveLimits = DEFAULT_LIMITS,
    ) -> None:
        self._closed = False
        self._limits = limits
        self._mappable = False
        self._fd: int | None = None  # a real file's descriptor, for pread
        if isinstance(source, (str, os.PathLike)):
            self.name, self._owns_file = os.fspath(source), True
            try:
                self._file: BinaryIO = open(self.name, "rb")  # noqa: SIM115 (closed by close())
            except OSError as exc:
                raise ArchiveFormatError(
                    f"cannot open {self.name}: {exc.strerror or exc}. Check the path and that "
                    "the file is readable."
                ) from exc
        else:
            self.name, self._file, self._owns_file = "<binary>", source, False
        try:
            try:
                directory = read_directory(self._file)
            except (OSError, ValueError):  # not seekable: zipfile says what is wrong
                directory = None
            # zipfile reads anything but the plain zips packagers write, and inflates.
            self._zip: zipfile.ZipFile | None = None if directory else self._open_zip()
            if _is_regular_file(self._file) and hasattr(os, "pread"):  # not on Windows
                self._fd = self._file.fileno()
            self._mappable = mmap and _is_regular_file(self._file)
            infos = directory if directory is not None else self._zipfile().infolist()
            self._entries = self._index(infos)
            self._version = self._read_version(required=True)
        except BaseException:
            self._release()
            raise

    def records(self) -> list[str]:
        return list(self._entries)

    def has_record(self, name: str) -> bool:
        return name in self._entries

    def record_size(self, name: str) -> int:
        return self._entry(name).info.file_size

    def read(self, name: str) -> bytes:
        entry = self._located(name)
        info = entry.info
        if entry.offset is None:  # compressed: zipfile inflates it and checks the CRC
            try:
                return self._zipfile().read(info.orig_filename)
            except _ZIP_ERRORS as exc:
                raise self._damaged(f"has a damaged record {name!r} ({exc})") from exc
        self._file.seek(entry.offset)
        data = self._file.read(info.file_size)
        if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
            raise self._damaged(f"has a damaged record {name!r} (Bad CRC-32 for {info.filename!r})")
        return data

    def read_view(self, name: str) -> memoryview:
        return self.views().view(name)

    def views(self) -> RecordViews:
        """Mapped views are not CRC-checked: that would touch every page."""
        mapping: list[memoryview] = []  # one private map per set, made on first use

        def view(name: str) -> memoryview:
            entry = self._located(name)
            end = (entry.offset or 0) + entry.info.file_size
            if entry.offset is not None and self._mappable:
                if not mapping:
                    private = _mmap.mmap(self._file.fileno(), 0, access=_mmap.ACCESS_COPY)
                    mapping.append(memoryview(private))
                return mapping[0][entry.offset : end]
            if entry.offset is None:  # compressed: zipfile inflates and checks the CRC
                return memoryview(bytearray(self.read(name)))
            if isinstance(self._file, io.BytesIO):
                with self._file.getbuffer() as buffer:
                    return memoryview(bytearray(buffer[entry.offset : end]))
            # Read straight into the buffer the tensor will own: one copy, CRC-checked.
            data = bytearray(entry.info.file_size)
            self._file.seek(entry.offset)
            readinto = getattr(self._file, "readinto", None)
            if readinto is not None:
                got = readinto(data)
            else:  # a minimal file object: read() then copy
                data[:] = self._file.read(len(data))
                got = len(data)
            if got != entry.info.file_size or zlib.crc32(data) != entry.info.CRC:
                raise self._damaged(f"has a damaged record {name!r} (CRC mismatch)")
            return memoryview(data)

        return RecordViews(view)

    def record_offset(self, name: str) -> int | None:
        return self._located(name).offset

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._zip is not None:
                self._zip.close()
            self._release()

    def _entry(self, name: str) -> _Entry:
        if self._closed:
            raise ValueError(f"{self.name} is closed")
        try:
            return self._entries[name]
        except KeyError:
            raise RecordNotFoundError(name, self.name) from None

    def _damaged(self, found: str) -> ArchiveFormatError:
        return ArchiveFormatError(f"{self.name} {found}. {_RECOPY}")

    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None:
            self._zip = self._open_zip()
        return self._zip

    def _open_zip(self) -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(self._file)
        except (*_ZIP_ERRORS, NotImplementedError) as exc:  # e.g. "zip file version 25.5"
            raise ArchiveFormatError(
                f"{self.name} {self._diagnose(exc)}. Pass the file PackageExporter wrote; if it "
                "was copied or downloaded, copy it again."
            ) from exc

    def _diagnose(self, exc: Exception) -> str:
        """What a file that zipfile rejected turned out to be."""
        try:
            self._file.seek(0)
            head = self._file.read(4)
        except OSError:
            return f"cannot be read as a zip ({exc}): it must be a readable, seekable binary file"
        if not head:
            return "is empty (0 bytes), not a zip file"
        if not (head.startswith(b"PK") or b"PK".startswith(head)):
            return f"is not a zip file (it starts with {head!r}); a torch.package archive is a zip"
        if str(exc) == "File is not a zip file":  # zipfile found no end-of-directory record
            return "is truncated: it starts as a zip but its end-of-central-directory is missing"
        return f"has a corrupt zip directory ({exc})"

    def _index(self, directory: Sequence[RecordInfo]) -> dict[str, _Entry]:
        # Not is_dir(): it fails on an empty name, which the name checks below refuse.
        infos = [info for info in directory if not info.filename.endswith("/")]
        names = {info.filename for info in infos}
        prefix = ""
        tops = {name.partition("/")[0] for name in names}
        if ".data/version" not in names and len(tops) == 1 and all("/" in n for n in names):
            top = tops.pop() + "/"
            if any(top + record in names for record in _VERSION_RECORDS):
                prefix = top
        self._end = end = self._file.seek(0, os.SEEK_END)
        entries: dict[str, _Entry] = {}
        for info in infos:
            name = info.filename[len(prefix) :]
            if _escapes(info.filename):
                raise UnsafeArchiveError(
                    f"{self.name} has a record named {info.filename!r}, which points outside "
                    "the archive ('..' or an absolute path). Refusing to read a possibly hostile "
                    "archive; do not load it."
                )
            if any(part in ("", ".") for part in name.replace("\\", "/").split("/")):
                raise UnsafeArchiveError(
                    f"{self.name} has a record named {info.filename!r}, with an empty or '.' "
                    "part: it would stand for another record's file once unpacked. "
                    f"{DISTRUST}"
                )
            if info.flag_bits & _UNREADABLE_FLAGS:
                raise self._damaged(
                    f"has an encrypted record {name!r} (or a patched one: packages never are)"
                )
            if info.compress_type not in _READABLE_COMPRESSION:
                raise self._damaged(
                    f"has a record {name!r} compressed with zip method {info.compress_type}; "
                    "packages store records, or deflate them when re-zipped"
                )
            if info.header_offset < 0:  # zipfile's correction for bytes before the zip
                raise self._damaged(f"has a record {name!r} that starts before the archive")
            if name in entries:
                raise UnsafeArchiveError(
                    f"{self.name} has two records named {name!r}: a reader would see one and "
                    f"an unpacker the other. {DISTRUST}"
                )
            stored = info.compress_type == zipfile.ZIP_STORED
            if stored and info.compress_size != info.file_size:
                raise self._damaged(f"has a stored record {name!r} with two different sizes")
            # The local header is at least this long: a cheap bound for truncation now.
            least = info.header_offset + _LOCAL.size + len(info.orig_filename.encode())
            if least + info.compress_size > end:
                raise self._damaged(f"is truncated: record {info.filename!r} ends past the file")
            entries[name] = _Entry(info, located=not stored)
        check_overlaps(self.name, infos)
        check_inflation(self.name, infos, self._limits)
        return entries

    def _located(self, name: str) -> _Entry:
        entry = self._entry(name)
        if not entry.located:
            info = entry.info
            header = self._local_header(info.header_offset)
            if len(header) < _LOCAL.size or not header.startswith(b"PK\x03\x04"):
                raise self._damaged(f"has no local header for record {info.filename!r}")
            *_, name_len, extra_len = _LOCAL.unpack(header)
            offset: int = info.header_offset + _LOCAL.size + name_len + extra_len
            if offset + info.file_size > self._end:
                raise self._damaged(f"is truncated: record {info.filename!r} ends past the file")
            entry.offset, entry.located = offset, True
        return entry

    def _local_header(self, offset: int) -> bytes:
        """The fixed part of the local header at ``offset`` (shorter at the file's end).

        A real file's are read with one ``pread`` each: thousands of small records
        would otherwise cost a seek and a buffered read each.
        """
        if self._fd is not None:
            return os.pread(self._fd, _LOCAL.size, offset)
        self._file.seek(offset)
        return self._file.read(_LOCAL.size)

    def _release(self) -> None:
        # Maps handed out by views() keep their own reference to the file.
        if self._owns_file:
            self._file.close()


class DirectoryArchiveReader(ArchiveReader):
    """Reads an unzipped package: records are the files under the directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.name = os.fspath(path)
        self._root = Path(path)
        if not self._root.is_dir():
            raise ArchiveFormatError(f"{self.name} is not a directory; pass an unzipped package")
        self._real_root = os.path.realpath(self._root)
        refuse_links(self.name, self._root)
        # Old torch.package directories have no version record: accept them as the version we write.
        self._version = self._read_version(required=False)

    def records(self) -> list[str]:
        paths = (path for path in self._root.rglob("*") if path.is_file())
        return sorted(path.relative_to(self._root).as_posix() for path in paths)

    def has_record(self, name: str) -> bool:
        return not _escapes(name) and (self._root / name).is_file()

    def read(self, name: str) -> bytes:
        return self._path(name).read_bytes()

    def record_size(self, name: str) -> int:
        return self._path(name).stat().st_size

    def read_view(self, name: str) -> memoryview:
        with self._path(name).open("rb") as file:
            buffer = bytearray(os.fstat(file.fileno()).st_size)
            return memoryview(buffer)[: file.readinto(buffer)]

    def record_offset(self, name: str) -> int | None:
        self._path(name)
        return None

    def close(self) -> None:
        """Nothing is held open between reads."""

    def _path(self, name: str) -> Path:
        if not self.has_record(name):
            raise RecordNotFoundError(name, self.name)
        path = self._root / name
        # A link made after the folder was opened must not be followed either.
        if os.path.realpath(path) != os.path.join(self._real_root, os.path.normpath(name)):
            raise UnsafeArchiveError(
                f"{self.name} has a record {name!r} that leads outside the package folder "
                f"through a symlink. {DISTRUST}"
            )
        return path


def open_archive(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    mmap: bool = True,
    limits: ArchiveLimits = DEFAULT_LIMITS,
) -> ArchiveReader:
    """Open a package: a zip (path or binary file object) or an unzipped directory."""
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        return DirectoryArchiveReader(source)
    return ZipArchiveReader(source, mmap=mmap, limits=limits)


def _is_regular_file(file: BinaryIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(file.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):  # no real file behind it: read instead
        return False
