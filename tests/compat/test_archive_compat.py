"""Archives cross over both ways between the archive layer and torch's own zip reader/writer."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch.package import PackageExporter, PackageImporter  # noqa: E402

import torchpkg  # noqa: E402
from _archives import write_records  # noqa: E402
from torchpkg._archive import ALIGNMENT  # noqa: E402
from torchpkg._archive_reader import ZipArchiveReader  # noqa: E402

TENSOR = torch.arange(100, dtype=torch.float32)
RECORDS = {
    "pkg/__init__.py": b"",
    "pkg/notes.txt": b"hello",
    ".data/0.storage": TENSOR.numpy().tobytes(),
    ".data/version": b"6\n",
}


@pytest.fixture
def written(tmp_path: Path) -> Path:
    path = tmp_path / "ours.pt"
    with path.open("wb") as out:
        write_records(out, RECORDS, "ours")
    return path


def test_torch_reader_lists_and_reads_our_records(written: Path) -> None:
    reader = torch._C.PyTorchFileReader(str(written))
    assert sorted(reader.get_all_records()) == sorted(RECORDS)
    assert {name: reader.get_record(name) for name in RECORDS} == RECORDS


def test_torch_reader_finds_our_storage_data_at_our_aligned_offset(written: Path) -> None:
    reader = torch._C.PyTorchFileReader(str(written))
    with ZipArchiveReader(written) as ours:
        offset = ours.record_offset(".data/0.storage")
    assert offset is not None
    assert offset % ALIGNMENT == 0
    assert reader.get_record_offset(".data/0.storage") == offset
    nbytes = TENSOR.nbytes
    storage = reader.get_storage_from_record(".data/0.storage", nbytes, torch.uint8)
    loaded = torch.frombuffer(bytearray(bytes(storage.untyped_storage())), dtype=torch.float32)
    assert torch.equal(loaded, TENSOR)


def test_torch_reader_reads_our_archive_from_a_file_object(written: Path) -> None:
    reader = torch._C.PyTorchFileReader(io.BytesIO(written.read_bytes()))
    assert reader.get_record("pkg/notes.txt") == b"hello"


def test_torch_reads_a_large_storage_whose_crc_torchpkg_filled_in_after_its_bytes(
    tmp_path: Path,
) -> None:
    """From 1 MiB on, a record's CRC is computed beside its write and patched in after."""
    large = torch.randn(1 << 20)  # 4 MiB
    path = tmp_path / "large.pt"
    with torchpkg.PackageExporter(path) as exporter:
        exporter.save_pickle("pkg", "large.pkl", large)
    assert torch.equal(PackageImporter(str(path)).load_pickle("pkg", "large.pkl"), large)
    reader = torch._C.PyTorchFileReader(str(path))
    (storage,) = [name for name in reader.get_all_records() if name.endswith(".storage")]
    assert reader.get_record(storage) == large.numpy().tobytes()


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    path = tmp_path / "exported.pt"
    with PackageExporter(str(path)) as exporter:
        exporter.save_text("pkg", "notes.txt", "hello")
        exporter.save_pickle("pkg", "tensor.pkl", TENSOR)
    return path


def test_package_exporter_archive_reads_with_prefix_stripped(exported: Path) -> None:
    with ZipArchiveReader(exported) as reader:
        records = reader.records()
        assert {"pkg/notes.txt", "pkg/tensor.pkl", ".data/version"} <= set(records)
        assert not any(name.startswith("exported/") for name in records)
        assert reader.version() == 6
        assert reader.read("pkg/notes.txt") == b"hello"


def test_package_exporter_storage_is_a_zero_copy_view_of_the_tensor_bytes(exported: Path) -> None:
    with ZipArchiveReader(exported) as reader:
        (storage,) = [name for name in reader.records() if name.endswith(".storage")]
        offset = reader.record_offset(storage)
        assert offset is not None
        assert offset % ALIGNMENT == 0
        view = reader.read_view(storage)
        assert torch.equal(torch.frombuffer(view, dtype=torch.float32), TENSOR)


def test_package_rewritten_record_by_record_loads_in_package_importer(
    exported: Path, tmp_path: Path
) -> None:
    path = tmp_path / "rewritten.pt"
    with ZipArchiveReader(exported) as reader, path.open("wb") as out:
        write_records(out, {name: reader.read_view(name) for name in reader.records()}, "rewritten")
    importer = PackageImporter(str(path))
    assert importer.load_text("pkg", "notes.txt") == "hello"
    assert torch.equal(importer.load_pickle("pkg", "tensor.pkl"), TENSOR)


# --- .data/serialization_id ----------------------------------------------------------------

EXPORTERS = [
    pytest.param(PackageExporter, id="torch.package"),
    pytest.param(torchpkg.PackageExporter, id="torchpkg"),
]
_U64 = (1 << 64) - 1


def _export(exporter_cls: type[Any], path: Path, text: str = "hello") -> Path:
    with exporter_cls(str(path)) as exporter:
        exporter.save_text("pkg", "notes.txt", text)
        exporter.save_pickle("pkg", "tensor.pkl", TENSOR)
    return path


def _serialization_id(path: Path) -> bytes:
    with zipfile.ZipFile(path) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith("/.data/serialization_id")]
        return zf.read(name)


@pytest.mark.parametrize("exporter_cls", EXPORTERS)
def test_every_export_ends_with_a_forty_digit_serialization_id(
    exporter_cls: type[Any], tmp_path: Path
) -> None:
    with zipfile.ZipFile(_export(exporter_cls, tmp_path / "p.pt")) as zf:
        names = zf.namelist()
    assert names[-1] == "p/.data/serialization_id"
    assert re.fullmatch(rb"\d{40}", _serialization_id(tmp_path / "p.pt"))


@pytest.mark.parametrize("exporter_cls", EXPORTERS)
def test_the_id_ends_with_the_crcs_of_the_records_before_it_combined_as_torch_does(
    exporter_cls: type[Any], tmp_path: Path
) -> None:
    path = _export(exporter_cls, tmp_path / "p.pt")
    combined = 0
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist()[:-1]:
            mixed = (info.CRC + 0x9E3779B9 + (combined << 6) + (combined >> 2)) & _U64
            combined ^= mixed
    assert _serialization_id(path)[20:] == f"{combined:020d}".encode()


@pytest.mark.parametrize("exporter_cls", EXPORTERS)
def test_the_same_export_gives_the_same_id_and_other_contents_another(
    exporter_cls: type[Any], tmp_path: Path
) -> None:
    first = _serialization_id(_export(exporter_cls, tmp_path / "a.pt"))
    assert _serialization_id(_export(exporter_cls, tmp_path / "b.pt")) == first
    assert _serialization_id(_export(exporter_cls, tmp_path / "c.pt", "other")) != first


def test_torch_reader_reads_our_serialization_id(tmp_path: Path) -> None:
    path = _export(torchpkg.PackageExporter, tmp_path / "p.pt")
    reader = torch._C.PyTorchFileReader(str(path))
    assert reader.serialization_id().encode() == _serialization_id(path)


@pytest.mark.parametrize("exporter_cls", EXPORTERS)
def test_file_structure_lists_the_serialization_id_as_torch_package_does(
    exporter_cls: type[Any], tmp_path: Path
) -> None:
    path = _export(exporter_cls, tmp_path / "p.pt")
    theirs = PackageImporter(str(path)).file_structure()
    with torchpkg.PackageImporter(path) as importer:
        ours = importer.file_structure(include_private=True)  # every record, as torch.package
    assert str(ours) == str(theirs)
    assert ours.has_file(".data/serialization_id")
