"""An ``Importer`` subclass written for torch.package works with torchpkg unchanged.

torch.package's ``Importer`` requires ``import_module`` only; ``whichmodule``
and ``get_name`` may be overridden. Each test defines the same subclass on
both bases and uses it the same way.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.package as tp  # noqa: E402

import torchpkg  # noqa: E402

SourceTree = Callable[..., str]  # the `source_tree` fixture of tests/conftest.py
TOOLS = [
    pytest.param((tp.Importer, tp.PackageExporter, tp.PackageImporter), id="torch.package"),
    pytest.param(
        (torchpkg.Importer, torchpkg.PackageExporter, torchpkg.PackageImporter), id="torchpkg"
    ),
]
Tools = tuple[type[Any], type[Any], type[Any]]


def _only_import_module(base: type[Any]) -> type[Any]:
    class OnlyImportModule(base):  # type: ignore[misc, valid-type]
        def import_module(self, module_name: str) -> ModuleType:
            return importlib.import_module(module_name)

    return OnlyImportModule


def _naming(base: type[Any]) -> type[Any]:
    """Also overrides ``get_name`` and ``whichmodule``, and counts the calls."""

    class Naming(_only_import_module(base)):  # type: ignore[misc]
        def __init__(self) -> None:
            self.asked: list[str] = []

        def whichmodule(self, obj: Any, name: str) -> str:
            self.asked.append(f"whichmodule {name}")
            return super().whichmodule(obj, name)  # type: ignore[no-any-return]

        def get_name(self, obj: Any, name: str | None = None) -> tuple[str, str]:
            self.asked.append(f"get_name {getattr(obj, '__qualname__', obj)}")
            return super().get_name(obj, name)  # type: ignore[no-any-return]

    return Naming


@pytest.fixture
def app(source_tree: SourceTree) -> str:
    """``app.model`` (``Thing``) imports ``app.helpers`` and json."""
    return source_tree(
        {
            "__init__.py": "",
            "helpers.py": "def double(x):\n    return 2 * x\n",
            "model.py": """
                import json

                from . import helpers


                class Thing:
                    def value(self):
                        return helpers.double(21)
            """,
        }
    )


def _export_with(importer: Any, tools: Tools, app: str) -> tuple[Any, bytes]:
    _, exporter_cls, _ = tools
    buffer = io.BytesIO()
    exporter = exporter_cls(buffer, importer=importer)
    exporter.intern([app, f"{app}.**"])
    exporter.save_pickle("o", "thing.pkl", importlib.import_module(f"{app}.model").Thing())
    exporter.close()
    return exporter, buffer.getvalue()


@pytest.mark.parametrize("tools", TOOLS)
def test_a_subclass_defining_only_import_module_can_be_instantiated(tools: Tools) -> None:
    base, _, _ = tools
    importer = _only_import_module(base)()
    assert importer.import_module("json") is importlib.import_module("json")


@pytest.mark.parametrize("tools", TOOLS)
def test_a_subclass_without_import_module_is_still_abstract(tools: Tools) -> None:
    base, _, _ = tools
    with pytest.raises(TypeError, match="abstract"):
        base()


def test_an_exporter_with_a_minimal_importer_packages_the_same_modules(app: str) -> None:
    interned = []
    for tools in (TOOLS[0].values[0], TOOLS[1].values[0]):
        exporter, _ = _export_with(_only_import_module(tools[0])(), tools, app)  # type: ignore[index]
        interned.append(set(exporter.interned_modules()))
    theirs, ours = interned
    assert ours == theirs == {f"{app}.model", f"{app}.helpers"}


@pytest.mark.parametrize("tools", TOOLS)
def test_a_package_made_with_a_minimal_importer_loads_and_runs(tools: Tools, app: str) -> None:
    base, _, importer_cls = tools
    _, data = _export_with(_only_import_module(base)(), tools, app)
    importer = importer_cls(io.BytesIO(data))
    thing = importer.load_pickle("o", "thing.pkl")
    assert thing.value() == 42
    assert torchpkg.is_from_package(thing)
    getattr(importer, "close", lambda: None)()  # torch.package's importer has no close()


def test_overridden_get_name_and_whichmodule_are_consulted_alike(app: str) -> None:
    asked = []
    for tools in (TOOLS[0].values[0], TOOLS[1].values[0]):
        importer = _naming(tools[0])()  # type: ignore[index]
        _export_with(importer, tools, app)  # type: ignore[arg-type]
        asked.append(importer.asked)
    theirs, ours = asked
    assert "get_name Thing" in theirs
    assert "get_name Thing" in ours
    assert "whichmodule Thing" in ours
    assert set(ours) == set(theirs)


def test_a_module_that_fails_to_import_is_not_there_for_a_minimal_importer(
    source_tree: SourceTree,
) -> None:
    """torch.package treats a module whose import raises as absent: an optional
    import of it is dropped, and the export succeeds."""
    app = source_tree(
        {
            "__init__.py": "",
            "broken.py": "raise RuntimeError('not importable here')\n",
            "model.py": "try:\n    from . import broken\nexcept RuntimeError:\n    broken = None\n",
        }
    )
    interned = []
    for tools in (TOOLS[0].values[0], TOOLS[1].values[0]):
        base, exporter_cls, _ = tools  # type: ignore[misc]
        exporter = exporter_cls(io.BytesIO(), importer=_only_import_module(base)())
        exporter.intern([app, f"{app}.**"])
        exporter.save_module(f"{app}.model")
        exporter.close()
        interned.append(set(exporter.interned_modules()))
    theirs, ours = interned
    assert ours == theirs
    assert f"{app}.broken" not in ours
