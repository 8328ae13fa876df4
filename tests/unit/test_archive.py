"""The archive layer: aligned STORED records, zip64, readers over files, buffers and dirs."""

from __future__ import annotations

import array
import io
import mmap
import re
import struct
import tracemalloc
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import pytest

from _archives import write_records
from torchpkg import _archive
from torchpkg._archive import ALIGNMENT, ArchiveWriter
from torchpkg._archive_reader import DirectoryArchiveReader, ZipArchiveReader, open_archive
from torchpkg.errors import ArchiveFormatError, RecordNotFoundError

RECORDS = {
    "pkg/__init__.py": b"",
    "pkg/model.py": b"import torch\n",
    ".data/0.storage": bytes(range(256)) * 3,
    ".data/extern_modules": b"torch\n",
    ".data/version": b"6\n",
}


def write_archive(
    records: Mapping[str, bytes | memoryview] = RECORDS, archive_name: str = "archive"
) -> bytes:
    out = io.BytesIO()
    write_records(out, records, archive_name)
    return out.getvalue()


@pytest.fixture
def archive_path(tmp_path: Path) -> Path:
    path = tmp_path / "my_pkg.pt"
    path.write_bytes(write_archive(archive_name="my_pkg"))
    return path


def local_headers(data: bytes) -> list[tuple[str, bytes, int]]:
    """(name, extra field, data offset) of each local header, parsed independently of _archive."""
    headers, pos = [], 0
    while data.startswith(b"PK\x03\x04", pos):
        size, name_len, extra_len = struct.unpack_from("<L2H", data, pos + 22)
        name_end = pos + 30 + name_len
        offset = name_end + extra_len
        headers.append((data[pos + 30 : name_end].decode(), data[name_end:offset], offset))
        pos = offset + size
    return headers


def test_round_trip_gives_every_record_back_in_write_order(archive_path: Path) -> None:
    with ZipArchiveReader(archive_path) as reader:
        assert reader.records() == list(RECORDS)
        assert {name: reader.read(name) for name in RECORDS} == RECORDS
        assert reader.version() == 6


def test_records_are_stored_under_the_archive_name_folder(archive_path: Path) -> None:
    with zipfile.ZipFile(archive_path) as zf:
        assert zf.namelist() == [f"my_pkg/{name}" for name in RECORDS]
        assert {info.compress_type for info in zf.infolist()} == {zipfile.ZIP_STORED}


def test_every_record_data_starts_at_a_64_byte_aligned_offset(archive_path: Path) -> None:
    headers = local_headers(archive_path.read_bytes())
    assert [name for name, _, _ in headers] == [f"my_pkg/{name}" for name in RECORDS]
    with ZipArchiveReader(archive_path) as reader:
        for (_, extra, offset), name in zip(headers, RECORDS, strict=True):
            assert extra[:2] == b"FB"  # torch's padding header id
            assert offset % ALIGNMENT == 0
            assert reader.record_offset(name) == offset


def test_same_records_in_same_order_give_identical_bytes() -> None:
    assert write_archive() == write_archive()


def test_timestamps_are_fixed_at_1980_01_01() -> None:
    with zipfile.ZipFile(io.BytesIO(write_archive())) as zf:
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_writing_a_record_name_twice_raises_value_error_naming_it() -> None:
    writer = ArchiveWriter(io.BytesIO())
    writer.write_record("pkg/a.py", b"1")
    with pytest.raises(ValueError, match=r"'pkg/a\.py' was already written"):
        writer.write_record("pkg/a.py", b"2")


@pytest.mark.parametrize("name", ["../evil", "/etc/passwd", "a/../../b", "C:/x", "", "pkg/"])
def test_writer_rejects_names_that_are_not_relative_file_paths(name: str) -> None:
    with pytest.raises(ValueError, match="invalid record name"):
        ArchiveWriter(io.BytesIO()).write_record(name, b"")


def test_writer_tracks_records_and_has_record() -> None:
    writer = ArchiveWriter(io.BytesIO())
    writer.write_record("b.txt", b"")
    writer.write_record("a.txt", b"")
    assert writer.records == ["b.txt", "a.txt"]
    assert writer.has_record("a.txt")
    assert not writer.has_record("c.txt")


def _sealed(records: Mapping[str, bytes]) -> dict[str, bytes]:
    """The records of an archive whose writer wrote its serialization id, in order."""
    out = io.BytesIO()
    writer = ArchiveWriter(out)
    for name, data in records.items():
        writer.write_record(name, data)
    writer.write_serialization_id()
    writer.close()
    with zipfile.ZipFile(out) as zf:
        return {name.split("/", 1)[1]: zf.read(name) for name in zf.namelist()}


def test_serialization_id_is_the_last_record_and_forty_digits() -> None:
    written = _sealed({"a.txt": b"a", ".data/version": b"6\n"})
    assert list(written)[-1] == _archive.SERIALIZATION_ID
    assert len(written[_archive.SERIALIZATION_ID]) == 40
    assert written[_archive.SERIALIZATION_ID].isdigit()


def test_serialization_id_is_the_same_for_the_same_records() -> None:
    first = _sealed({"a.txt": b"a", "b.txt": b"b"})[_archive.SERIALIZATION_ID]
    assert _sealed({"a.txt": b"a", "b.txt": b"b"})[_archive.SERIALIZATION_ID] == first


@pytest.mark.parametrize(
    "other", [{"a.txt": b"A", "b.txt": b"b"}, {"a.txt": b"a", "c.txt": b"b"}, {"a.txt": b"a"}]
)
def test_serialization_id_changes_with_any_record_name_or_content(
    other: dict[str, bytes],
) -> None:
    first = _sealed({"a.txt": b"a", "b.txt": b"b"})[_archive.SERIALIZATION_ID]
    assert _sealed(other)[_archive.SERIALIZATION_ID] != first


def test_a_serialization_id_written_by_a_caller_is_replaced_by_the_writers_own() -> None:
    """As torch's writer: an id copied from another archive would not name this one."""
    written = _sealed({"a.txt": b"a", _archive.SERIALIZATION_ID: b"0" * 40})
    assert list(written) == ["a.txt", _archive.SERIALIZATION_ID]
    assert written[_archive.SERIALIZATION_ID] == _sealed({"a.txt": b"a"})[_archive.SERIALIZATION_ID]


def test_close_is_idempotent_and_leaves_the_file_object_open() -> None:
    out = io.BytesIO()
    writer = ArchiveWriter(out)
    writer.close()
    size = len(out.getvalue())
    writer.close()
    assert len(out.getvalue()) == size
    assert not out.closed


def test_writer_accepts_buffers_of_wider_items() -> None:
    floats = array.array("f", [1.0, 2.0, 3.0])
    with ZipArchiveReader(
        io.BytesIO(write_archive({".data/version": b"6\n", "f": memoryview(floats)}))
    ) as r:
        assert r.read("f") == floats.tobytes()


def test_zip64_fields_are_written_past_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_archive, "_ZIP64_LIMIT", 100)  # sizes and offsets past it need zip64
    data = write_archive()
    assert b"PK\x06\x06" in data  # zip64 end-of-central-directory record
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        assert zf.getinfo("archive/.data/0.storage").file_size == len(RECORDS[".data/0.storage"])
    with ZipArchiveReader(io.BytesIO(data)) as reader:
        assert {name: reader.read(name) for name in RECORDS} == RECORDS
        assert {(reader.record_offset(name) or 1) % ALIGNMENT for name in RECORDS} == {0}


def test_zip64_end_record_is_written_for_many_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_archive, "_MAX_COUNT", 3)  # stands in for 65535 entries
    data = write_archive()
    assert b"PK\x06\x06" in data
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert len(zf.infolist()) == len(RECORDS)


class PipeLike(io.RawIOBase):
    """A write-only stream that cannot seek or tell and takes at most 100 bytes per call."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        chunk = bytes(memoryview(data)[:100])  # type: ignore[arg-type]
        self.chunks.append(chunk)
        return len(chunk)

    def seek(self, *args: object) -> int:
        raise OSError("not seekable")

    def tell(self) -> int:
        raise OSError("cannot tell")


def test_writer_never_seeks_and_handles_partial_writes() -> None:
    pipe = PipeLike()
    writer = ArchiveWriter(pipe)  # type: ignore[arg-type]
    for name, data in RECORDS.items():
        writer.write_record(name, data)
    writer.close()
    assert b"".join(pipe.chunks) == write_archive()


LARGE = {"big.bin": bytes(range(256)) * (12 << 10), "small.txt": b"after"}  # 3 MiB, then more


def local_crcs(data: bytes) -> dict[str, int]:
    """The CRC-32 each local header states, by record name."""
    return {
        name: struct.unpack_from("<L", data, offset - len(extra) - len(name) - 30 + 14)[0]
        for name, extra, offset in local_headers(data)
    }


@pytest.mark.parametrize("mode", ["wb", "w+b", "ab"])
def test_a_large_record_written_to_a_file_states_its_crc_in_its_local_header(
    tmp_path: Path, mode: str
) -> None:
    """Its CRC is computed while it is written, then filled into the header in place."""
    path = tmp_path / "large.pt"
    with path.open(mode) as out:
        write_records(out, LARGE, "archive")
    data = path.read_bytes()
    assert local_crcs(data) == {f"archive/{n}": zlib.crc32(d) for n, d in LARGE.items()}
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None


def test_a_large_record_written_to_a_stream_gets_the_same_bytes_as_to_a_file(
    tmp_path: Path,
) -> None:
    """A pipe cannot be rewritten: there the CRC is computed before the header goes out."""
    pipe = PipeLike()
    write_records(pipe, LARGE, "archive")  # type: ignore[arg-type]
    path = tmp_path / "large.pt"
    with path.open("wb") as out:
        write_records(out, LARGE, "archive")
    assert b"".join(pipe.chunks) == path.read_bytes()


@pytest.mark.parametrize("mmap", [True, False], ids=["mapped", "read"])
def test_a_record_whose_local_header_was_overwritten_is_reported_damaged(
    tmp_path: Path, mmap: bool
) -> None:
    data = bytearray(write_archive())
    _, _, offset = next(h for h in local_headers(bytes(data)) if h[0].endswith("0.storage"))
    start = data.rindex(b"PK\x03\x04", 0, offset)
    data[start : start + 4] = b"XX\x03\x04"
    path = tmp_path / "damaged.pt"
    path.write_bytes(data)
    expected = re.escape("no local header for record 'archive/.data/0.storage'")
    with (
        ZipArchiveReader(path, mmap=mmap) as reader,
        pytest.raises(ArchiveFormatError, match=expected),
    ):
        reader.read_view(".data/0.storage")


def test_read_view_of_a_file_is_a_writable_view_of_a_private_mmap(archive_path: Path) -> None:
    with ZipArchiveReader(archive_path) as reader:
        view = reader.read_view(".data/0.storage")
        assert isinstance(view.obj, mmap.mmap)
        assert not view.readonly
        view[0] = 0xAB
    with ZipArchiveReader(archive_path) as reader:
        assert reader.read(".data/0.storage") == RECORDS[".data/0.storage"]  # file untouched


def test_two_read_views_of_one_record_do_not_see_each_others_writes(archive_path: Path) -> None:
    with ZipArchiveReader(archive_path) as reader:
        view, again = reader.read_view(".data/0.storage"), reader.read_view(".data/0.storage")
        view[0] = 0xAB
        assert again[0] == RECORDS[".data/0.storage"][0]


def test_views_of_one_set_share_a_single_map(archive_path: Path) -> None:
    with ZipArchiveReader(archive_path) as reader:
        views = reader.views()
        view, again = views.view(".data/0.storage"), views.view(".data/0.storage")
        view[0] = 0xAB
        assert again[0] == 0xAB  # the same private map: nothing was copied
        assert reader.views().view(".data/0.storage")[0] == RECORDS[".data/0.storage"][0]


def test_read_view_without_mmap_is_a_writable_copy(archive_path: Path) -> None:
    with ZipArchiveReader(archive_path, mmap=False) as reader:
        view, again = reader.read_view(".data/0.storage"), reader.read_view(".data/0.storage")
        assert isinstance(view.obj, bytearray)
        view[0] = 0xAB
        assert again[0] == 0
        assert bytes(again) == RECORDS[".data/0.storage"]


def test_read_view_of_bytesio_is_a_copy_that_never_writes_into_the_callers_buffer() -> None:
    source = io.BytesIO(write_archive())
    before = source.getvalue()
    with ZipArchiveReader(source) as reader:
        view = reader.read_view(".data/0.storage")
        assert bytes(view) == RECORDS[".data/0.storage"]
        view[0] = 0xAB
    assert source.getvalue() == before


def test_read_view_of_bytesio_without_mmap_is_a_copy() -> None:
    with ZipArchiveReader(io.BytesIO(write_archive()), mmap=False) as reader:
        assert isinstance(reader.read_view(".data/0.storage").obj, bytearray)


def test_file_object_with_a_fileno_is_mapped(archive_path: Path) -> None:
    with archive_path.open("rb") as file, ZipArchiveReader(file) as reader:
        assert reader.name == "<binary>"
        assert isinstance(reader.read_view("pkg/model.py").obj, mmap.mmap)


def test_file_object_without_a_fileno_falls_back_to_reading(archive_path: Path) -> None:
    source = io.BufferedReader(io.BytesIO(archive_path.read_bytes()))
    with source, ZipArchiveReader(source) as reader:
        view = reader.read_view("pkg/model.py")
    assert isinstance(view.obj, bytearray)
    assert bytes(view) == RECORDS["pkg/model.py"]


def test_close_with_live_views_does_not_raise_and_views_stay_valid(archive_path: Path) -> None:
    reader = ZipArchiveReader(archive_path)
    view = reader.read_view(".data/0.storage")
    reader.close()
    reader.close()
    assert bytes(view) == RECORDS[".data/0.storage"]


def test_reading_a_closed_reader_raises_value_error(archive_path: Path) -> None:
    reader = ZipArchiveReader(archive_path)
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.read_view("pkg/model.py")


def test_read_view_of_many_large_records_copies_nothing(tmp_path: Path) -> None:
    block = memoryview(bytearray(5 * 2**20))  # 20 x 5 MiB, written from one buffer
    records = {".data/version": b"6\n"} | {f".data/{i}.storage": block for i in range(20)}
    path = tmp_path / "big.pt"
    with path.open("wb") as out:
        write_records(out, records, "big")
    with ZipArchiveReader(path) as reader:
        tracemalloc.start()
        views = [reader.read_view(f".data/{i}.storage") for i in range(20)]
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 2**20
        assert all(
            view.nbytes == block.nbytes and isinstance(view.obj, mmap.mmap) for view in views
        )


def test_deflated_records_are_readable(tmp_path: Path) -> None:
    path = tmp_path / "deflated.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in RECORDS.items():
            zf.writestr(f"deflated/{name}", data)
    with ZipArchiveReader(path) as reader:
        assert reader.read(".data/0.storage") == RECORDS[".data/0.storage"]
        view = reader.read_view(".data/0.storage")
        assert bytes(view) == RECORDS[".data/0.storage"]
        assert not view.readonly
        assert reader.record_offset(".data/0.storage") is None


def zip_of(names: list[str]) -> io.BytesIO:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name in names:
            zf.writestr(name, b"6\n" if name.endswith("version") else b"x")
    return out


def test_top_level_folder_is_stripped_when_it_holds_the_version_record() -> None:
    with ZipArchiveReader(zip_of(["model/.data/version", "model/pkg/a.py"])) as reader:
        assert reader.records() == [".data/version", "pkg/a.py"]


def test_legacy_version_record_under_the_top_folder_is_found() -> None:
    with ZipArchiveReader(zip_of(["model/version", "model/data.pkl"])) as reader:
        assert reader.records() == ["version", "data.pkl"]
        assert reader.version() == 6


def test_zip_of_unzipped_package_contents_is_read_as_it_is() -> None:
    with ZipArchiveReader(zip_of([".data/version", "pkg/a.py"])) as reader:
        assert reader.records() == [".data/version", "pkg/a.py"]


def test_data_folder_alone_is_not_taken_for_a_top_level_folder() -> None:
    with ZipArchiveReader(zip_of([".data/version", ".data/extern_modules"])) as reader:
        assert reader.records() == [".data/version", ".data/extern_modules"]


def test_zip_directory_entries_are_not_records() -> None:
    with ZipArchiveReader(zip_of(["m/", "m/.data/", "m/.data/version", "m/a.py"])) as reader:
        assert reader.records() == [".data/version", "a.py"]


@pytest.fixture
def package_dir(tmp_path: Path, archive_path: Path) -> Path:
    with zipfile.ZipFile(archive_path) as zf:
        zf.extractall(tmp_path / "unzipped")
    return tmp_path / "unzipped" / "my_pkg"


def test_directory_reader_reads_an_unzipped_package(package_dir: Path) -> None:
    with open_archive(package_dir) as reader:
        assert isinstance(reader, DirectoryArchiveReader)
        assert reader.records() == sorted(RECORDS)
        assert reader.read("pkg/model.py") == RECORDS["pkg/model.py"]
        assert reader.version() == 6
        assert reader.record_offset("pkg/model.py") is None


def test_directory_read_view_is_a_writable_copy_of_the_file(package_dir: Path) -> None:
    reader = DirectoryArchiveReader(package_dir)
    view = reader.read_view(".data/0.storage")
    view[0] = 0xAB
    assert bytes(view[1:]) == RECORDS[".data/0.storage"][1:]
    assert (package_dir / ".data/0.storage").read_bytes() == RECORDS[".data/0.storage"]


def test_directory_without_version_record_is_accepted(package_dir: Path) -> None:
    (package_dir / ".data" / "version").unlink()
    assert DirectoryArchiveReader(package_dir).version() == _archive.WRITTEN_VERSION


def test_directory_reader_refuses_names_outside_the_directory(package_dir: Path) -> None:
    reader = DirectoryArchiveReader(package_dir)
    assert not reader.has_record("../my_pkg/pkg/model.py")
    with pytest.raises(RecordNotFoundError):
        reader.read("../my_pkg/pkg/model.py")


def test_open_archive_of_a_file_path_gives_a_zip_reader(archive_path: Path) -> None:
    with open_archive(str(archive_path), mmap=False) as reader:
        assert isinstance(reader, ZipArchiveReader)
        assert reader.name == str(archive_path)
        assert isinstance(reader.read_view("pkg/model.py").obj, bytearray)
