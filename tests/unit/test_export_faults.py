"""Exports that fail part-way: an error while writing, a full disk, a process killed.

Whatever fails, the target keeps what it held before (byte for byte), a new
target is not created, and no temp file stays behind; a temp file left by a
killed export (no cleanup runs on SIGKILL) is removed by the next export to the
same target.
"""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from torchpkg import PackageExporter, PackageImporter, _archive, _staging
from torchpkg._staging import stale_temp_files

SRC = str(Path(__file__).resolve().parents[2] / "src")


class Boom:
    """Pickles as an int, except the third instance pickled, whose __reduce__ raises."""

    reduced = 0

    def __reduce__(self) -> tuple[type[int], tuple[int]]:
        type(self).reduced += 1
        if type(self).reduced == 3:
            raise RuntimeError("cannot pickle the third Boom")
        return int, (1,)


class FullDisk:
    """A file whose writes fail with ENOSPC once ``room`` bytes are used up; from then
    on flushing and closing it fail too (its buffer cannot be written out)."""

    def __init__(self, file: Any, room: int) -> None:
        self._file = file
        self.room = room
        self.full = False

    def write(self, data: bytes | memoryview) -> int:
        if len(data) > self.room:
            self._no_space()
        self.room -= len(data)
        written: int = self._file.write(data)
        return written

    def flush(self) -> None:
        if self.full:
            self._no_space()
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        if self.full:
            self._no_space()

    def _no_space(self) -> None:
        self.full = True
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def export_booms(target: Path | BinaryIO) -> None:
    Boom.reduced = 0
    with PackageExporter(target) as exporter:
        for number in range(5):
            exporter.save_pickle("data", f"{number}.pkl", Boom())


def export(target: str | Path | BinaryIO, records: int = 3, size: int = 50_000) -> None:
    with PackageExporter(target) as exporter:
        for number in range(records):
            exporter.save_binary("data", f"{number}.bin", bytes([number]) * size)


@pytest.fixture
def previous(tmp_path: Path) -> tuple[Path, bytes]:
    """A target that already holds a package, and its bytes."""
    target = tmp_path / "model.pt"
    export(target, records=1, size=10)
    return target, target.read_bytes()


def assert_untouched(target: Path, before: bytes) -> None:
    assert target.read_bytes() == before
    assert sorted(os.listdir(target.parent)) == [target.name]  # no temp file


# -- an error in the middle of writing ---------------------------------------------------------


def test_reduce_that_raises_on_the_third_record_leaves_the_previous_file(
    previous: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    target, before = previous
    with pytest.raises(RuntimeError, match="third Boom"):
        export_booms(target)
    assert_untouched(target, before)


def test_reduce_that_raises_on_the_third_record_writes_nothing_to_a_file_object(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = io.BytesIO(b"earlier content")
    out.seek(0, io.SEEK_END)
    with pytest.raises(RuntimeError, match="third Boom"):
        export_booms(out)
    assert out.getvalue() == b"earlier content"


def test_failed_export_to_a_new_path_creates_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RuntimeError, match="third Boom"):
        export_booms(tmp_path / "new.pt")
    assert os.listdir(tmp_path) == []


# -- a full disk ----------------------------------------------------------------------------------


def full_disk_temp(monkeypatch: pytest.MonkeyPatch, room: int) -> None:
    """The staged temp file of a path target runs out of space after ``room`` bytes."""
    create = _staging._create_temp

    def create_on_full_disk(target: Path) -> tuple[Path, Any]:
        path, file = create(target)
        return path, FullDisk(file, room)

    monkeypatch.setattr(_staging, "_create_temp", create_on_full_disk)


# Bytes written before the disk is full (of about 152_900): none, in the first record's
# data, in the second's, in the records torchpkg adds at close, in the central directory.
ROOMS = [0, 100, 60_000, 150_700, 152_100]


@pytest.mark.parametrize("room", ROOMS)
def test_full_disk_while_writing_leaves_the_previous_file(
    previous: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch, room: int
) -> None:
    target, before = previous
    full_disk_temp(monkeypatch, room)
    with pytest.raises(OSError, match="No space left") as info:
        export(target)
    assert info.value.errno == errno.ENOSPC
    assert_untouched(target, before)


def test_failed_fsync_at_commit_leaves_the_previous_file(
    previous: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    target, before = previous

    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(_staging.os, "fsync", fsync)
    with pytest.raises(OSError, match="Input/output error"):
        export(target)
    assert_untouched(target, before)


@pytest.mark.parametrize(("durable", "fsyncs"), [(True, 1), (False, 0)])
def test_a_durable_export_fsyncs_before_the_rename_and_a_throwaway_one_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool, fsyncs: int
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(_staging.os, "fsync", calls.append)
    target = tmp_path / "model.pt"
    with PackageExporter(target, durable=durable) as exporter:
        exporter.save_text("notes", "a.txt", "hello")
    assert len(calls) == fsyncs
    with PackageImporter(target) as importer:
        assert importer.load_text("notes", "a.txt") == "hello"
    assert stale_temp_files(target) == []


class FullDiskFile(io.BufferedRandom):
    """A real file, whose headers the writer rewrites in place (a large record's CRC),
    and whose writes fail with ENOSPC once ``room`` bytes are used up."""

    def __init__(self, path: Path, room: int) -> None:
        super().__init__(io.FileIO(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL), "r+b"))
        self.room = room

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        if size > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= size
        return super().write(data)


# Bytes written before the disk is full, with three 2 MiB records (about 6.3 MB in all):
# none, in the first record's data, in the third's.
LARGE_ROOMS = [0, 1 << 20, 5 << 20]


@pytest.mark.parametrize("room", LARGE_ROOMS)
def test_full_disk_in_a_large_record_whose_crc_comes_after_leaves_the_previous_file(
    previous: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch, room: int
) -> None:
    target, before = previous
    create = _staging._create_temp

    def create_on_full_disk(target: Path) -> tuple[Path, Any]:
        path, file = create(target)
        file.close()
        path.unlink()
        return path, FullDiskFile(path, room)

    monkeypatch.setattr(_staging, "_create_temp", create_on_full_disk)
    with pytest.raises(OSError, match="No space left"):
        export(target, size=2 << 20)
    assert_untouched(target, before)


def test_a_failed_rewrite_of_a_large_records_crc_leaves_the_previous_file(
    previous: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    target, before = previous

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(_archive.os, "pwrite", pwrite)
    with pytest.raises(OSError, match="Input/output error"):
        export(target, size=2 << 20)
    assert_untouched(target, before)


@pytest.mark.parametrize("room", ROOMS)
def test_full_disk_while_spooling_for_a_file_object_writes_nothing_to_it(
    monkeypatch: pytest.MonkeyPatch, room: int
) -> None:
    """Past 64 MiB the spool of a file-object target is a temp file on disk."""
    spooled = _staging.tempfile.SpooledTemporaryFile
    monkeypatch.setattr(
        _staging.tempfile,
        "SpooledTemporaryFile",
        lambda **kwargs: FullDisk(spooled(**kwargs), room),
    )
    out = io.BytesIO(b"earlier content")
    out.seek(0, io.SEEK_END)
    with pytest.raises(OSError, match="No space left"):
        export(out)
    assert out.getvalue() == b"earlier content"


@pytest.mark.parametrize("room", ROOMS)
def test_full_disk_while_copying_into_a_file_object_cuts_off_what_was_added(
    tmp_path: Path, room: int
) -> None:
    path = tmp_path / "log.bin"
    path.write_bytes(b"earlier content")
    with open(path, "r+b") as file:
        file.seek(0, io.SEEK_END)
        with pytest.raises(OSError, match="No space left"):
            export(FullDisk(file, room))  # type: ignore[arg-type]
    assert path.read_bytes() == b"earlier content"


# -- a process killed mid-write -------------------------------------------------------------------

# Exports without end, one 1 MiB record at a time, saying after each that it was written.
ENDLESS_EXPORT = textwrap.dedent(
    """
    import itertools, sys
    from torchpkg import PackageExporter
    target = sys.argv[1] if sys.argv[2] == "path" else open(sys.argv[1], "ab")
    with PackageExporter(target) as exporter:
        for number in itertools.count():
            exporter.save_binary("data", f"{number}.bin", bytes(1 << 20))
            print(number, flush=True)
    """
)


def kill_mid_export(target: Path, kind: str, tmp: Path, records: int = 80) -> None:
    """Start the endless export; SIGKILL it once ``records`` records are written."""
    env = {**os.environ, "PYTHONPATH": SRC, "TMPDIR": str(tmp)}
    command = [sys.executable, "-c", ENDLESS_EXPORT, str(target), kind]
    with subprocess.Popen(command, stdout=subprocess.PIPE, env=env) as child:
        try:
            assert child.stdout is not None
            for _ in range(records):
                assert child.stdout.readline(), "the export ended before it was killed"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL


def test_killed_export_leaves_the_previous_file_and_a_recognisable_temp_file(
    previous: tuple[Path, bytes], tmp_path: Path
) -> None:
    target, before = previous
    kill_mid_export(target, "path", tmp_path)
    assert target.read_bytes() == before
    left = [path for path in tmp_path.iterdir() if path != target]
    assert [path.name.startswith(".model.pt.") for path in left] == [True]
    assert stale_temp_files(target) == left  # its writer is gone: nothing holds its lock


def test_next_export_to_the_target_removes_the_killed_exports_temp_file(
    previous: tuple[Path, bytes], tmp_path: Path
) -> None:
    target, _ = previous
    kill_mid_export(target, "path", tmp_path)
    export(target, records=2, size=10)
    assert os.listdir(tmp_path) == [target.name]
    with PackageImporter(target) as importer:
        assert importer.load_binary("data", "1.bin") == b"\x01" * 10


def test_live_exports_temp_file_is_not_taken_for_a_stale_one(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    with PackageExporter(target) as exporter:
        exporter.save_binary("data", "a.bin", b"a")
        assert stale_temp_files(target) == []
        export(target, records=1, size=1)  # a second export to the same target meanwhile
        assert len(os.listdir(tmp_path)) == 2  # the first one's temp file, and the target


def test_killed_export_to_a_file_object_leaves_it_and_the_temp_folder_as_they_were(
    tmp_path: Path,
) -> None:
    """80 MiB: past the in-memory spool, into an anonymous temp file."""
    target = tmp_path / "log.bin"
    target.write_bytes(b"earlier content")
    temp = tmp_path / "tmp"
    temp.mkdir()
    kill_mid_export(target, "file", temp)
    assert target.read_bytes() == b"earlier content"
    assert os.listdir(temp) == []


# -- what the staging leaves at the target ------------------------------------------------


def test_new_target_gets_the_mode_a_plain_open_gives(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        export(tmp_path / "model.pt", records=1, size=1)
    finally:
        os.umask(umask)
    assert (tmp_path / "model.pt").stat().st_mode & 0o777 == 0o644


def test_replaced_target_keeps_its_mode(previous: tuple[Path, bytes]) -> None:
    target, _ = previous
    target.chmod(0o640)
    export(target, records=1, size=1)
    assert target.stat().st_mode & 0o777 == 0o640
