"""``scan``: every global each pickle names, by risk, without loading anything."""

from __future__ import annotations

import ipaddress
import json
import zipfile
from pathlib import Path

import pytest

from _cli import Package
from _hostile import CASES, archive_bytes, hostile_pickle
from torchpkg import PackageExporter
from torchpkg.cli import main


def test_scan_of_a_package_whose_pickles_load_safely_exits_0(
    package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", str(package.path)]) == 0
    out = capsys.readouterr().out
    assert f"{package.top}.model.Model  (defined in the package)" in out
    assert "collections.OrderedDict  (curated builtin or torch type)" in out
    assert out.rstrip().endswith("safe loading would load every pickle")
    assert not package.sentinel.exists()


def test_scan_flags_a_dangerous_global_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel = tmp_path / "payload-ran"
    path = tmp_path / "hostile.pt"
    path.write_bytes(archive_bytes(hostile_pickle(CASES[0], str(sentinel))))
    assert main(["scan", str(path)]) == 1
    out = capsys.readouterr().out
    assert "dangerous  byte 2 GLOBAL" in out
    assert "os.system" in out
    assert "[refused]" in out
    assert "safe loading would refuse 1" in out
    assert not sentinel.exists()


def test_scan_allow_lets_an_extern_global_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "address.pt"
    with PackageExporter(path) as exporter:
        exporter.save_pickle("data", "address.pkl", ipaddress.ip_address("10.0.0.1"))
    assert main(["scan", str(path)]) == 1
    assert main(["scan", str(path), "--allow", "ipaddress.IPv4Address"]) == 0
    assert "ipaddress.IPv4Address  (listed in allow)" in capsys.readouterr().out


def test_scan_json_gives_each_globals_offset_risk_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hostile.pt"
    path.write_bytes(archive_bytes(hostile_pickle(CASES[0], str(tmp_path / "ran"))))
    assert main(["scan", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["loads_safely"] is False
    [found] = report["pickles"][0]["globals"]
    assert found["global"] == "os.system"
    assert (found["opcode"], found["offset"]) == ("GLOBAL", 2)
    assert (found["risk"], found["allowed"]) == ("dangerous", False)


def test_scan_of_an_archive_with_escaping_names_is_refused_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "escape.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("m/.data/version", "6\n")
        archive.writestr("m/../../evil.py", "")
    assert main(["scan", str(path)]) == 2
    assert "points outside the archive" in capsys.readouterr().err
