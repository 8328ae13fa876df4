"""``tree``, ``info`` and ``verify``."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from _archives import write_records
from _cli import Package
from _hostile import CASES, archive_bytes, hostile_pickle
from _tamper import replace
from torchpkg import PackageExporter
from torchpkg.cli import main
from torchpkg.records import installed_version


def test_tree_prints_the_archive_filtered_by_globs(
    package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tree", str(package.path), "--include", "notes/**"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"─── {package.path}")
    assert "readme.txt" in out
    assert "model.pkl" not in out


def test_tree_json_lists_the_selected_records(
    package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tree", str(package.path), "--exclude", ".data/**", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)["records"]
    assert "notes/readme.txt" in records
    assert not [record for record in records if record.startswith(".data/")]


def test_tree_leaves_torchpkgs_own_records_out_unless_asked(
    package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tree", str(package.path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["records"]
    assert main(["tree", str(package.path), "--json", "--include-private"]) == 0
    every = json.loads(capsys.readouterr().out)["records"]
    assert ".data/torchpkg/environment.json" in every
    assert shown == [record for record in every if not record.startswith(".data/torchpkg/")]


def test_tree_prints_torchpkgs_own_records_when_asked(
    package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tree", str(package.path)]) == 0
    assert "environment.json" not in capsys.readouterr().out
    assert main(["tree", str(package.path), "--include-private"]) == 0
    assert "environment.json" in capsys.readouterr().out


def test_info_reports_versions_sizes_counts_externs_and_mocks(
    package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(package.path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format_version"] == 6
    assert info["python_version"] == platform.python_version()
    assert info["torch_version"] == installed_version("torch")
    assert info["package_bytes"] == package.path.stat().st_size
    assert info["modules"] == [f"{package.top}.layers", f"{package.top}.model", "tripwire"]
    assert info["mocked_modules"] == [f"{package.top}.helpers"]
    assert {"json", "collections"} <= set(info["extern_modules"])
    assert info["pickles"] == ["model/model.pkl"]
    assert (info["storages"], info["storage_bytes"]) == (0, 0)


def test_info_counts_storages_and_their_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "linear.pt"
    with PackageExporter(path) as exporter:
        exporter.save_pickle("model", "model.pkl", torch.nn.Linear(4, 2))
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["storages"], info["storage_bytes"]) == (2, (4 * 2 + 2) * 4)


def test_info_prints_a_readable_summary(
    package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(package.path)]) == 0
    out = capsys.readouterr().out
    assert "format_version: 6" in out
    assert "pickles (1):\n  model/model.pkl" in out
    assert f"mocked_modules (1):\n  {package.top}.helpers" in out


def test_info_says_when_the_environment_was_not_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.pt"
    with path.open("wb") as out:
        write_records(out, {".data/version": b"6\n", ".data/extern_modules": b""}, "old")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "torch_version: not recorded" in out
    assert "environment:\n  not recorded" in out


def test_verify_runs_the_packaged_code_and_says_ok(
    package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(package.path), "--pickles"]) == 0
    assert capsys.readouterr().out.endswith(": OK\n")
    assert package.sentinel.exists()  # verify imports every module: it runs code


def test_verify_reports_each_broken_module_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.pt"
    with PackageExporter(path) as exporter:
        exporter.save_source_string("fine", "X = 1\n")
        exporter.save_source_string("broken", "raise RuntimeError('boom')\n")
    assert main(["verify", str(path)]) == 1
    captured = capsys.readouterr()
    assert "module broken: RuntimeError: boom" in captured.err
    assert "1 problem(s)" in captured.out


def test_verify_safe_refuses_a_hostile_pickle_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel = tmp_path / "payload-ran"
    path = tmp_path / "hostile.pt"
    path.write_bytes(archive_bytes(hostile_pickle(CASES[0], str(sentinel))))
    assert main(["verify", str(path), "--pickles", "--safe", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert "UnsafePickleError" in report["problems"][0]
    assert not sentinel.exists()


def test_verify_allow_implies_safe_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hostile.pt"
    path.write_bytes(archive_bytes(hostile_pickle(CASES[0], str(tmp_path / "ran"))))
    assert main(["verify", str(path), "--pickles", "--allow", "collections.*"]) == 1
    assert "UnsafePickleError" in capsys.readouterr().err
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("command", ["info", "diff"])
@pytest.mark.parametrize("record", [".data/extern_modules", ".data/python_version"])
def test_text_record_that_is_not_utf8_is_one_line_saying_so(
    package: Package, command: str, record: str, capsys: pytest.CaptureFixture[str]
) -> None:
    replace(package.path, record, b"\xff\xfe not text")
    args = [command, str(package.path)] + ([str(package.path)] if command == "diff" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{record!r} that is not UTF-8 text" in err
    assert "Traceback" not in err
