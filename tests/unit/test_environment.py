"""The Importer protocol: what a subclass must define, and what it gets for free."""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import types
import weakref
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

from torchpkg import Importer, OrderedImporter, PackageExporter, sys_importer
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
