"""What fuzzing found (tests/fuzz, fuzz/run.py), each kept as a minimal input that once
leaked an untyped error, hung, or let a pickle past safe loading.
Inputs the driver keeps as files go in tests/corpus/fuzz/ instead, named after their
target (``load_pickle-….bin``): tests/fuzz replays each through that target.
"""

from __future__ import annotations

import copyreg
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from _archives import write_records
from _hostile import archive_bytes, glob, pickled, shell, text
from torchpkg import PackageImporter
from torchpkg._archive_reader import open_archive
from torchpkg._pickle_scan import replay_globals, scan_references
from torchpkg.errors import ArchiveFormatError
from torchpkg.records import ENVIRONMENT_RECORD, InvalidRecordError
from torchpkg.security import UnsafePickleError, scan_archive


def package(**replaced: bytes) -> bytes:
    records = {
        "pkg/__init__.py": b"",
        "pkg/data.pkl": pickled(text("data")),
        ".data/extern_modules": b"builtins\n",
        ".data/python_version": b"3.11.7\n",
        ".data/version": b"6\n",
    }
    out = io.BytesIO()
    write_records(out, {**records, **replaced}, "found")
    return out.getvalue()


def patched(data: bytes, signature: bytes, field: int, fmt: str, value: int) -> bytes:
    """``data`` with one field of its first header of that signature set to ``value``."""
    patched = bytearray(data)
    struct.pack_into(fmt, patched, patched.find(signature) + field, value)
    return bytes(patched)


CENTRAL, END = b"PK\x01\x02", b"PK\x05\x06"


# -- archives ----------------------------------------------------------------------------------


def test_record_that_starts_before_the_archive_is_a_format_error() -> None:
    """The end record places the directory further on than it is: zipfile moves every
    record back by the difference, to before the file (was: ValueError from seek)."""
    data = bytearray(package())
    end = data.rfind(END)
    offset = struct.unpack_from("<I", data, end + 16)[0]
    struct.pack_into("<I", data, end + 16, offset + 100)
    with pytest.raises(ArchiveFormatError, match="starts before the archive"):
        open_archive(io.BytesIO(bytes(data)))


def test_record_compressed_with_an_unknown_method_is_refused_at_open() -> None:
    """Was: NotImplementedError from zipfile on the first read of the record."""
    data = patched(package(), CENTRAL, 10, "<H", 99)
    with pytest.raises(ArchiveFormatError, match="compressed with zip method 99"):
        open_archive(io.BytesIO(data))


@pytest.mark.parametrize("flag", [0x20, 0x40], ids=["patched", "strongly_encrypted"])
def test_record_zipfile_cannot_read_is_refused_at_open(flag: int) -> None:
    """Was: NotImplementedError from zipfile on the first read of the record."""
    data = patched(package(), CENTRAL, 8, "<H", flag)
    with pytest.raises(ArchiveFormatError, match="encrypted record"):
        open_archive(io.BytesIO(data))


def test_zip_of_a_version_zipfile_cannot_read_is_a_format_error() -> None:
    """Was: NotImplementedError("zip file version 25.5") from zipfile at open."""
    data = patched(package(), CENTRAL, 6, "<H", 255)
    with pytest.raises(ArchiveFormatError, match="zip file version"):
        open_archive(io.BytesIO(data))


def test_record_with_an_empty_name_is_refused() -> None:
    """Was: IndexError from ZipInfo.is_dir() on the empty name."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("found/.data/version", b"6\n")
        archive.writestr(zipfile.ZipInfo(""), b"x")
    with pytest.raises(ArchiveFormatError, match=r"empty or '\.' part"):
        open_archive(io.BytesIO(out.getvalue()))


def test_extern_list_that_is_not_utf8_is_a_format_error() -> None:
    """Was: UnicodeDecodeError from PackageImporter, and from the scan."""
    data = package(**{".data/extern_modules": b"\x85os\n"})
    with pytest.raises(ArchiveFormatError, match=r"'\.data/extern_modules' that is not UTF-8"):
        PackageImporter(io.BytesIO(data))
    with open_archive(io.BytesIO(data)) as reader, pytest.raises(ArchiveFormatError):
        scan_archive(reader)


def test_python_version_that_is_not_utf8_is_a_format_error() -> None:
    data = package(**{".data/python_version": b"3.\xff"})
    with PackageImporter(io.BytesIO(data)) as importer, pytest.raises(ArchiveFormatError):
        importer.python_version()


def test_environment_record_that_is_not_json_is_a_format_error() -> None:
    """Was: a bare ValueError (it still is one, for callers that caught that)."""
    data = package(**{ENVIRONMENT_RECORD: b"{not json"})
    with pytest.raises(InvalidRecordError, match=r"environment\.json is not a valid record"):
        PackageImporter(io.BytesIO(data))
    assert issubclass(InvalidRecordError, ValueError)


# -- pickles -------------------------------------------------------------------------------------

# LONG_BINPUT 10**7: the C unpickler sizes its memo to twice the largest key.
HUGE_MEMO_KEY = b"\x80\x04N" + b"r" + struct.pack("<I", 10**7) + b"."


def test_pickle_with_a_memo_key_past_its_length_is_malformed_to_the_scan() -> None:
    """Was: gigabytes allocated by the replay (a hang) for keys near 2**31."""
    with pytest.raises(ValueError, match="memo key 10000000"):
        scan_references(HUGE_MEMO_KEY)


# A FRAME of 5 bytes that ends inside the 8-byte length of the BYTEARRAY8 it holds.
STRADDLED_FRAME = b"\x80\x05\x95" + struct.pack("<Q", 5) + b"\x96" + struct.pack("<Q", 2) + b"ab."


def test_pickle_with_an_opcode_past_the_end_of_its_frame_is_malformed_to_the_scan() -> None:
    """Was: the replay's C unpickler (Python 3.10, 3.11) raised MemoryError for such a
    pickle of 177 bytes, and printed that it freed a bytearray still exported."""
    with pytest.raises(ValueError, match="past the end of its frame at byte 16"):
        scan_references(STRADDLED_FRAME)


def test_safe_loading_refuses_a_memo_key_past_the_pickle_before_unpickling() -> None:
    archive = io.BytesIO(package(**{"pkg/data.pkl": HUGE_MEMO_KEY}))
    with (
        PackageImporter(archive, allow=[]) as importer,
        pytest.raises(UnsafePickleError, match="memo key") as info,
    ):
        importer.load_pickle("pkg", "data.pkl")
    assert "Nothing in the pickle ran" in str(info.value)


@pytest.mark.parametrize(
    ("pickle_data", "raised"),
    [
        (pickled(glob("builtins", "list") + b"K\x01R"), "TypeError"),  # REDUCE args: an int
        (pickled(b"G" + struct.pack(">d", 1.5) + b"K\x01a"), "AttributeError"),  # 1.5.append
        (pickled(b"K\x01Q"), "TypeError"),  # a persistent id that is an int
        (pickled(b"C\x02\xff\xfe\x85Q"), "UnicodeDecodeError"),  # ... bytes, not UTF-8
        (pickled(b"(" + text("reduce_package") + b"K\x01tQ"), "ValueError"),  # ... too short
    ],
    ids=["reduce_args", "append_to_float", "int_id", "non_utf8_id", "short_reduce_id"],
)
def test_pickle_that_passes_the_checks_but_fails_to_load_is_an_unsafe_pickle_error(
    pickle_data: bytes, raised: str
) -> None:
    """Was: whatever the unpickler or persistent_load raised, untyped."""
    archive = package(**{"pkg/data.pkl": pickle_data})
    with (
        PackageImporter(io.BytesIO(archive), allow=[]) as importer,
        pytest.raises(UnsafePickleError, match=rf"failed to load after byte \d+: {raised}"),
    ):
        importer.load_pickle("pkg", "data.pkl")


CODE = 0xF3  # registered only inside the tests below


@pytest.fixture
def extension() -> Iterator[None]:
    copyreg.add_extension("os", "system", CODE)
    yield
    copyreg.remove_extension("os", "system", CODE)


def test_scan_leaves_no_stand_in_in_copyregs_extension_cache(extension: None) -> None:
    """The replay's stand-in stayed cached: later unpickling got it instead of os.system."""
    replay_globals(pickled(b"\x82" + bytes([CODE])))
    assert pickle.loads(pickled(b"\x82" + bytes([CODE]))) is os.system


def test_safe_loading_judges_an_extension_code_this_process_unpickled_before(
    tmp_path: Path, extension: None
) -> None:
    """The unpickler serves a code it has seen from its cache without calling find_class:
    safe loading ran os.system for a pickle loaded after any other use of the code."""
    pickle.loads(pickled(b"\x82" + bytes([CODE])))  # os.system is in the cache now
    sentinel = tmp_path / "ran"
    payload = pickled(b"\x82" + bytes([CODE]) + b"(" + text(shell(str(sentinel))) + b"tR")
    with (
        PackageImporter(io.BytesIO(archive_bytes(payload)), allow=[]) as importer,
        pytest.raises(UnsafePickleError, match=r"os\.system"),
    ):
        importer.load_pickle("pkg", "data.pkl")
    assert not sentinel.exists()
