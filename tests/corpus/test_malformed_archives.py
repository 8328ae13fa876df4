"""Malformed and hostile archives give typed errors that say what was found and what to do."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest

from _archives import write_records
from torchpkg._archive_reader import ZipArchiveReader, open_archive
from torchpkg.errors import ArchiveFormatError, RecordNotFoundError, UnsupportedVersionError

STORAGE = bytes(range(256)) * 4


def package_bytes(version: bytes = b"6\n") -> bytes:
    out = io.BytesIO()
    records = {"pkg/__init__.py": b"", ".data/0.storage": STORAGE, ".data/version": version}
    write_records(out, records, "model")
    return out.getvalue()


def saved(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    return str(path)


def zip_bytes(records: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in records.items():
            zf.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize("keep", [1, 2, 4, 29, 100, 1000, -22, -1])
def test_truncated_archive_raises_format_error_saying_truncated(tmp_path: Path, keep: int) -> None:
    path = saved(tmp_path, package_bytes()[:keep])
    with pytest.raises(ArchiveFormatError, match="truncated") as info:
        ZipArchiveReader(path)
    assert path in str(info.value)
    assert "copy it again" in str(info.value)


def test_non_zip_bytes_raise_format_error_saying_not_a_zip(tmp_path: Path) -> None:
    path = saved(tmp_path, b"import torch\nprint('this is a script')\n")
    with pytest.raises(ArchiveFormatError, match="is not a zip file") as info:
        ZipArchiveReader(path)
    assert "b'impo'" in str(info.value)


def test_empty_file_raises_format_error_saying_empty(tmp_path: Path) -> None:
    with pytest.raises(ArchiveFormatError, match=r"is empty \(0 bytes\)"):
        open_archive(saved(tmp_path, b""))


def test_missing_file_raises_format_error_saying_it_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(ArchiveFormatError, match=r"cannot open .*missing\.pt: No such file"):
        ZipArchiveReader(tmp_path / "missing.pt")


def test_unseekable_source_raises_format_error_saying_seekable() -> None:
    class Unseekable(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

    with Unseekable() as source, pytest.raises(ArchiveFormatError, match="seekable"):
        ZipArchiveReader(source)  # type: ignore[arg-type]


def test_corrupt_central_directory_raises_format_error(tmp_path: Path) -> None:
    data = bytearray(package_bytes())
    start = data.index(b"PK\x01\x02")
    data[start : start + 4] = b"XXXX"
    with pytest.raises(ArchiveFormatError, match="has a corrupt zip directory"):
        ZipArchiveReader(saved(tmp_path, bytes(data)))


def test_record_ending_past_the_file_raises_format_error_naming_it(tmp_path: Path) -> None:
    data = bytearray(package_bytes())
    entry = data.rindex(b"model/.data/0.storage") - 46  # its central directory entry
    struct.pack_into("<2L", data, entry + 20, 10**6, 10**6)  # compressed, uncompressed size
    with pytest.raises(ArchiveFormatError, match=r"truncated: record 'model/\.data/0\.storage'"):
        ZipArchiveReader(saved(tmp_path, bytes(data)))


def test_zip_without_version_record_is_not_a_package(tmp_path: Path) -> None:
    path = saved(tmp_path, zip_bytes({"model/data.pkl": b"x", "model/a.py": b""}))
    with pytest.raises(ArchiveFormatError, match=r"no \.data/version record") as info:
        ZipArchiveReader(path)
    assert "not a torch.package archive" in str(info.value)
    assert "PackageExporter" in str(info.value)
    assert path in str(info.value)


def test_unknown_version_raises_unsupported_version_error(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedVersionError, match=r"version '99'.*versions 1 to 10") as info:
        ZipArchiveReader(saved(tmp_path, package_bytes(b"99\n")))
    assert info.value.version == "99"
    assert "Upgrade torchpkg" in str(info.value)


@pytest.mark.parametrize("version", [b"six\n", b"", b"1_0", b"\xff", b"0"])
def test_non_integer_or_zero_version_raises_unsupported_version_error(
    tmp_path: Path, version: bytes
) -> None:
    with pytest.raises(UnsupportedVersionError):
        ZipArchiveReader(saved(tmp_path, package_bytes(version)))


def test_missing_record_raises_record_not_found_error(tmp_path: Path) -> None:
    path = saved(tmp_path, package_bytes())
    with ZipArchiveReader(path) as reader, pytest.raises(RecordNotFoundError) as info:
        reader.read_view("pkg/missing.py")
    assert (info.value.record, info.value.archive) == ("pkg/missing.py", path)
    assert "has no record 'pkg/missing.py'" in str(info.value)


@pytest.mark.parametrize("mmap", [True, False])
def test_crc_mismatch_raises_format_error_naming_the_record(tmp_path: Path, mmap: bool) -> None:
    data = bytearray(package_bytes())
    with ZipArchiveReader(io.BytesIO(bytes(data))) as reader:
        offset = reader.record_offset(".data/0.storage")
    assert offset is not None
    data[offset + 10] ^= 0xFF
    with ZipArchiveReader(saved(tmp_path, bytes(data)), mmap=mmap) as reader:
        with pytest.raises(ArchiveFormatError, match=r"damaged record '\.data/0\.storage'.*CRC"):
            reader.read(".data/0.storage")
        if not mmap:  # the copy is checked too; a view into the map is not (no pass over it)
            with pytest.raises(ArchiveFormatError, match="CRC"):
                reader.read_view(".data/0.storage")


@pytest.mark.parametrize("name", ["../evil", "model/../../evil", "/etc/passwd", "C:/x", "a\\..\\b"])
def test_record_names_escaping_the_archive_are_rejected(tmp_path: Path, name: str) -> None:
    path = saved(tmp_path, zip_bytes({".data/version": b"6\n", name: b"x"}))
    with pytest.raises(ArchiveFormatError, match="points outside the archive") as info:
        ZipArchiveReader(path)
    assert repr(name) in str(info.value)


def test_two_records_with_one_name_are_rejected(tmp_path: Path) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("m/.data/version", b"6\n")
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("m/.data/version", b"7\n")
    with pytest.raises(ArchiveFormatError, match=r"two records named '\.data/version'"):
        ZipArchiveReader(saved(tmp_path, out.getvalue()))


def test_encrypted_record_is_rejected(tmp_path: Path) -> None:
    data = bytearray(package_bytes())
    entry = data.rindex(b"model/pkg/__init__.py") - 46
    data[entry + 8] |= 0x1  # general purpose flag: encrypted
    with pytest.raises(ArchiveFormatError, match=r"encrypted record 'pkg/__init__\.py'"):
        ZipArchiveReader(saved(tmp_path, bytes(data)))
