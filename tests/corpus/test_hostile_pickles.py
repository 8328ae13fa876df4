"""Hostile pickles: safe loading refuses each with a typed error, the scan flags each,
and nothing runs. A subprocess first proves each payload real: loaded without safe
loading, it creates its sentinel file."""

from __future__ import annotations

import copyreg
import pickletools
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _hostile import CASES, EXTENSION_CODE, Case, archive_bytes, hostile_pickle
from torchpkg import PackageImporter, TorchpkgError
from torchpkg._archive_reader import open_archive
from torchpkg.security import Basis, Risk, UnsafePickleError, scan_archive


@pytest.fixture(autouse=True)
def extension_code() -> Iterator[None]:
    """The EXT1 case's code, registered as a process that loads it might have it."""
    copyreg.add_extension("os", "system", EXTENSION_CODE)
    yield
    copyreg.remove_extension("os", "system", EXTENSION_CODE)


def build(tmp_path: Path, case: Case) -> tuple[Path, Path]:
    sentinel = tmp_path / f"{case.name}.sentinel"
    archive = tmp_path / f"{case.name}.pt"
    archive.write_bytes(archive_bytes(hostile_pickle(case, str(sentinel)), case.resource))
    return archive, sentinel


UNSAFE_LOADER = textwrap.dedent(
    """
    import copyreg, sys
    from torchpkg import PackageImporter
    copyreg.add_extension("os", "system", int(sys.argv[1]))
    for archive, resource in zip(sys.argv[2::2], sys.argv[3::2]):
        try:
            with PackageImporter(archive) as importer:
                importer.load_pickle("pkg", resource)
        except Exception as error:
            print(archive, type(error).__name__, error)
    """
)


def test_every_live_payload_runs_when_loaded_without_safe_loading(tmp_path: Path) -> None:
    built = {case.name: build(tmp_path, case) for case in CASES if case.live}
    args = [str(EXTENSION_CODE)]
    for case in CASES:
        if case.live:
            args += [str(built[case.name][0]), case.resource]
    subprocess.run(
        [sys.executable, "-c", UNSAFE_LOADER, *args],
        cwd=tmp_path,
        check=True,
        timeout=120,
        capture_output=True,
    )
    deadline = time.monotonic() + 10  # Popen payloads finish after the load returns
    while time.monotonic() < deadline and not all(s.exists() for _, s in built.values()):
        time.sleep(0.05)
    assert [name for name, (_, sentinel) in built.items() if not sentinel.exists()] == []


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_safe_loading_refuses_the_pickle_before_anything_runs(tmp_path: Path, case: Case) -> None:
    archive, sentinel = build(tmp_path, case)
    with PackageImporter(archive, allow=[]) as importer, pytest.raises(UnsafePickleError) as info:
        importer.load_pickle("pkg", case.resource)
    time.sleep(0.05 if case.live else 0)
    assert not sentinel.exists()
    error = info.value
    assert error.record == f"pkg/{case.resource}"
    if case.target is not None:
        assert case.target in {finding.global_name for finding in error.findings}
    else:
        assert any(finding.verdict.basis is Basis.COMPUTED for finding in error.findings)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_refusal_names_the_opcode_at_its_offset(tmp_path: Path, case: Case) -> None:
    archive, _ = build(tmp_path, case)
    with open_archive(archive) as reader:
        data = reader.read(f"pkg/{case.resource}")
    with PackageImporter(archive, allow=[]) as importer, pytest.raises(UnsafePickleError) as info:
        importer.load_pickle("pkg", case.resource)
    offset = info.value.offset
    assert offset is not None
    opcode = pickletools.code2op[chr(data[offset])]
    assert opcode.name == info.value.findings[0].reference.opcode
    assert f"byte {offset}" in str(info.value)


def test_unsafe_pickle_error_is_a_torchpkg_error_and_an_unpickling_error(tmp_path: Path) -> None:
    archive, _ = build(tmp_path, CASES[0])
    with PackageImporter(archive) as importer, pytest.raises(TorchpkgError) as info:
        importer.load_pickle("pkg", "data.pkl", safe=True)
    assert isinstance(info.value, __import__("pickle").UnpicklingError)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_scan_flags_the_pickle_without_running_it(tmp_path: Path, case: Case) -> None:
    archive, sentinel = build(tmp_path, case)
    with open_archive(archive) as reader:
        scan = scan_archive(reader)
    [pickle] = scan.pickles
    assert pickle.record == f"pkg/{case.resource}"
    assert pickle.loads_safely is not case.scan_refuses
    assert any(finding.verdict.risk is not Risk.SAFE for finding in pickle.findings)
    assert not sentinel.exists()
