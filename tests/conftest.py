"""Shared fixtures: throwaway source trees on sys.path, and archive helpers."""

from __future__ import annotations

import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_ids = itertools.count()

SourceTree = Callable[..., str]


@pytest.fixture(autouse=True, scope="session")
def _caches_in_the_runs_temp_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """torchpkg's caches (scan results, materialised trees) away from the user's ~/.cache;
    shared by the whole run, as by a CI run's processes (subprocesses inherit it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCHPKG_CACHE_DIR", str(tmp_path_factory.mktemp("torchpkg-cache")))
        yield


@pytest.fixture
def source_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SourceTree]:
    """Write modules under a fresh, uniquely named top-level package and put it on sys.path.

    ``source_tree({"__init__.py": "", "models.py": "..."})`` returns the package's
    name (e.g. ``srctree_3``); file contents are dedented. Everything imported from
    it is removed from ``sys.modules`` afterwards, so tests cannot see each other's
    modules.
    """
    root = tmp_path / "src"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    names: list[str] = []

    def make(files: dict[str, str], name: str | None = None) -> str:
        top = name or f"srctree_{next(_ids)}"
        for relative, text in files.items():
            path = root / top / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        names.append(top)
        return top

    yield make
    for top in names:
        for module in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
            del sys.modules[module]
