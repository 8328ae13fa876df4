"""The reader's own pass over a plain zip's central directory: it agrees with zipfile
on every record, and leaves every other kind of zip to zipfile."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from _archives import write_records
from torchpkg._archive_reader import ZipArchiveReader
from torchpkg._zip_directory import read_directory

RECORDS = {
    "pkg/__init__.py": b"",
    "pkg/módulo.py": b"x = 1\n",  # a UTF-8 name
    ".data/0.storage": bytes(range(256)) * 5,
    ".data/version": b"6\n",
}


def plain() -> bytes:
    out = io.BytesIO()
    write_records(out, RECORDS, "archive")
    return out.getvalue()


def described(info: object) -> tuple[object, ...]:
    fields = ("filename", "orig_filename", "header_offset", "compress_size", "file_size")
    return tuple(getattr(info, name) for name in (*fields, "compress_type", "flag_bits", "CRC"))


def test_a_plain_zip_reads_as_zipfile_reads_it() -> None:
    data = plain()
    records = read_directory(io.BytesIO(data))
    assert records is not None
    expected = zipfile.ZipFile(io.BytesIO(data)).infolist()
    assert [described(r) for r in records] == [described(i) for i in expected]


def rezipped(data: bytes, **options: bytes) -> bytes:
    """``data``'s records written again by zipfile, with ``options`` set on the archive."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for name, value in options.items():
            setattr(target, name, value)
        for info in source.infolist():
            target.writestr(info, source.read(info))
    return out.getvalue()


def with_extra_field(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            info.extra = b"\xfe\xca\x00\x00"  # an empty field of an unknown kind
            target.writestr(info, source.read(info))
    return out.getvalue()


OTHER_ZIPS: dict[str, Callable[[bytes], bytes]] = {
    "a comment": lambda data: rezipped(data, comment=b"made by hand"),
    "bytes before the zip": lambda data: b"#!/bin/sh\n" + data,
    "extra fields in the directory": with_extra_field,
    "not a zip": lambda data: b"not a zip at all" * 4,
    "cut short": lambda data: data[:-30],
}


@pytest.mark.parametrize("make", OTHER_ZIPS.values(), ids=OTHER_ZIPS.keys())
def test_any_other_zip_is_left_to_zipfile(make: Callable[[bytes], bytes]) -> None:
    assert read_directory(io.BytesIO(make(plain()))) is None


@pytest.mark.parametrize(
    "make", [OTHER_ZIPS["a comment"], OTHER_ZIPS["bytes before the zip"]], ids=["comment", "prefix"]
)
def test_a_zip_left_to_zipfile_still_opens_with_every_record(make: object, tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    path.write_bytes(make(plain()))  # type: ignore[operator]
    with ZipArchiveReader(path) as reader:
        assert {name: reader.read(name) for name in reader.records()} == RECORDS
