"""Refusing hostile archives at open: zip bombs, overlapping records, symlinks.

A reader calls these before it reads any record, so a refused archive never
gets as far as running or even inflating anything.
"""

from __future__ import annotations

import itertools
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from torchpkg._archive import _LOCAL
from torchpkg.errors import ArchiveFormatError

__all__ = [
    "DEFAULT_LIMITS",
    "DISTRUST",
    "ArchiveLimits",
    "RecordInfo",
    "UnsafeArchiveError",
    "check_inflation",
    "check_overlaps",
    "refuse_links",
]

_MIB = 1 << 20
_GIB = 1 << 30
DISTRUST = "Do not load an archive you did not make that fails this check."


class UnsafeArchiveError(ArchiveFormatError):
    """The archive is built to harm its reader: names that escape its folder or
    collide, symlinks, records that inflate past the limits or overlap."""


@dataclass(frozen=True)
class ArchiveLimits:
    """How far compressed records may inflate: the defence against zip bombs.

    Only compressed records can inflate past the size of the file, and packages
    written by torchpkg or torch.package store every record uncompressed, so
    these limits bind only on archives re-zipped (or crafted) by other tools.
    ``max_ratio`` applies to records that inflate past ``ratio_floor`` bytes
    (small records of repeated bytes legitimately compress very well).
    """

    max_record_size: int = 4 * _GIB
    max_total_size: int = 16 * _GIB
    max_ratio: float = 200.0
    ratio_floor: int = 1 * _MIB


DEFAULT_LIMITS = ArchiveLimits()


class RecordInfo(Protocol):
    """What a zip's central directory says of a record: ``zipfile.ZipInfo``'s names."""

    @property
    def filename(self) -> str: ...
    @property
    def orig_filename(self) -> str: ...
    @property
    def header_offset(self) -> int: ...
    @property
    def compress_size(self) -> int: ...
    @property
    def file_size(self) -> int: ...
    @property
    def compress_type(self) -> int: ...
    @property
    def flag_bits(self) -> int: ...
    @property
    def CRC(self) -> int: ...


def check_overlaps(archive: str, infos: Sequence[RecordInfo]) -> None:
    """Records share no bytes: a bomb that points many records at one compressed
    stream (a few KB that inflate to terabytes) has to overlap them."""
    ordered = sorted(infos, key=lambda info: info.header_offset)
    for first, second in itertools.pairwise(ordered):
        # The local header is at least this long (its extra field may add more).
        least = len(first.orig_filename.encode()) + _LOCAL.size
        if first.header_offset + least + first.compress_size > second.header_offset:
            raise UnsafeArchiveError(
                f"{archive} has overlapping records {first.filename!r} and "
                f"{second.filename!r}: the layout of a zip bomb, never written by a "
                f"packager. {DISTRUST}"
            )


def check_inflation(archive: str, infos: Sequence[RecordInfo], limits: ArchiveLimits) -> None:
    total = 0
    for info in infos:
        if info.compress_type == zipfile.ZIP_STORED:
            continue  # bounded by the file itself (checked above)
        size, packed = info.file_size, max(info.compress_size, 1)
        total += size
        found = None
        if size > limits.max_record_size:
            found = f"inflates to {size} bytes, over max_record_size={limits.max_record_size}"
        elif size > limits.ratio_floor and size / packed > limits.max_ratio:
            found = (
                f"inflates {size / packed:.0f}-fold ({packed} -> {size} bytes), over "
                f"max_ratio={limits.max_ratio:g}"
            )
        elif total > limits.max_total_size:
            found = (
                f"brings the inflated size of the compressed records to {total} bytes, "
                f"over max_total_size={limits.max_total_size}"
            )
        if found is not None:
            raise UnsafeArchiveError(
                f"{archive} has a compressed record {info.filename!r} that {found}: a zip "
                f"bomb, or a package re-zipped with compression. {DISTRUST} If you trust "
                "it, re-export it (packages store their records uncompressed) or pass "
                "limits=ArchiveLimits(...) with higher bounds."
            )


def refuse_links(archive: str, root: Path) -> None:
    """A symlink in a package folder lets the package read any file of the loading
    machine (``model.py -> ~/.ssh/id_rsa``); packagers never write one."""
    links: list[str] = []
    for folder, dirs, files in os.walk(root):
        links.extend(
            os.path.relpath(os.path.join(folder, entry), root)
            for entry in dirs + files
            if os.path.islink(os.path.join(folder, entry))
        )
    if links:
        raise UnsafeArchiveError(
            f"{archive} is a package folder with symlinks ({', '.join(sorted(links))}); "
            f"a package's records are plain files. {DISTRUST} If you made it, replace each "
            "link with a copy of its file."
        )
