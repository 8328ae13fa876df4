"""The integrity manifest: what the exporter writes, and what ``verify=True`` finds.

Archives are altered after export with Python's zipfile (tests/_tamper.py), as
a tool that knows nothing of the manifest would.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import pickle
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import blake3
import pytest

import torchpkg.exporter
from _archives import write_records
from _tamper import read_records, remove, replace, tamper
from torchpkg import (
    ArchiveFormatError,
    IntegrityError,
    PackageExporter,
    PackageImporter,
    UnsafeArchiveError,
    UnverifiedArchiveError,
    sys_importer,
)
from torchpkg._archive import SERIALIZATION_ID, ArchiveWriter
from torchpkg._archive_reader import DirectoryArchiveReader
from torchpkg._digest import DigestAlgorithm
from torchpkg.records import MANIFEST_RECORD, Manifest
from torchpkg.security import RecordStatus, check_integrity
from torchpkg.security._integrity import IntegrityReport

SourceTree = Callable[..., str]

MODELS = """\
class Thing:
    def __init__(self, value):
        self.value = value
"""


def manifest_of(path: Path) -> Manifest:
    return Manifest.from_json(read_records(path)[1][MANIFEST_RECORD])


def check_integrity_of(path: Path) -> IntegrityReport:
    with PackageImporter(path) as importer:
        return check_integrity(importer.zip_reader)


@pytest.fixture
def top(source_tree: SourceTree) -> str:
    return source_tree({"__init__.py": "", "models.py": MODELS})


@pytest.fixture
def archive(tmp_path: Path, top: str) -> Path:
    """A torch-free package: an interned module, a pickle of its class, a text resource."""
    thing = importlib.import_module(f"{top}.models").Thing(42)
    path = tmp_path / "package.pt"
    with PackageExporter(path) as exporter:
        exporter.intern(f"{top}.**")
        exporter.save_pickle("obj", "thing.pkl", thing)
        exporter.save_text("notes", "readme.txt", "hello")
    return path


def unzipped(archive: Path, tmp_path: Path) -> Path:
    """The package folder of ``archive`` unpacked under ``tmp_path``."""
    folder = tmp_path / "unzipped"
    shutil.unpack_archive(archive, folder, "zip")
    (package,) = folder.iterdir()
    return package


# --- the manifest the exporter writes ---------------------------------------------------


def test_the_manifest_holds_the_blake3_of_every_record_but_itself_and_the_id(
    archive: Path,
) -> None:
    _, records = read_records(archive)
    manifest = Manifest.from_json(records[MANIFEST_RECORD])
    covered = {name for name in records if name not in (MANIFEST_RECORD, SERIALIZATION_ID)}
    assert manifest.algorithm is DigestAlgorithm.BLAKE3
    assert set(manifest.digests) == covered
    for name, digest in manifest.digests.items():
        assert blake3.blake3(records[name]).hexdigest() == digest, name


def test_the_manifest_is_the_last_record_before_the_serialization_id(archive: Path) -> None:
    assert list(read_records(archive)[1])[-2:] == [MANIFEST_RECORD, SERIALIZATION_ID]


def test_the_manifest_covers_the_framework_records(archive: Path) -> None:
    digests = manifest_of(archive).digests
    for record in (".data/version", ".data/extern_modules", ".data/torchpkg/environment.json"):
        assert record in digests


def test_the_manifest_covers_storages_and_torchscript_records(
    tmp_path: Path, source_tree: SourceTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = pytest.importorskip("torch")
    from _torch_models import import_models

    monkeypatch.setattr(torchpkg.exporter, "_gate_torchscript_serialization", False)
    models = import_models(source_tree)
    path = tmp_path / "scripted.pt"
    with PackageExporter(path) as exporter:
        exporter.intern(f"{models.__package__}.**")
        exporter.save_pickle("obj", "scripted.pkl", torch.jit.script(models.Affine()))
        exporter.save_pickle("obj", "tensor.pkl", torch.arange(4.0))
    digests = manifest_of(path).digests
    assert any(name.startswith(".data/ts_code/") for name in digests)
    assert any(name.endswith(".storage") for name in digests)
    assert check_integrity_of(path).verified


@pytest.mark.parametrize("size", [2 << 20, 20 << 20], ids=["2 MiB", "20 MiB, several cores"])
def test_a_record_hashed_on_the_side_thread_has_its_own_digest(size: int) -> None:
    """Records from 1 MiB on are hashed on a second thread while they are written."""
    big = bytes(range(256)) * (size // 256)
    out = io.BytesIO()
    writer = ArchiveWriter(out)
    writer.write_record("big.bin", big)
    writer.write_manifest()
    writer.close()
    manifest = Manifest.from_json(zipfile.ZipFile(out).read(f"archive/{MANIFEST_RECORD}"))
    assert manifest.digests == {"big.bin": blake3.blake3(big).hexdigest()}


def test_a_manifest_written_by_the_caller_is_dropped_for_the_writers_own() -> None:
    """A manifest copied from another archive would not describe this one."""
    out = io.BytesIO()
    write_records(out, {"a.txt": b"a", MANIFEST_RECORD: b"copied"}, "archive")
    assert zipfile.ZipFile(out).namelist() == ["archive/a.txt"]


def test_no_record_may_be_written_after_the_manifest() -> None:
    writer = ArchiveWriter(io.BytesIO())
    writer.write_manifest()
    with pytest.raises(ValueError, match="after the manifest"):
        writer.write_record("late.txt", b"")


def test_reexporting_a_loaded_package_writes_a_fresh_manifest(
    archive: Path, tmp_path: Path, top: str
) -> None:
    importer = PackageImporter(archive)
    thing = importer.load_pickle("obj", "thing.pkl")
    again = tmp_path / "again.pt"
    with PackageExporter(again, importer=(importer, sys_importer)) as exporter:
        exporter.intern(f"{top}.**")
        exporter.save_pickle("copy", "thing.pkl", thing)
    importer.close()
    assert "copy/thing.pkl" in manifest_of(again).digests
    assert "obj/thing.pkl" not in manifest_of(again).digests
    assert check_integrity_of(again).verified


# --- verify=True ------------------------------------------------------------------------


def test_verify_true_loads_an_archive_that_matches_its_manifest(archive: Path) -> None:
    with PackageImporter(archive, verify=True) as importer:
        assert importer.load_pickle("obj", "thing.pkl").value == 42


def test_verify_true_loads_an_unzipped_package_that_matches_its_manifest(
    archive: Path, tmp_path: Path
) -> None:
    package = unzipped(archive, tmp_path)
    with PackageImporter(package, verify=True) as importer:
        assert importer.load_pickle("obj", "thing.pkl").value == 42


def _alter_pickle(path: Path, top: str) -> str:
    thing = importlib.import_module(f"{top}.models").Thing(7)
    replace(path, "obj/thing.pkl", pickle.dumps(thing, protocol=3))
    return "obj/thing.pkl"


def _alter_source(path: Path, top: str) -> str:
    record = f"{top}/models.py"
    replace(path, record, MODELS.encode() + b"ALTERED = True\n")
    return record


def _remove_resource(path: Path, top: str) -> str:
    remove(path, "notes/readme.txt")
    return "notes/readme.txt"


def _add_module(path: Path, top: str) -> str:
    replace(path, f"{top}/extra.py", b"print('added after export')\n")
    return f"{top}/extra.py"


ALTERATIONS = {
    "altered pickle": (_alter_pickle, RecordStatus.ALTERED),
    "altered source": (_alter_source, RecordStatus.ALTERED),
    "removed record": (_remove_resource, RecordStatus.MISSING),
    "added record": (_add_module, RecordStatus.EXTRA),
}


@pytest.mark.parametrize("alteration", ALTERATIONS.values(), ids=ALTERATIONS.keys())
def test_verify_true_refuses_an_archive_changed_after_export_naming_the_record(
    archive: Path, top: str, alteration: tuple[Callable[[Path, str], str], RecordStatus]
) -> None:
    alter, status = alteration
    record = alter(archive, top)
    with pytest.raises(IntegrityError) as info:
        PackageImporter(archive, verify=True)
    assert info.value.problems == {record: status}
    assert f"{status.value}: {record}" in str(info.value)
    assert "do not load it" in str(info.value)


def test_verify_true_refuses_an_altered_storage(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "tensor.pt"
    with PackageExporter(path) as exporter:
        exporter.save_pickle("obj", "tensor.pkl", torch.arange(4.0))
    replace(path, ".data/0.storage", torch.arange(4.0).neg().numpy().tobytes())
    with pytest.raises(IntegrityError) as info:
        PackageImporter(path, verify=True)
    assert info.value.problems == {".data/0.storage": RecordStatus.ALTERED}


@pytest.mark.parametrize("sha256", [False, True], ids=["blake3", "sha256"])
def test_every_difference_is_reported_in_one_error(archive: Path, top: str, sha256: bool) -> None:
    if sha256:
        with_sha256_manifest(archive)

    def change(records: dict[str, bytes]) -> None:
        records[f"{top}/models.py"] += b"\n"
        del records["notes/readme.txt"]
        records["payload.py"] = b""

    tamper(archive, change)
    with pytest.raises(IntegrityError) as info:
        PackageImporter(archive, verify=True)
    assert info.value.problems == {
        f"{top}/models.py": RecordStatus.ALTERED,
        "notes/readme.txt": RecordStatus.MISSING,
        "payload.py": RecordStatus.EXTRA,
    }


@pytest.mark.parametrize("mmap", [True, False], ids=["mapped", "read"])
def test_a_record_changed_in_place_is_altered_whether_mapped_or_read(
    archive: Path, mmap: bool
) -> None:
    """Bytes changed without rewriting the zip: mapped views are not CRC-checked, reads are."""
    data = archive.read_bytes()
    at = data.index(b"hello")  # notes/readme.txt, stored as it is
    archive.write_bytes(data[:at] + b"HELLO" + data[at + 5 :])
    with pytest.raises(IntegrityError) as info:
        PackageImporter(archive, verify=True, mmap=mmap)
    assert info.value.problems == {"notes/readme.txt": RecordStatus.ALTERED}


def test_a_symlink_planted_after_open_is_refused_not_reported_as_altered(
    archive: Path, tmp_path: Path
) -> None:
    package = unzipped(archive, tmp_path)
    reader = DirectoryArchiveReader(package)
    readme = package / "notes" / "readme.txt"
    readme.unlink()
    readme.symlink_to(tmp_path / "elsewhere.txt")
    (tmp_path / "elsewhere.txt").write_text("hello")
    with pytest.raises(UnsafeArchiveError):
        check_integrity(reader)


def test_a_manifest_that_is_not_valid_is_reported_as_altered(archive: Path) -> None:
    replace(archive, MANIFEST_RECORD, b"{not json")
    with pytest.raises(IntegrityError) as info:
        PackageImporter(archive, verify=True)
    assert info.value.problems == {MANIFEST_RECORD: RecordStatus.ALTERED}


@pytest.mark.parametrize("mmap", [True, False], ids=["mapped", "read"])
def test_a_manifest_changed_in_place_is_reported_as_altered(archive: Path, mmap: bool) -> None:
    data = archive.read_bytes()
    archive.write_bytes(data.replace(b'"algorithm": "blake3"', b'"algorithm": "blake4"'))
    with pytest.raises(IntegrityError) as info:
        PackageImporter(archive, verify=True, mmap=mmap)
    assert info.value.problems == {MANIFEST_RECORD: RecordStatus.ALTERED}


def test_a_file_added_to_an_unzipped_package_is_reported_as_extra(
    archive: Path, tmp_path: Path
) -> None:
    package = unzipped(archive, tmp_path)
    (package / "notes" / "planted.txt").write_text("added")
    with pytest.raises(IntegrityError) as info:
        PackageImporter(package, verify=True)
    assert info.value.problems == {"notes/planted.txt": RecordStatus.EXTRA}


def test_verify_false_is_the_default_and_reads_no_manifest(archive: Path, top: str) -> None:
    _alter_source(archive, top)
    with PackageImporter(archive) as importer:
        assert importer.import_module(f"{top}.models").ALTERED


# --- archives without a manifest --------------------------------------------------------


@pytest.fixture
def unverified(archive: Path) -> Path:
    """The archive as torch.package (or a torchpkg from before manifests) would write it."""
    remove(archive, MANIFEST_RECORD)
    return archive


def test_an_archive_without_a_manifest_is_unverified_not_altered(unverified: Path) -> None:
    report = check_integrity_of(unverified)
    assert not report.has_manifest
    assert not report.verified
    assert report.problems == {}


def test_verify_true_on_an_archive_without_a_manifest_raises_unverified(
    unverified: Path,
) -> None:
    with pytest.raises(UnverifiedArchiveError, match="no integrity manifest") as info:
        PackageImporter(unverified, verify=True)
    assert "verify=False" in str(info.value)
    assert info.value.problems == {}


def test_an_archive_without_a_manifest_loads_with_verify_false(unverified: Path) -> None:
    with PackageImporter(unverified) as importer:
        assert importer.load_pickle("obj", "thing.pkl").value == 42


# --- the errors -------------------------------------------------------------------------


def test_integrity_errors_are_archive_format_errors() -> None:
    assert issubclass(UnverifiedArchiveError, IntegrityError)
    assert issubclass(IntegrityError, ArchiveFormatError)


@pytest.mark.parametrize(
    "error",
    [
        IntegrityError("model.pt", {"a.py": RecordStatus.ALTERED}),
        UnverifiedArchiveError("model.pt", {}),
    ],
    ids=["IntegrityError", "UnverifiedArchiveError"],
)
def test_integrity_errors_pickle_with_their_records(error: IntegrityError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (copy.archive, copy.problems, str(copy)) == (error.archive, error.problems, str(error))


def test_the_manifest_record_is_json_naming_its_algorithm(archive: Path) -> None:
    parsed = json.loads(read_records(archive)[1][MANIFEST_RECORD])
    assert parsed["algorithm"] == "blake3"
    assert parsed["records"] == manifest_of(archive).digests


# --- manifests written by earlier versions: SHA-256 --------------------------------------


def with_sha256_manifest(path: Path) -> None:
    """Rewrite the archive's manifest as torchpkg wrote it before BLAKE3."""

    def rewrite(records: dict[str, bytes]) -> None:
        digests = {
            name: hashlib.sha256(records[name]).hexdigest()
            for name in Manifest.from_json(records[MANIFEST_RECORD]).digests
        }
        records[MANIFEST_RECORD] = Manifest(digests, DigestAlgorithm.SHA256).to_json()

    tamper(path, rewrite)


def test_an_archive_with_a_sha256_manifest_still_verifies(archive: Path) -> None:
    with_sha256_manifest(archive)
    assert manifest_of(archive).algorithm is DigestAlgorithm.SHA256
    assert check_integrity_of(archive).verified


def test_an_altered_record_is_found_against_a_sha256_manifest(archive: Path) -> None:
    with_sha256_manifest(archive)
    replace(archive, "notes/readme.txt", b"changed")
    with pytest.raises(IntegrityError) as info:
        PackageImporter(archive, verify=True)
    assert info.value.problems == {"notes/readme.txt": RecordStatus.ALTERED}


def test_a_manifest_naming_an_unknown_algorithm_says_to_upgrade() -> None:
    data = Manifest({"a.txt": "00"}).to_json().replace(b'"blake3"', b'"blake9"')
    with pytest.raises(ValueError, match=r"unknown digest algorithm 'blake9'.*upgrade torchpkg"):
        Manifest.from_json(data)
