"""What every command shares: --json, help with examples, exit statuses, one-line
errors, and inspection that imports no torch and runs no packaged code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _cli import Package, run_cli
from _hostile import CASES, hostile_pickle
from torchpkg import PackageExporter
from torchpkg.cli import main

COMMANDS = ["tree", "info", "deps", "scan", "verify", "diff", "suggest"]


def arguments(command: str, package: Package) -> list[str]:
    path = str(package.path)
    return {
        "diff": ["diff", path, path],
        "suggest": ["suggest", f"{package.top}.layers"],
    }.get(command, [command, path])


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_prints_one_json_document_with_json(
    command: str, package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*arguments(command, package), "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), dict)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_shows_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"example:\n  torchpkg {command}" in capsys.readouterr().out


def test_top_level_help_lists_examples_and_exit_statuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "torchpkg scan model.pt" in out
    assert "exit status: 0 ok, 1 findings or differences, 2 bad arguments or input" in out


def test_a_file_that_is_not_a_package_is_one_line_on_stderr_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a zip")
    assert main(["info", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("torchpkg: error: ")
    assert "is not a zip file" in captured.err
    assert len(captured.err.splitlines()) == 1
    assert "Traceback" not in captured.err


def test_debug_shows_the_traceback_of_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a zip")
    assert main(["info", str(path), "--debug"]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_a_missing_package_says_so_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt: no such file or folder" in capsys.readouterr().err


def test_a_missing_argument_is_a_usage_error_with_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["info"])
    assert exit_info.value.code == 2
    assert "the following arguments are required: package" in capsys.readouterr().err


@pytest.fixture
def torch_package(tmp_path: Path, package: Package) -> Package:
    """The package, plus a torch model's pickle and a hostile pickle."""
    torch = pytest.importorskip("torch")
    path = tmp_path / "torch_model.pt"
    with PackageExporter(path) as exporter:
        exporter.intern(f"{package.top}.**")
        exporter.mock(f"{package.top}.helpers")
        exporter.save_pickle("model", "linear.pkl", torch.nn.Linear(3, 2))
        exporter.save_module(f"{package.top}.model")
        exporter.save_source_string("tripwire", f"open({str(package.sentinel)!r}, 'w').close()\n")
        payload = hostile_pickle(CASES[0], str(tmp_path / "payload-ran"))
        exporter.save_binary("model", "hostile.pkl", payload)
    return Package(path, package.top, package.sentinel)


INSPECTIONS = {
    "tree": ["tree", "{pkg}"],
    "info": ["info", "{pkg}"],
    "deps": ["deps", "{pkg}"],
    "deps --why": ["deps", "{pkg}", "--why", "torch"],
    "deps --dot": ["deps", "{pkg}", "--dot"],
    "deps module": ["deps", "{top}.model"],
    "scan": ["scan", "{pkg}"],
    "verify --integrity-only": ["verify", "{pkg}", "--integrity-only"],
    "diff": ["diff", "{pkg}", "{pkg}"],
    "suggest module": ["suggest", "{top}.model"],
}


@pytest.mark.parametrize("command", INSPECTIONS.values(), ids=INSPECTIONS.keys())
def test_inspection_imports_no_torch_and_runs_no_packaged_code(
    command: list[str], torch_package: Package, tmp_path: Path
) -> None:
    args = [arg.format(pkg=torch_package.path, top=torch_package.top) for arg in command]
    done = run_cli(*args, pythonpath=tmp_path / "src")
    assert done.returncode in (0, 1), done.stderr
    assert done.stderr.rstrip().endswith("torch imported: False"), done.stderr
    assert not torch_package.sentinel.exists()
    assert not (tmp_path / "payload-ran").exists()


def test_python_dash_m_torchpkg_runs_the_cli(package: Package) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "torchpkg", "info", str(package.path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "format_version: 6" in done.stdout
