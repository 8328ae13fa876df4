"""The archive format: torch.package's zip layout, and writing it without torch.

A package is a zip whose records all sit under one top-level folder,
``<archive_name>/...``. Records are STORED (never compressed) and the data of
each starts at a 64-byte aligned file offset: the local header's extra field
carries padding under header id ``0x4246`` (``b"FB"``), as torch's
``PyTorchStreamWriter`` does. Aligned, uncompressed storages are what let a
reader hand out tensors that are views of an ``mmap`` of the file.

Framework records (``.data/version``, ``.data/extern_modules``, ``byteorder``,
``.data/<key>.storage``, ...) are ordinary records: the exporter writes them.
The writer computes two records itself, last: torchpkg's manifest (the BLAKE3
digest of every record before it) and torch's ``.data/serialization_id``.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import threading
import zipfile
import zlib
from typing import BinaryIO, Final, NamedTuple

from torchpkg._digest import WRITTEN, DigestAlgorithm
from torchpkg.errors import UnsupportedVersionError
from torchpkg.records import MANIFEST_RECORD, Manifest

SUPPORTED_VERSIONS: Final = range(1, 11)
WRITTEN_VERSION: Final = 6
ALIGNMENT: Final = 64
SERIALIZATION_ID: Final = ".data/serialization_id"

# Sizes and offsets from this value on need zip64 fields (0xFFFFFFFF is the "see zip64" marker).
_ZIP64_LIMIT = 0xFFFFFFFF
_MAX_COUNT = 0xFFFF
_UTF8_NAMES = 0x0800
_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01: the zip epoch; time 00:00:00 is 0
_LOCAL = struct.Struct("<4s5H3L2H")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_END = struct.Struct("<4s4H2LH")
_END64 = struct.Struct("<4sQ2H2L4Q")
_LOCATOR64 = struct.Struct("<4sLQL")
_VERSION_RECORDS = (".data/version", "version")
# What zipfile raises on damaged input besides BadZipFile (bad seeks, bad deflate data, ...).
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, EOFError, ValueError, struct.error, zlib.error)
_U64 = (1 << 64) - 1
_RECOPY = "Re-export the package, or copy it again if it was truncated in transfer."
# Records the writer derives from the others; a caller's copy (from another archive) is dropped.
_DERIVED = (SERIALIZATION_ID, MANIFEST_RECORD)
# From this size on a record's CRC and digest are computed on threads while it is written.
_ASIDE = 1 << 20
# Where a local header holds the CRC-32 (after signature, versions, flags, method, time, date).
_CRC_AT = 14


def _escapes(name: str) -> bool:
    """Whether a record name would leave the archive's root when used as a path.

    Read the strictest way, as Windows would: both slashes separate, drives count.
    (String tests, not PureWindowsPath: this runs for every record of an archive.)
    """
    if name.startswith(("/", "\\")) or name[1:2] == ":":
        return True
    return ".." in name.replace("\\", "/").split("/")


def _parse_version(raw: bytes, archive: str) -> int:
    text = raw.decode("ascii", "replace").strip()
    if not (text.isdigit() and int(text) in SUPPORTED_VERSIONS):
        raise UnsupportedVersionError(text, archive, SUPPORTED_VERSIONS)
    return int(text)


def _patchable(fileobj: BinaryIO) -> int | None:
    """Where ``fileobj``'s writes start in its file, if bytes already written there can
    be rewritten with ``os.pwrite``: a regular file not opened for appending (where
    Linux's pwrite would append); None for pipes, sockets and in-memory files."""
    if not isinstance(fileobj, (io.BufferedRandom, io.BufferedWriter, io.FileIO)):
        return None
    if not hasattr(os, "pwrite"):  # Windows
        return None
    try:
        if "a" in fileobj.mode or not fileobj.seekable():
            return None
        return fileobj.tell()
    except (OSError, ValueError):
        return None


def _hash_combine(seed: int, value: int) -> int:
    """c10's ``hash_combine`` on 64-bit integers: how torch folds record CRCs together."""
    mixed = (value + 0x9E3779B9 + (seed << 6) + (seed >> 2)) & _U64
    return (seed ^ mixed) & _U64


class _Sums:
    """The CRC-32 and the manifest digest of a large record, each computed on a
    thread of its own while the caller writes the same bytes: zlib, BLAKE3 and
    file writes all release the GIL, so a large storage costs about one pass over
    its bytes, not three."""

    def __init__(self, view: memoryview, algorithm: DigestAlgorithm) -> None:
        self._hash = algorithm.new(view.nbytes)
        self.crc = 0
        self._threads = [
            threading.Thread(target=target, args=(view,), daemon=True)
            for target in (self._crc32, self._hash.update)
        ]
        for thread in self._threads:
            thread.start()

    def _crc32(self, view: memoryview) -> None:
        self.crc = zlib.crc32(view)

    def join(self) -> None:
        """Wait for both: the buffer may be freed once the caller has it back."""
        for thread in self._threads:
            thread.join()

    def hexdigest(self) -> str:
        self.join()
        return self._hash.hexdigest()


class _Written(NamedTuple):  # one per record: a tuple is the cheapest to make
    path: bytes
    crc: int
    size: int
    offset: int
    digest: str


class ArchiveWriter:
    """Writes records into a zip in torch.package's layout; never seeks ``fileobj``.

    Output is deterministic: fixed timestamps, so the same records in the same
    order give the same bytes.
    """

    def __init__(self, fileobj: BinaryIO, archive_name: str = "archive") -> None:
        if not archive_name or "/" in archive_name or _escapes(archive_name):
            raise ValueError(f"archive_name must be one plain path component, got {archive_name!r}")
        self._fileobj = fileobj
        self._prefix = archive_name + "/"
        self._written: dict[str, _Written] = {}
        self._offset = 0  # counted here rather than asked with tell(): pipes cannot tell
        self._closed = False
        self._sealing = False
        self._patch_at = _patchable(fileobj)
        self._hexdigest = WRITTEN.hexdigest_function()

    @property
    def records(self) -> list[str]:
        return list(self._written)

    def has_record(self, name: str) -> bool:
        return name in self._written

    def write_record(self, name: str, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise ValueError(f"cannot write record {name!r}: the archive writer is closed")
        if not name or name.endswith("/") or _escapes(name):
            raise ValueError(f"invalid record name {name!r}: use a relative path without '..'")
        if name in _DERIVED and not self._sealing:
            # As PyTorchStreamWriter does for the id: a copy from another archive would
            # not describe this one; the writer computes its own at the end.
            return
        if name in self._written:
            raise ValueError(f"record {name!r} was already written; record names must be unique")
        if self.has_record(MANIFEST_RECORD) and not self._sealing:
            raise ValueError(
                f"cannot write record {name!r} after the manifest, which must cover every record"
            )
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        path = (self._prefix + name).encode()
        size, offset = view.nbytes, self._offset
        big = size >= _ZIP64_LIMIT
        extra = struct.pack("<2H2Q", 1, 16, size, size) if big else b""
        pad = -(offset + _LOCAL.size + len(path) + len(extra) + 4) % ALIGNMENT
        extra += struct.pack("<2sH", b"FB", pad) + b"Z" * pad
        if size < _ASIDE:
            crc = zlib.crc32(view)
            self._write(self._local_header(path, extra, crc, size))
            self._write(view)
            self._written[name] = _Written(path, crc, size, offset, self._hexdigest(view))
            return
        sums = _Sums(view, WRITTEN)
        try:
            # The CRC is still being computed: where the header can be rewritten in
            # place, it goes out with a zero CRC that is filled in after.
            later = self._patch_at is not None
            if not later:
                sums.join()
            self._write(self._local_header(path, extra, 0 if later else sums.crc, size))
            self._write(view)  # straight from the caller's buffer: no copy of large storages
        finally:
            sums.join()
        if later:
            self._patch(offset + _CRC_AT, struct.pack("<L", sums.crc))
        self._written[name] = _Written(path, sums.crc, size, offset, sums.hexdigest())

    @staticmethod
    def _local_header(path: bytes, extra: bytes, crc: int, size: int) -> bytes:
        big = size >= _ZIP64_LIMIT
        stored = 0xFFFFFFFF if big else size
        header = _LOCAL.pack(
            b"PK\x03\x04", 45 if big else 20, _UTF8_NAMES, zipfile.ZIP_STORED, 0, _DOS_DATE,
            crc, stored, stored, len(path), len(extra),
        )  # fmt: skip
        return header + path + extra

    def _patch(self, offset: int, data: bytes) -> None:
        assert self._patch_at is not None
        self._fileobj.flush()
        os.pwrite(self._fileobj.fileno(), data, self._patch_at + offset)

    def write_manifest(self) -> None:
        """Write the manifest: the digest of every record written so far.

        Call it after the last record: only the serialization id may follow.
        """
        manifest = Manifest(
            {name: record.digest for name, record in self._written.items()}, WRITTEN
        )
        self._write_derived(MANIFEST_RECORD, manifest.to_json())

    def write_serialization_id(self) -> None:
        """Write ``.data/serialization_id``, last, as torch's writer ends every archive.

        Forty digits: a hash of the record names, then the CRC-32s of the records
        combined in the order they were written (the second half is computed as
        torch computes it; torch's first half depends on the iteration order of
        its C++ library's hash set, so names are taken sorted here). The same
        records give the same id, as they give the same bytes.
        """
        names = 0
        for name in sorted(self._written):
            digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
            names = _hash_combine(names, int.from_bytes(digest, "little"))
        crcs = 0
        for record in self._written.values():
            crcs = _hash_combine(crcs, record.crc)
        self._write_derived(SERIALIZATION_ID, f"{names:020d}{crcs:020d}".encode())

    def _write_derived(self, name: str, data: bytes) -> None:
        self._sealing = True
        try:
            self.write_record(name, data)
        finally:
            self._sealing = False

    def close(self) -> None:
        """Write the central directory. ``fileobj`` stays open."""
        if self._closed:
            return
        self._closed = True
        directory = bytearray()
        for rec in self._written.values():
            big, far = rec.size >= _ZIP64_LIMIT, rec.offset >= _ZIP64_LIMIT
            values = (rec.size, rec.size) * big + (rec.offset,) * far
            extra = (
                struct.pack(f"<2H{len(values)}Q", 1, 8 * len(values), *values) if values else b""
            )
            needed = 45 if values else 20
            stored = 0xFFFFFFFF if big else rec.size
            directory += _CENTRAL.pack(
                b"PK\x01\x02", needed, needed, _UTF8_NAMES, zipfile.ZIP_STORED, 0, _DOS_DATE,
                rec.crc, stored, stored, len(rec.path), len(extra), 0, 0, 0, 0,
                0xFFFFFFFF if far else rec.offset,
            )  # fmt: skip
            directory += rec.path + extra
        count, start, size = len(self._written), self._offset, len(directory)
        if count >= _MAX_COUNT or start >= _ZIP64_LIMIT or size >= _ZIP64_LIMIT:
            directory += _END64.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, start)
            directory += _LOCATOR64.pack(b"PK\x06\x07", 0, start + size, 1)
            count, size, start = _MAX_COUNT, 0xFFFFFFFF, 0xFFFFFFFF
        directory += _END.pack(b"PK\x05\x06", 0, 0, count, count, size, start, 0)
        self._write(directory)
        self._fileobj.flush()

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:  # raw streams (pipes, sockets) may take part of a buffer per call
            written = self._fileobj.write(view)
            view = view[len(view) if written is None else written :]
        self._offset += len(data)
