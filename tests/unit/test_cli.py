"""The torchpkg command line: inspection needs no torch and runs no packaged code."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from torchpkg import PackageExporter
from torchpkg.cli import main

SourceTree = Callable[..., str]


@pytest.fixture
def archive(tmp_path: Path, source_tree: SourceTree) -> Path:
    top = source_tree({"__init__.py": "", "model.py": "class Model:\n    size = 3\n"})
    model = __import__(f"{top}.model", fromlist=["Model"]).Model()
    path = tmp_path / "model.pt"
    with PackageExporter(path) as exporter:
        exporter.intern(f"{top}.**")
        exporter.save_pickle("model", "model.pkl", model)
        exporter.save_text("notes", "readme.txt", "hello")
    return path


def test_info_lists_modules_externs_and_pickles(
    archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(archive), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format_version"] == 6
    assert [name.rpartition(".")[2] for name in info["modules"]] == ["model"]
    assert info["pickles"] == ["model/model.pkl"]
    assert "builtins" not in info["modules"]


def test_info_prints_a_readable_summary(archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "format_version: 6" in out
    assert "pickles (1):\n  model/model.pkl" in out


def test_tree_prints_the_archive_filtered_by_globs(
    archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tree", str(archive), "--include", "notes/**"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"─── {archive}")
    assert "readme.txt" in out
    assert "model.pkl" not in out


def test_verify_imports_every_module_and_loads_every_pickle(
    archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(archive), "--pickles"]) == 0
    assert capsys.readouterr().out.endswith(": OK\n")


def test_verify_reports_each_broken_module_and_exits_non_zero(
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


def test_a_file_that_is_not_a_package_is_a_clear_error_with_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a zip")
    assert main(["info", str(path)]) == 2
    assert "is not a zip file" in capsys.readouterr().err


def test_python_dash_m_torchpkg_runs_the_cli_without_importing_torch(archive: Path) -> None:
    program = (
        "import runpy, sys; sys.argv = ['torchpkg', 'info', sys.argv[1]]\n"
        "try:\n    runpy.run_module('torchpkg', run_name='__main__')\n"
        "except SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
        "assert 'torch' not in sys.modules, 'inspection imported torch'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program, str(archive)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "format_version: 6" in result.stdout


def test_a_missing_archive_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["info"])
    assert exit_info.value.code == 2
    assert "the following arguments are required: archive" in capsys.readouterr().err
