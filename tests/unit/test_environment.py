"""The Importer protocol: what a subclass must define, and what it gets for free."""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import os
import sys
import types
import weakref
from collections.abc import Callable, Iterator
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

import pytest

from torchpkg import (
    Importer,
    ObjMismatchError,
    ObjNotFoundError,
    OrderedImporter,
    PackageExporter,
    sys_importer,
)
from torchpkg.environment import SourceStatus

SourceTree = Callable[..., str]  # the `source_tree` fixture of tests/conftest.py


class OnlyImportModule(Importer):
    """All torch.package's ``Importer`` asks of a subclass."""

    def import_module(self, module_name: str) -> ModuleType:
        return importlib.import_module(module_name)


class NothingHere(Importer):
    def import_module(self, module_name: str) -> ModuleType:
        raise ModuleNotFoundError(f"No module named {module_name!r}", name=module_name)


def test_a_subclass_defining_only_import_module_can_be_instantiated() -> None:
    assert OnlyImportModule().import_module("json").__name__ == "json"


def test_a_subclass_without_a_modules_table_reads_an_empty_read_only_one() -> None:
    importer = OnlyImportModule()
    assert dict(importer.modules) == {}
    with pytest.raises(TypeError):
        importer.modules["x"] = types.ModuleType("x")
    assert dict(OnlyImportModule().modules) == {}


def test_the_default_module_source_reads_the_imported_modules_file(
    source_tree: SourceTree,
) -> None:
    top = source_tree({"__init__.py": "", "model.py": "X = 1\n"})
    found = OnlyImportModule().module_source(f"{top}.model")
    assert found.status is SourceStatus.OK
    assert found.source == "X = 1\n"
    assert not found.is_package
    assert OnlyImportModule().module_source(top).is_package


def test_the_default_module_source_of_a_module_that_fails_to_import_is_not_found(
    source_tree: SourceTree,
) -> None:
    top = source_tree({"__init__.py": "", "broken.py": "raise RuntimeError('no')\n"})
    assert OnlyImportModule().module_source(f"{top}.broken").status is SourceStatus.NOT_FOUND
    assert NothingHere().module_source("json").status is SourceStatus.NOT_FOUND


def test_the_default_module_source_of_a_module_without_a_file_is_no_file() -> None:
    class Made(Importer):
        def import_module(self, module_name: str) -> ModuleType:
            return types.ModuleType(module_name)

    assert Made().module_source("made").status is SourceStatus.NO_FILE


def test_an_exporter_with_a_minimal_importer_packages_a_module(source_tree: SourceTree) -> None:
    top = source_tree({"__init__.py": "", "model.py": "from . import util\n", "util.py": ""})
    with PackageExporter(io.BytesIO(), importer=OnlyImportModule()) as exporter:
        exporter.intern([top, f"{top}.**"])
        exporter.save_module(f"{top}.model")
    assert set(exporter.interned_modules()) == {f"{top}.model", f"{top}.util"}


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_gc")
def test_an_ordered_importer_keeps_nothing_of_its_caller_alive_after_a_miss() -> None:
    """A failed lookup's traceback holds the caller's frame; kept in a cycle, it kept a
    pickler's buffer exported until a GC pass (a BufferError under PYTHONDEVMODE)."""

    class Held:
        pass

    def caller() -> weakref.ref[Held]:
        held = Held()
        OrderedImporter(NothingHere(), sys_importer).import_module("json")
        return weakref.ref(held)

    assert caller()() is None


@pytest.mark.usefixtures("no_gc")
def test_an_ordered_importer_keeps_nothing_alive_when_every_importer_misses() -> None:
    class Held:
        pass

    def caller() -> weakref.ref[Held]:
        held = Held()
        with contextlib.suppress(ModuleNotFoundError):
            OrderedImporter(NothingHere(), NothingHere()).import_module("json")
        return weakref.ref(held)

    assert caller()() is None


# --- source through the loader ----------------------------------------------------


class ServingLoader(importlib.abc.InspectLoader):
    """Serves source of its own, whatever file the spec names."""

    def get_source(self, fullname: str) -> str:
        return "WHERE = 'served'\n"

    def is_package(self, fullname: str) -> bool:
        return False


class RemappingLoader(importlib.machinery.SourceFileLoader):
    def get_filename(self, name: str | None = None) -> str:
        return self.path.removesuffix(".py") + "_remapped.py"


class OneModuleFinder(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, make_spec: Callable[[str], ModuleSpec | None]) -> None:
        self.name = name
        self.make_spec = make_spec

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> ModuleSpec | None:
        return self.make_spec(fullname) if fullname == self.name else None


@pytest.fixture
def on_disk(source_tree: SourceTree) -> tuple[str, str]:
    """``(package, folder)``: ``mod.py`` and ``mod_remapped.py`` in a package on disk."""
    top = source_tree(
        {"__init__.py": "", "mod.py": "WHERE = 'disk'\n", "mod_remapped.py": "WHERE = 'remapped'\n"}
    )
    return top, os.path.dirname(importlib.import_module(top).__file__ or "")


def test_a_loader_serving_other_source_than_the_file_on_disk_is_what_is_packaged(
    on_disk: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.package reads the file here unless the loader is a SourceFileLoader."""
    top, folder = on_disk
    file = os.path.join(folder, "mod.py")

    def spec(name: str) -> ModuleSpec | None:
        found = importlib.util.spec_from_loader(name, ServingLoader(), origin=file)
        assert found is not None
        found.has_location = True
        return found

    monkeypatch.setattr(sys, "meta_path", [OneModuleFinder(f"{top}.mod", spec), *sys.meta_path])
    found = sys_importer.module_source(f"{top}.mod")
    assert (found.source, found.filename) == ("WHERE = 'served'\n", file)


def test_the_file_a_remapping_loader_reads_is_the_modules_source_file(
    on_disk: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    top, folder = on_disk
    file = os.path.join(folder, "mod.py")

    def spec(name: str) -> ModuleSpec | None:
        return importlib.util.spec_from_file_location(
            name, file, loader=RemappingLoader(name, file)
        )

    monkeypatch.setattr(sys, "meta_path", [OneModuleFinder(f"{top}.mod", spec), *sys.meta_path])
    found = sys_importer.module_source(f"{top}.mod")
    assert found.source == "WHERE = 'remapped'\n"
    assert found.filename == os.path.join(folder, "mod_remapped.py")


# --- naming objects through several importers -------------------------------------


class Elsewhere(Importer):
    """Holds modules of its own: ``json`` with a ``dumps`` that is not the real one."""

    def __init__(self, label: str = "elsewhere") -> None:
        self.label = label

    def __repr__(self) -> str:
        return self.label

    def import_module(self, module_name: str) -> ModuleType:
        module = types.ModuleType(module_name)
        module.dumps = lambda obj: ""  # type: ignore[attr-defined]
        return module


def test_an_ordered_importer_names_an_object_through_the_first_importer_that_has_it() -> None:
    import json

    assert OrderedImporter(Elsewhere(), sys_importer).get_name(json.dumps) == ("json", "dumps")


def test_an_ordered_importer_that_finds_the_object_nowhere_says_what_each_found() -> None:
    import json

    with pytest.raises(ObjNotFoundError) as raised:
        OrderedImporter(Elsewhere("first"), Elsewhere("second")).get_name(json.dumps)
    assert "first: " in str(raised.value)
    assert "second: " in str(raised.value)
    assert not isinstance(raised.value, ObjMismatchError)  # as torch.package: not found
