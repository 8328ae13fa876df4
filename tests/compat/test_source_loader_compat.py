"""Modules imported through custom finders and loaders are packaged with the source
their loader serves, not the file ``__file__`` names, in both tools.

A finder on ``sys.meta_path`` hands out, for modules of a throwaway package:
``mod``, a ``SourceFileLoader`` whose ``get_filename`` remaps it to
``mod_remapped.py``; ``virtual``, a loader that serves source for a ``.py`` file
that does not exist; ``nowhere``, a loader that serves source with no file at all.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import os
import sys
from collections.abc import Callable, Iterator
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.package as tp  # noqa: E402

import torchpkg  # noqa: E402

SourceTree = Callable[..., str]  # the `source_tree` fixture of tests/conftest.py
TOOLS = {
    "torch.package": (tp.PackageExporter, tp.PackageImporter, tp.PackagingError),
    "torchpkg": (torchpkg.PackageExporter, torchpkg.PackageImporter, torchpkg.PackagingError),
}
Tool = tuple[type[Any], type[Any], type[Exception]]


class RemappingLoader(importlib.machinery.SourceFileLoader):
    """Runs (and serves) ``<name>_remapped.py`` for a module found as ``<name>.py``."""

    def get_filename(self, name: str | None = None) -> str:
        return self.path.removesuffix(".py") + "_remapped.py"


class ServingLoader(importlib.abc.InspectLoader):
    """Serves source of its own, whatever file the spec names."""

    def __init__(self, source: str) -> None:
        self.source = source

    def get_source(self, fullname: str) -> str:
        return self.source

    def is_package(self, fullname: str) -> bool:
        return False


class Finder(importlib.abc.MetaPathFinder):
    def __init__(self, package: str, folder: str) -> None:
        self.package = package
        self.folder = folder

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> ModuleSpec | None:
        module = fullname.removeprefix(f"{self.package}.")
        if module == "mod":
            file = os.path.join(self.folder, "mod.py")
            return importlib.util.spec_from_file_location(
                fullname, file, loader=RemappingLoader(fullname, file)
            )
        if module == "virtual":
            loader = ServingLoader("WHERE = 'served'\n")
            origin = os.path.join(self.folder, "absent", "virtual.py")
            spec = importlib.util.spec_from_loader(fullname, loader, origin=origin)
            assert spec is not None
            spec.has_location = True  # __file__ names the (missing) file
            return spec
        if module == "nowhere":
            return importlib.util.spec_from_loader(fullname, ServingLoader("WHERE = 'served'\n"))
        return None


@pytest.fixture(params=list(TOOLS))
def tool(request: pytest.FixtureRequest) -> Tool:
    return TOOLS[request.param]


@pytest.fixture
def package(source_tree: SourceTree) -> Iterator[str]:
    """The package whose modules the finder serves, with the finder on sys.meta_path."""
    name = source_tree(
        {
            "__init__.py": "",
            "mod.py": "WHERE = 'disk'\n",
            "mod_remapped.py": "WHERE = 'remapped'\n",
        }
    )
    folder = os.path.dirname(importlib.import_module(name).__file__ or "")
    finder = Finder(name, folder)
    sys.meta_path.insert(0, finder)
    yield name
    sys.meta_path.remove(finder)


def export_and_load(tool: Tool, module: str) -> ModuleType:
    exporter_cls, importer_cls, _ = tool
    buffer = io.BytesIO()
    with exporter_cls(buffer) as exporter:
        exporter.intern(module)
        exporter.save_module(module)
    buffer.seek(0)
    return importer_cls(buffer).import_module(module)  # type: ignore[no-any-return]


def test_a_loader_that_remaps_the_file_packages_the_file_it_remaps_to(
    tool: Tool, package: str
) -> None:
    assert importlib.import_module(f"{package}.mod").WHERE == "remapped"
    assert export_and_load(tool, f"{package}.mod").WHERE == "remapped"


def test_a_module_exported_before_its_loader_remapped_it_is_packaged_remapped_after(
    tool: Tool, package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an exporter read for the plain file is not what the remapping loader serves."""
    with monkeypatch.context() as plain:
        plain.setattr(sys, "meta_path", [f for f in sys.meta_path if not isinstance(f, Finder)])
        assert export_and_load(tool, f"{package}.mod").WHERE == "disk"
    sys.modules.pop(f"{package}.mod", None)  # torch.package imported it
    assert export_and_load(tool, f"{package}.mod").WHERE == "remapped"


def test_a_loader_that_serves_source_for_a_missing_file_packages_that_source(
    tool: Tool, package: str
) -> None:
    assert export_and_load(tool, f"{package}.virtual").WHERE == "served"


def test_a_module_with_no_file_at_all_is_a_packaging_error_saying_so(
    tool: Tool, package: str
) -> None:
    packaging_error = tool[2]
    with pytest.raises(packaging_error, match=r"(?s)no __file__.*\.nowhere"):
        export_and_load(tool, f"{package}.nowhere")
