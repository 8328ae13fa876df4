"""Re-exporting a package that has mocked modules, as torch.package does it.

The mocked modules' stubs import the package's mock support, ``_mock``. When
objects loaded from such a package are exported again with
``importer=(package_importer, sys_importer)``, ``_mock`` is reached like any
module; torch.package needs no rule for it and writes ``_mock.py`` once, and
so must torchpkg. Each test runs the same re-export with both tools.
"""

from __future__ import annotations

import importlib
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.package as tp  # noqa: E402

import torchpkg  # noqa: E402

SourceTree = Callable[..., str]  # the `source_tree` fixture of tests/conftest.py
Project = tuple[str, str, str]
Rules = Callable[[Any, Project], None]
TOOLS = {
    "torch.package": (tp.PackageExporter, tp.PackageImporter, tp.sys_importer),
    "torchpkg": (torchpkg.PackageExporter, torchpkg.PackageImporter, torchpkg.sys_importer),
}


@pytest.fixture
def project(source_tree: SourceTree) -> Project:
    """``(app, heavy, other)``: ``app.model.Thing``'s module imports ``heavy.ops``;
    ``app.extra.Extra``'s imports ``other``."""
    heavy = source_tree({"__init__.py": "", "ops.py": "def f():\n    return 1\n"})
    other = source_tree({"__init__.py": ""})
    app = source_tree(
        {
            "__init__.py": "",
            "model.py": f"import {heavy}.ops\n\n\nclass Thing:\n    pass\n",
            "extra.py": f"import {other}\n\n\nclass Extra:\n    pass\n",
        }
    )
    return app, heavy, other


def _first_rules(exporter: Any, project: Project) -> None:
    app, heavy, _ = project
    exporter.intern([app, f"{app}.**"])
    exporter.mock([heavy, f"{heavy}.**"])


def _same_rules(exporter: Any, project: Project) -> None:
    _first_rules(exporter, project)
    exporter.extern(project[2])


def _intern_everything(exporter: Any, project: Project) -> None:
    exporter.intern("**")


def _intern_the_stubs_with_no_rule_for_mock(exporter: Any, project: Project) -> None:
    app, heavy, other = project
    exporter.intern([app, f"{app}.**", heavy, f"{heavy}.**"])
    exporter.extern(other)


def _intern_the_stubs_and_mock_another_module(exporter: Any, project: Project) -> None:
    app, heavy, other = project
    exporter.mock(other)
    exporter.intern([app, f"{app}.**", heavy, f"{heavy}.**"])


RULES = [
    pytest.param(_same_rules, id="same-rules"),
    pytest.param(_intern_everything, id="intern-everything"),
    pytest.param(_intern_the_stubs_with_no_rule_for_mock, id="stubs-interned"),
    pytest.param(_intern_the_stubs_and_mock_another_module, id="stubs-interned-new-mock"),
]


def _repackaged(tool: str, project: Project, rules: Rules, tmp_path: Path) -> tuple[Any, Path]:
    """Export ``Thing`` with ``heavy`` mocked, load it, and export it again
    (with ``Extra`` too) under ``rules``: (the second exporter, its archive)."""
    exporter_cls, importer_cls, sys_importer = TOOLS[tool]
    app = project[0]
    first, second = tmp_path / f"{tool}-first.pt", tmp_path / f"{tool}-second.pt"
    with exporter_cls(str(first)) as exporter:
        _first_rules(exporter, project)
        exporter.save_pickle("o", "thing.pkl", importlib.import_module(f"{app}.model").Thing())
    loaded = importer_cls(str(first))
    try:
        exporter = exporter_cls(str(second), importer=(loaded, sys_importer))
        rules(exporter, project)
        exporter.save_pickle("o", "thing.pkl", loaded.load_pickle("o", "thing.pkl"))
        exporter.save_pickle("o", "extra.pkl", importlib.import_module(f"{app}.extra").Extra())
        exporter.close()
    finally:
        getattr(loaded, "close", lambda: None)()  # torch.package's importer has no close()
    return exporter, second


def _records(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return [name.split("/", 1)[1] for name in zf.namelist()]


@pytest.mark.parametrize("rules", RULES)
def test_repackaging_mocks_writes_the_mock_support_once_like_torch_package(
    project: Project, rules: Rules, tmp_path: Path
) -> None:
    for tool in TOOLS:
        _, archive = _repackaged(tool, project, rules, tmp_path)
        assert _records(archive).count("_mock.py") == 1, tool


@pytest.mark.parametrize("rules", RULES)
def test_repackaging_mocks_lists_the_same_modules_and_never_the_mock_support(
    project: Project, rules: Rules, tmp_path: Path
) -> None:
    lists = []
    for tool in TOOLS:
        exporter, _ = _repackaged(tool, project, rules, tmp_path)
        lists.append(
            [
                set(exporter.interned_modules()),
                set(exporter.mocked_modules()),
                set(exporter.externed_modules()),
            ]
        )
    theirs, ours = lists
    assert ours == theirs
    assert not any("_mock" in modules for modules in ours)


@pytest.mark.parametrize("rules", RULES)
def test_a_repackaged_mock_still_fails_when_used(
    project: Project, rules: Rules, tmp_path: Path
) -> None:
    _, heavy, _ = project
    for tool, (_, importer_cls, _) in TOOLS.items():
        _, archive = _repackaged(tool, project, rules, tmp_path)
        importer = importer_cls(str(archive))
        importer.load_pickle("o", "thing.pkl")
        with pytest.raises(NotImplementedError):
            importer.import_module(f"{heavy}.ops").f()
        getattr(importer, "close", lambda: None)()  # torch.package's importer has no close()
