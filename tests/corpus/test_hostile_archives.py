"""Hostile archives: each is refused with an UnsafeArchiveError when it is opened, before
any record is read, so the packaged code that would create the sentinel never runs."""

from __future__ import annotations

import io
import os
import struct
import zipfile
from pathlib import Path

import pytest

from torchpkg import PackageImporter
from torchpkg._archive_reader import open_archive
from torchpkg.security import DEFAULT_LIMITS, ArchiveLimits, UnsafeArchiveError

MIB = 1 << 20


def sentinel_source(sentinel: Path) -> bytes:
    return f"open({str(sentinel)!r}, 'w').close()\n".encode()


def zip_of(records: list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in records:
            archive.writestr(name, data)
    return out.getvalue()


def package(sentinel: Path, *extra: tuple[str, bytes]) -> list[tuple[str, bytes]]:
    return [
        ("hostile/.data/version", b"6\n"),
        ("hostile/.data/extern_modules", b""),
        ("hostile/pkg/__init__.py", sentinel_source(sentinel)),
        *extra,
    ]


def refused(
    tmp_path: Path, data: bytes, sentinel: Path, limits: ArchiveLimits = DEFAULT_LIMITS
) -> str:
    """Open the archive as a loader would; return the refusal's message."""
    path = tmp_path / "hostile.pt"
    path.write_bytes(data)
    with pytest.raises(UnsafeArchiveError) as info, PackageImporter(path, limits=limits) as loaded:
        loaded.import_module("pkg")
    assert not sentinel.exists()
    return str(info.value)


@pytest.mark.parametrize(
    "name",
    ["hostile/../evil.py", "/etc/evil.py", "C:/evil.py", "hostile\\..\\..\\evil.py"],
)
def test_record_name_that_escapes_the_archive_is_refused(tmp_path: Path, name: str) -> None:
    sentinel = tmp_path / "ran"
    message = refused(tmp_path, zip_of(package(sentinel, (name, b"x"))), sentinel)
    assert "points outside the archive" in message


@pytest.mark.parametrize("name", ["hostile/pkg/./util.py", "hostile/pkg//util.py"])
def test_record_name_that_aliases_another_once_unpacked_is_refused(
    tmp_path: Path, name: str
) -> None:
    sentinel = tmp_path / "ran"
    data = zip_of(package(sentinel, ("hostile/pkg/util.py", b""), (name, b"")))
    assert "with an empty or '.' part" in refused(tmp_path, data, sentinel)


def test_duplicate_member_names_are_refused(tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    records = [*package(sentinel), ("hostile/pkg/__init__.py", b"")]
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = zip_of(records)
    assert "two records named 'pkg/__init__.py'" in refused(tmp_path, data, sentinel)


def test_zip_bomb_record_inflating_past_the_default_ratio_is_refused(tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    data = zip_of(package(sentinel, ("hostile/pkg/data.pkl", bytes(8 * MIB))), zipfile.ZIP_DEFLATED)
    message = refused(tmp_path, data, sentinel)
    assert "'hostile/pkg/data.pkl' that inflates" in message
    assert "max_ratio=200" in message


def test_record_that_lies_about_its_inflated_size_is_refused(tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    data = bytearray(
        zip_of(package(sentinel, ("hostile/pkg/data.pkl", bytes(1000))), zipfile.ZIP_DEFLATED)
    )
    entry = data.rindex(b"hostile/pkg/data.pkl") - 46  # its central directory entry
    struct.pack_into("<L", data, entry + 24, 0xFFFFFFF0)  # uncompressed size: ~4 GiB
    assert "inflates" in refused(tmp_path, bytes(data), sentinel)


def test_record_over_max_record_size_is_refused(tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    data = zip_of(package(sentinel, ("hostile/w.bin", os.urandom(2 * MIB))), zipfile.ZIP_DEFLATED)
    limits = ArchiveLimits(max_record_size=MIB)
    assert "over max_record_size=1048576" in refused(tmp_path, data, sentinel, limits=limits)


def test_many_small_records_over_max_total_size_are_refused(tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    small = [(f"hostile/res/{index}.bin", bytes(MIB)) for index in range(12)]
    data = zip_of(package(sentinel, *small), zipfile.ZIP_DEFLATED)
    limits = ArchiveLimits(max_total_size=8 * MIB)
    assert "over max_total_size" in refused(tmp_path, data, sentinel, limits=limits)


def test_overlapping_records_of_a_non_recursive_zip_bomb_are_refused(tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    data = bytearray(
        zip_of(package(sentinel, ("hostile/a.bin", b"a" * 100), ("hostile/b.bin", b"b" * 100)))
    )
    first, second = data.rindex(b"hostile/a.bin") - 46, data.rindex(b"hostile/b.bin") - 46
    # Point b.bin's central entry at a.bin's local header: two records, one stream.
    struct.pack_into("<L", data, second + 42, struct.unpack_from("<L", data, first + 42)[0])
    assert "overlapping records" in refused(tmp_path, bytes(data), sentinel)


def test_records_within_the_limits_open(tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    data = zip_of(package(sentinel, ("hostile/w.bin", bytes(MIB))), zipfile.ZIP_DEFLATED)
    path = tmp_path / "fine.pt"
    path.write_bytes(data)
    with open_archive(path) as reader:
        assert reader.read("w.bin") == bytes(MIB)


def folder_package(root: Path, sentinel: Path) -> Path:
    for name, data in package(sentinel):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root / "hostile"


def test_symlinked_file_in_a_package_folder_is_refused(tmp_path: Path) -> None:
    sentinel, secret = tmp_path / "ran", tmp_path / "secret.txt"
    secret.write_text("the loading machine's secret")
    folder = folder_package(tmp_path / "unpacked", sentinel)
    (folder / "pkg" / "notes.txt").symlink_to(secret)
    with pytest.raises(UnsafeArchiveError, match=r"symlinks \(pkg/notes\.txt\)"):
        PackageImporter(folder)
    assert not sentinel.exists()


def test_symlinked_folder_in_a_package_folder_is_refused(tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    (tmp_path / "elsewhere").mkdir()
    folder = folder_package(tmp_path / "unpacked", sentinel)
    (folder / "data").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(UnsafeArchiveError, match=r"symlinks \(data\)"):
        PackageImporter(folder)
    assert not sentinel.exists()


def test_symlink_made_after_the_folder_was_opened_is_not_followed(tmp_path: Path) -> None:
    sentinel, secret = tmp_path / "ran", tmp_path / "secret.txt"
    secret.write_text("the loading machine's secret")
    folder = folder_package(tmp_path / "unpacked", sentinel)
    (folder / "pkg" / "notes.txt").write_text("harmless")
    with open_archive(folder) as reader:
        (folder / "pkg" / "notes.txt").unlink()
        (folder / "pkg" / "notes.txt").symlink_to(secret)
        with pytest.raises(UnsafeArchiveError, match="through a symlink"):
            reader.read("pkg/notes.txt")
