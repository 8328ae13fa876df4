"""Re-exporting objects loaded from a package whose modules were mocked (torch-free)."""

from __future__ import annotations

import importlib
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from torchpkg import PackageExporter, PackageImporter, sys_importer

SourceTree = Callable[..., str]  # the `source_tree` fixture of tests/conftest.py


@pytest.fixture
def first(source_tree: SourceTree, tmp_path: Path) -> tuple[Path, str, str]:
    """A package of ``app.model.Thing`` with ``heavy`` (which ``app.model`` imports)
    mocked: ``(archive, app, heavy)``."""
    heavy = source_tree({"__init__.py": "", "ops.py": "def f():\n    return 1\n"})
    app = source_tree({"__init__.py": "", "model.py": f"import {heavy}.ops\n\nclass Thing: ...\n"})
    path = tmp_path / "first.pt"
    with PackageExporter(path) as exporter:
        exporter.intern([app, f"{app}.**"])
        exporter.mock([heavy, f"{heavy}.**"])
        exporter.save_pickle("o", "thing.pkl", importlib.import_module(f"{app}.model").Thing())
    return path, app, heavy


def _reexport(first: tuple[Path, str, str], tmp_path: Path, *, mock_heavy: bool) -> Path:
    path, app, heavy = first
    second = tmp_path / "second.pt"
    with PackageImporter(path) as loaded:
        with PackageExporter(second, importer=(loaded, sys_importer)) as exporter:
            exporter.intern([app, f"{app}.**"])
            if mock_heavy:
                exporter.mock([heavy, f"{heavy}.**"])
            else:
                exporter.intern([heavy, f"{heavy}.**"])  # the stubs, as packaged
            exporter.save_pickle("o", "thing.pkl", loaded.load_pickle("o", "thing.pkl"))
        assert "_mock" not in exporter.interned_modules() + exporter.mocked_modules()
    return second


@pytest.mark.parametrize("mock_heavy", [True, False], ids=["mocked-again", "stubs-interned"])
def test_the_mock_support_is_written_once(
    first: tuple[Path, str, str], tmp_path: Path, mock_heavy: bool
) -> None:
    second = _reexport(first, tmp_path, mock_heavy=mock_heavy)
    with zipfile.ZipFile(second) as zf:
        assert [n for n in zf.namelist() if n.endswith("_mock.py")] == ["second/_mock.py"]


def test_interned_stubs_need_no_rule_for_the_mock_support(
    first: tuple[Path, str, str], tmp_path: Path
) -> None:
    second = _reexport(first, tmp_path, mock_heavy=False)
    _, _, heavy = first
    with PackageImporter(second) as importer:
        importer.load_pickle("o", "thing.pkl")
        with pytest.raises(NotImplementedError):
            importer.import_module(f"{heavy}.ops").f()
