"""``deps``: import graphs read from source, as text, DOT, SVG or JSON, and ``--why``."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from _cli import Package
from torchpkg.cli import main

SourceTree = Callable[..., str]


def test_deps_of_a_package_lists_what_each_module_imports(
    package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deps", str(package.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    top = package.top
    assert f"{top}.model -> json, {top}.helpers, {top}.layers" in lines
    assert f"{top}.layers -> collections" in lines


def test_deps_of_a_package_starts_from_the_modules_its_pickles_name(
    package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deps", str(package.path), "--json"]) == 0
    graph = json.loads(capsys.readouterr().out)
    assert ["model/model.pkl", f"{package.top}.model"] in graph["edges"]
    kinds = {node["name"]: node["kind"] for node in graph["nodes"]}
    assert kinds["model/model.pkl"] == "pickle"
    assert kinds[f"{package.top}.helpers"] == "mocked"
    assert kinds["collections"] == "extern"


def test_deps_why_prints_each_import_chain_that_leads_to_the_module(
    package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deps", str(package.path), "--why", "collections"]) == 0
    top = package.top
    assert capsys.readouterr().out.splitlines() == [
        "model/model.pkl -> collections",
        f"model/model.pkl -> {top}.layers -> collections",
        f"model/model.pkl -> {top}.model -> {top}.layers -> collections",
    ]


def test_deps_why_of_a_module_nothing_imports_exits_1(
    package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deps", str(package.path), "--why", "numpy"]) == 1
    assert "no import chain" in capsys.readouterr().out


def test_deps_dot_prints_the_graph_for_graphviz(
    package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deps", str(package.path), "--dot", "--why", "collections"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("digraph G {")
    assert f'"{package.top}.layers" -> "collections";' in out
    assert "json" not in out  # --why keeps only the edges on the chains


def test_deps_svg_without_graphviz_is_a_clear_error_with_status_2(
    package: Package,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["deps", str(package.path), "--svg"]) == 2
    err = capsys.readouterr().err
    assert "--svg needs Graphviz's `dot` on PATH" in err
    assert len(err.splitlines()) == 1


def test_deps_svg_renders_the_dot_output_with_graphviz(
    package: Package,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_dot = bin_dir / "dot"  # stands in for Graphviz: wraps what it reads in <svg>
    fake_dot.write_text(
        f"#!{sys.executable}\nimport sys\nprint('<svg>' + sys.stdin.read() + '</svg>')\n"
    )
    fake_dot.chmod(fake_dot.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert main(["deps", str(package.path), "--svg"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<svg>digraph G {")


def test_deps_of_an_installed_module_reads_its_source_without_importing_it(
    source_tree: SourceTree, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel = tmp_path / "imported"
    top = source_tree(
        {
            "__init__.py": "",
            "model.py": f"open({str(sentinel)!r}, 'w').close()\nimport json\nfrom . import util\n",
            "util.py": "import collections\n",
        }
    )
    assert main(["deps", f"{top}.model"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{top}.model -> json, {top}.util", f"{top}.util -> collections"]
    assert not sentinel.exists()
    assert f"{top}.model" not in sys.modules


def test_deps_of_a_module_leaves_other_top_level_packages_unexpanded(
    source_tree: SourceTree, capsys: pytest.CaptureFixture[str]
) -> None:
    top = source_tree({"__init__.py": "", "model.py": "import json\n"})
    assert main(["deps", f"{top}.model", "--json"]) == 0
    graph = json.loads(capsys.readouterr().out)
    assert graph["edges"] == [[f"{top}.model", "json"]]
    assert {"name": "json", "kind": "outside"} in graph["nodes"]


def test_deps_of_a_name_that_is_no_module_is_an_input_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["deps", "no_such_module_anywhere"]) == 2
    assert "no module named 'no_such_module_anywhere'" in capsys.readouterr().err
