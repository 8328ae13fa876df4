"""An ``Importer`` subclass written for torch.package works with torchpkg unchanged.

torch.package's ``Importer`` requires ``import_module`` only; ``whichmodule``
and ``get_name`` may be overridden. Each test defines the same subclass on
both bases and uses it the same way.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import io
from collections.abc import Callable
from pathlib import Path
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


# --- a module whose source cannot be had, served by such an importer ----------------------


class _NoSourceLoader:
    """A loader that runs nothing and offers no source (no ``get_source``)."""

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        pass


def _serving(base: type[Any], module: ModuleType) -> Any:
    """An importer of ``base`` that serves ``module`` under its name, and the rest as usual."""

    class Serving(_only_import_module(base)):  # type: ignore[misc]
        def import_module(self, module_name: str) -> ModuleType:
            return module if module_name == module.__name__ else super().import_module(module_name)

    return Serving()


def _served_module(file: str | None) -> ModuleType:
    """``served_mod`` with ``__file__`` set to ``file`` (unless None) and a spec that
    names the loader but no origin: only ``__file__`` tells what the module was."""
    module = ModuleType("served_mod")
    if file is not None:
        module.__file__ = file
    module.__spec__ = importlib.machinery.ModuleSpec("served_mod", _NoSourceLoader())
    return module


def _source_problem(tools: Tools, module: ModuleType) -> tuple[str, str | None]:
    """The error and its context on the module's node after ``save_module`` and ``close``."""
    base, exporter_cls, _ = tools
    exporter = exporter_cls(io.BytesIO(), importer=_serving(base, module))
    exporter.intern(module.__name__)
    exporter.save_module(module.__name__)
    with pytest.raises((tp.PackagingError, torchpkg.PackagingError)) as info:
        exporter.close()
    node = info.value.dependency_graph.nodes[module.__name__]
    return node["error"].value, node.get("error_context")


@pytest.mark.parametrize(
    ("file", "reason", "context"),
    [
        pytest.param(None, "Module had no __file__ defined.", None, id="no-file"),
        pytest.param(
            "foo.so",
            "Module is a C extension module. torch.package supports Python modules only.",
            None,
            id="extension",
        ),
        pytest.param(
            "foo.dat",
            "Module had a __file__, but we could not find it in your filesystem.",
            "filename: foo.dat",
            id="not-a-source-file",
        ),
    ],
)
def test_a_served_module_without_source_is_classified_by_its_dunder_file_alike(
    file: str | None, reason: str, context: str | None
) -> None:
    theirs, ours = (
        _source_problem(tools.values[0], _served_module(file))  # type: ignore[arg-type]
        for tools in TOOLS
    )
    assert ours == theirs == (reason, context)


@pytest.mark.parametrize("tools", TOOLS)
def test_a_served_module_whose_loader_offers_no_source_is_packaged_from_its_dunder_file(
    tools: Tools, tmp_path: Path
) -> None:
    source = tmp_path / "served_mod.py"
    source.write_text("ANSWER = 42\n")
    base, exporter_cls, importer_cls = tools
    buffer = io.BytesIO()
    with exporter_cls(buffer, importer=_serving(base, _served_module(str(source)))) as exporter:
        exporter.intern("served_mod")
        exporter.save_module("served_mod")
    assert importer_cls(io.BytesIO(buffer.getvalue())).import_module("served_mod").ANSWER == 42
