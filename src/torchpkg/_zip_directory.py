"""The central directory of a plain zip, read in one pass without ``zipfile``.

``zipfile`` builds a ``ZipInfo`` per record and decodes every extra field: for
an archive of 5,000 storages that was a third of opening it. The archives
torchpkg and torch write are plain: no comment, no bytes before the zip, no
zip64 structures below 4 GB and 65,535 records, no extra fields in the central
directory. Those are read here; anything else (and anything inconsistent) gets
None, and the reader hands the file to ``zipfile``, whose checks and messages
then apply as before.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from torchpkg._archive import _CENTRAL, _END

__all__ = ["Central", "read_directory"]

_UTF8_NAMES = 0x800
_MAX_EXTRACT_VERSION = 63  # what zipfile reads


class Central:
    """What the central directory says of one record, named as ``zipfile.ZipInfo``
    names it (the reader's checks take either)."""

    __slots__ = (
        "CRC",
        "compress_size",
        "compress_type",
        "file_size",
        "filename",
        "flag_bits",
        "header_offset",
        "orig_filename",
    )

    def __init__(  # noqa: PLR0917 - one field each, in the directory's order
        self,
        filename: str,
        flag_bits: int,
        compress_type: int,
        crc: int,
        compress_size: int,
        file_size: int,
        header_offset: int,
    ) -> None:
        self.filename = self.orig_filename = filename
        self.flag_bits = flag_bits
        self.compress_type = compress_type
        self.CRC = crc
        self.compress_size = compress_size
        self.file_size = file_size
        self.header_offset = header_offset


def read_directory(file: BinaryIO) -> list[Central] | None:
    """The records of a plain zip, in directory order; None for any other file."""
    end = file.seek(0, os.SEEK_END)
    if end < _END.size:
        return None
    file.seek(end - _END.size)
    signature, disk, start_disk, here, count, size, offset, comment = _END.unpack(
        file.read(_END.size)
    )
    plain = signature == b"PK\x05\x06" and not (disk or start_disk or comment)
    # 0xFFFF and 0xFFFFFFFF say "see zip64"; the directory must end where the end record starts.
    if not plain or here != count or count == 0xFFFF or offset + size != end - _END.size:
        return None
    file.seek(offset)
    data = file.read(size)
    if len(data) != size:
        return None
    records: list[Central] = []
    unpack, fixed, position = _CENTRAL.unpack_from, _CENTRAL.size, 0
    while position + fixed <= size:
        (signature, _, needed, flags, method, _, _, crc, packed, unpacked, name_length,
         extra_length, comment_length, _, _, _, header) = unpack(data, position)  # fmt: skip
        if (
            signature != b"PK\x01\x02"
            or extra_length
            or comment_length
            or needed & 0xFF > _MAX_EXTRACT_VERSION
        ):
            return None
        start = position + fixed
        position = start + name_length
        raw = data[start:position]
        try:
            name = raw.decode("utf-8" if flags & _UTF8_NAMES else "cp437")
        except UnicodeDecodeError:
            return None
        if "\x00" in name or (os.sep != "/" and os.sep in name):  # zipfile rewrites those
            return None
        records.append(Central(name, flags, method, crc, packed, unpacked, header))
    if position != size or len(records) != count:
        return None
    return records
