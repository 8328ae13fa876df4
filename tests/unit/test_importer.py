"""PackageImporter: opening archives, loading code and objects hermetically, re-export.

Torch-free: every packaged object here is a plain Python object.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib
import importlib.resources
import inspect
import io
import itertools
import linecache
import pickle
import platform
import re
import sys
import typing
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import torchpkg
from torchpkg import (
    Directory,
    ImportedObjectNotFoundError,
    Importer,
    OrderedImporter,
    PackagedModuleNotFoundError,
    PackageExporter,
    PackageImporter,
    PackagingError,
    PackagingErrorReason,
    sys_importer,
)

SourceTree = Callable[..., str]
Export = Callable[..., Path]
Open = Callable[..., PackageImporter]
Reexport = Callable[..., tuple[Any, Path]]

MANGLE_PARENT = re.compile(r"<torch_package_\d+>")

MODELS = {
    "__init__.py": "",
    "models.py": '''
        """A small module to package."""


        class Thing:
            def __init__(self, value):
                self.value = value

            def double(self):
                return self.value * 2


        def answer():
            return 42
        ''',
    "introspect.py": """
        def own_importer():
            import torch_package_importer

            return torch_package_importer
        """,
}


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture
def export(tmp_path: Path) -> Export:
    """Write an archive from declarative arguments; returns its path.

    Rules are added in the order mock, extern, intern (the first matching rule wins).
    ``pickles``/``texts``/``binaries`` map ``(package, resource)`` to what is saved;
    ``fill(exporter)`` does anything else.
    """
    counter = itertools.count()

    def make(
        *,
        intern: Iterable[str] = (),
        extern: Iterable[str] = (),
        mock: Iterable[str] = (),
        modules: Iterable[str] = (),
        pickles: Mapping[tuple[str, str], Any] | None = None,
        texts: Mapping[tuple[str, str], str] | None = None,
        binaries: Mapping[tuple[str, str], bytes] | None = None,
        fill: Callable[[PackageExporter], None] | None = None,
        importer: Importer | tuple[Importer, ...] = sys_importer,
    ) -> Path:
        path = tmp_path / f"archive_{next(counter)}.pt"
        with PackageExporter(path, importer=importer) as exporter:
            for pattern in mock:
                exporter.mock(pattern)
            for pattern in extern:
                exporter.extern(pattern)
            for pattern in intern:
                exporter.intern(pattern)
            for module in modules:
                exporter.save_module(module)
            for (package, resource), obj in (pickles or {}).items():
                exporter.save_pickle(package, resource, obj)
            for (package, resource), text in (texts or {}).items():
                exporter.save_text(package, resource, text)
            for (package, resource), data in (binaries or {}).items():
                exporter.save_binary(package, resource, data)
            if fill is not None:
                fill(exporter)
        return path

    return make


@pytest.fixture
def open_package() -> Iterator[Open]:
    """Open PackageImporters that are closed (their modules forgotten) after the test."""
    opened: list[PackageImporter] = []

    def make(source: Any, **kwargs: Any) -> PackageImporter:
        importer = PackageImporter(source, **kwargs)
        opened.append(importer)
        return importer

    yield make
    for importer in opened:
        importer.close()


@pytest.fixture
def models(source_tree: SourceTree) -> str:
    """The top-level name of a fresh copy of MODELS."""
    return source_tree(MODELS)


@pytest.fixture
def archive(models: str, export: Export) -> Path:
    """An archive of ``models`` (its modules interned), a pickled Thing(21), text and bytes."""
    thing = importlib.import_module(f"{models}.models").Thing(21)
    return export(
        intern=[f"{models}.**"],
        modules=[f"{models}.models", f"{models}.introspect"],
        pickles={("obj", "thing.pkl"): thing},
        texts={(models, "notes.txt"): "héllo wörld"},
        binaries={("data", "blob.bin"): b"\x00\x01\xfe\xff"},
    )


@pytest.fixture
def reexport(archive: Path, open_package: Open, export: Export, models: str) -> Reexport:
    """``reexport(then_sys_importer)``: load the Thing of ``archive`` and save it into a
    new archive (``models`` interned) whose exporter finds modules in that
    PackageImporter, then in ``sys_importer`` if asked; gives the Thing and the path."""

    def run(*, then_sys_importer: bool) -> tuple[Any, Path]:
        importer = open_package(archive)
        thing = importer.load_pickle("obj", "thing.pkl")
        path = export(
            intern=[f"{models}.**"],
            pickles={("obj", "thing.pkl"): thing},
            importer=(importer, sys_importer) if then_sys_importer else importer,
        )
        return thing, path

    return run


def _sys_modules_of(importer: PackageImporter) -> list[str]:
    return [name for name in sys.modules if name.startswith(importer.id() + ".")]


def _record_bytes(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


# --- opening --------------------------------------------------------------------------


def test_opens_an_archive_given_as_a_str_path(archive: Path, open_package: Open) -> None:
    importer = open_package(str(archive))
    assert importer.load_pickle("obj", "thing.pkl").double() == 42


def test_opens_an_archive_given_as_a_pathlib_path(archive: Path, open_package: Open) -> None:
    importer = open_package(archive)
    assert importer.load_pickle("obj", "thing.pkl").double() == 42


def test_opens_an_archive_given_as_a_binary_file_object(archive: Path, open_package: Open) -> None:
    importer = open_package(io.BytesIO(archive.read_bytes()))
    assert importer.load_pickle("obj", "thing.pkl").double() == 42


def test_opens_an_unzipped_archive_folder(
    archive: Path, open_package: Open, tmp_path: Path, models: str
) -> None:
    """An archive extracted with zipfile holds one top-level folder; that folder opens."""
    extracted = tmp_path / "extracted"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(extracted)
    (top_folder,) = extracted.iterdir()
    assert top_folder.name == archive.stem

    importer = open_package(top_folder)

    assert importer.load_pickle("obj", "thing.pkl").double() == 42
    assert importer.load_text(models, "notes.txt") == "héllo wörld"
    assert importer.import_module(f"{models}.models").answer() == 42


def test_module_allowed_rejects_all_disallowed_extern_modules_in_one_import_error(
    source_tree: SourceTree, export: Export
) -> None:
    first = source_tree({"__init__.py": "A = 1\n"})
    second = source_tree({"__init__.py": "B = 2\n"})
    allowed = source_tree({"__init__.py": "C = 3\n"})
    user = source_tree({"__init__.py": f"import {first}\nimport {second}\nimport {allowed}\n"})
    path = export(extern=[first, second, allowed], intern=[user], modules=[user])

    with pytest.raises(ImportError) as caught:
        PackageImporter(path, module_allowed=lambda name: name not in {first, second})

    assert first in str(caught.value)
    assert second in str(caught.value)
    assert allowed not in str(caught.value)


# --- the public API -------------------------------------------------------------------


def test_import_module_returns_the_packaged_module(
    archive: Path, open_package: Open, models: str
) -> None:
    importer = open_package(archive)
    module = importer.import_module(f"{models}.models")
    assert module.answer() == 42
    assert module is not sys.modules[f"{models}.models"]


def test_import_module_accepts_a_name_mangled_by_this_importer(
    archive: Path, open_package: Open, models: str
) -> None:
    importer = open_package(archive)
    module = importer.import_module(f"{models}.models")
    assert importer.import_module(f"{importer.id()}.{models}.models") is module


def test_load_pickle_rebuilds_the_object_with_the_packaged_class(
    archive: Path, open_package: Open, models: str
) -> None:
    importer = open_package(archive)
    thing = importer.load_pickle("obj", "thing.pkl")
    assert type(thing) is importer.import_module(f"{models}.models").Thing
    assert thing.value == 21


def test_load_text_decodes_utf8_by_default(archive: Path, open_package: Open, models: str) -> None:
    assert open_package(archive).load_text(models, "notes.txt") == "héllo wörld"


def test_load_text_uses_the_given_encoding(archive: Path, open_package: Open) -> None:
    importer = open_package(archive)
    assert importer.load_text("data", "blob.bin", encoding="latin-1") == "\x00\x01þÿ"


def test_load_text_uses_the_given_error_handler(archive: Path, open_package: Open) -> None:
    importer = open_package(archive)
    with pytest.raises(UnicodeDecodeError):
        importer.load_text("data", "blob.bin")
    assert importer.load_text("data", "blob.bin", errors="replace") == "\x00\x01\ufffd\ufffd"


def test_load_binary_returns_the_saved_bytes(archive: Path, open_package: Open) -> None:
    assert open_package(archive).load_binary("data", "blob.bin") == b"\x00\x01\xfe\xff"


def test_file_structure_lists_every_record_by_default(
    archive: Path, open_package: Open, models: str
) -> None:
    tree = open_package(archive).file_structure()
    assert isinstance(tree, Directory)
    for record in (
        f"{models}/models.py",
        f"{models}/notes.txt",
        "obj/thing.pkl",
        "data/blob.bin",
        ".data/version",
    ):
        assert tree.has_file(record), record


def test_file_structure_keeps_only_included_and_not_excluded_records(
    archive: Path, open_package: Open, models: str
) -> None:
    tree = open_package(archive).file_structure(include=[f"{models}/**"], exclude="**/*.txt")
    assert tree.has_file(f"{models}/models.py")
    assert not tree.has_file(f"{models}/notes.txt")
    assert not tree.has_file("obj/thing.pkl")
    assert not tree.has_file(".data/version")


def test_file_structure_prints_as_a_tree(archive: Path, open_package: Open, models: str) -> None:
    text = str(open_package(archive).file_structure(include=f"{models}/**"))
    assert text.startswith(f"─── {archive}\n")
    assert f"├── {models}\n" in text or f"└── {models}\n" in text
    assert "models.py" in text
    assert "thing.pkl" not in text


def test_id_is_a_torch_package_mangle_parent(archive: Path, open_package: Open) -> None:
    assert MANGLE_PARENT.fullmatch(open_package(archive).id())


def test_python_version_is_the_version_that_wrote_the_package(
    archive: Path, open_package: Open
) -> None:
    assert open_package(archive).python_version() == platform.python_version()


# --- mangling -------------------------------------------------------------------------


def test_packaged_module_name_and_file_carry_the_mangle_parent(
    archive: Path, open_package: Open, models: str
) -> None:
    importer = open_package(archive)
    module = importer.import_module(f"{models}.models")
    assert module.__name__ == f"{importer.id()}.{models}.models"
    assert module.__file__ == f"{importer.id()}.{models}/models.py"


def test_packaged_class_module_carries_the_mangle_parent(
    archive: Path, open_package: Open, models: str
) -> None:
    importer = open_package(archive)
    thing = importer.load_pickle("obj", "thing.pkl")
    assert type(thing).__module__ == f"{importer.id()}.{models}.models"


def test_packaged_modules_are_marked_with_dunder_torch_package(
    archive: Path, open_package: Open, models: str
) -> None:
    module = open_package(archive).import_module(f"{models}.models")
    assert module.__torch_package__ is True


def test_two_importers_of_one_archive_give_distinct_parents_and_classes(
    archive: Path, open_package: Open
) -> None:
    first, second = open_package(archive), open_package(archive)
    thing_1 = first.load_pickle("obj", "thing.pkl")
    thing_2 = second.load_pickle("obj", "thing.pkl")

    assert first.id() != second.id()
    assert type(thing_1) is not type(thing_2)
    assert not isinstance(thing_1, type(thing_2))
    assert not isinstance(thing_2, type(thing_1))


def test_import_torch_package_importer_in_packaged_code_returns_its_importer(
    archive: Path, open_package: Open, models: str
) -> None:
    first, second = open_package(archive), open_package(archive)
    assert first.import_module(f"{models}.introspect").own_importer() is first
    assert second.import_module(f"{models}.introspect").own_importer() is second


def test_is_from_package_is_true_for_a_packaged_module_and_an_instance_of_a_packaged_class(
    archive: Path, open_package: Open, models: str
) -> None:
    importer = open_package(archive)
    assert torchpkg.is_from_package(importer.import_module(f"{models}.models"))
    assert torchpkg.is_from_package(importer.load_pickle("obj", "thing.pkl"))


def test_is_from_package_is_false_for_a_str_and_a_stdlib_object(
    export: Export, open_package: Open
) -> None:
    counter = collections.Counter("aab")
    path = export(pickles={("obj", "counter.pkl"): counter, ("obj", "s.pkl"): "s"})
    importer = open_package(path)

    loaded_counter = importer.load_pickle("obj", "counter.pkl")
    assert loaded_counter == counter
    assert not torchpkg.is_from_package(loaded_counter)
    assert not torchpkg.is_from_package(importer.load_pickle("obj", "s.pkl"))
    assert not torchpkg.is_from_package(collections)


def test_reexporting_a_loaded_object_writes_no_mangled_name(
    reexport: Reexport, models: str
) -> None:
    _, path = reexport(then_sys_importer=True)

    records = _record_bytes(path)
    assert any(name.endswith(f"{models}/models.py") for name in records)
    assert [name for name, data in records.items() if b"torch_package" in data] == []
    assert [name for name in records if "torch_package" in name] == []


# --- sys.modules and linecache --------------------------------------------------------


def test_packaged_modules_are_registered_in_sys_modules_under_mangled_names(
    archive: Path, open_package: Open, models: str
) -> None:
    importer = open_package(archive)
    module = importer.import_module(f"{models}.models")
    assert sys.modules[f"{importer.id()}.{models}.models"] is module


def test_close_removes_the_importers_modules_and_their_linecache_entries(
    archive: Path, models: str
) -> None:
    importer = PackageImporter(archive)
    module = importer.import_module(f"{models}.models")
    assert "class Thing:\n" in linecache.getlines(module.__file__)

    importer.close()

    assert _sys_modules_of(importer) == []
    assert module.__file__ not in linecache.cache


def test_leaving_the_with_block_closes_the_importer(archive: Path, models: str) -> None:
    with PackageImporter(archive) as importer:
        module = importer.import_module(f"{models}.models")
        assert _sys_modules_of(importer) != []
    assert _sys_modules_of(importer) == []
    assert module.__file__ not in linecache.cache


def test_inspect_getsource_works_on_a_packaged_function_and_class(
    archive: Path, open_package: Open, models: str
) -> None:
    module = open_package(archive).import_module(f"{models}.models")
    assert inspect.getsource(module.answer) == "def answer():\n    return 42\n"
    assert inspect.getsource(module.Thing).startswith("class Thing:\n    def __init__")


# --- failed imports leave no trace ----------------------------------------------------


def test_module_that_raises_during_import_leaves_sys_modules_as_it_was(
    source_tree: SourceTree, export: Export, open_package: Open
) -> None:
    top = source_tree(
        {
            "__init__.py": "",
            "sibling.py": "VALUE = 1\n",
            "boom.py": "from . import sibling\nraise RuntimeError('boom at import')\n",
        }
    )
    importer = open_package(export(intern=[f"{top}.**"], modules=[f"{top}.boom"]))
    sys_modules_before = dict(sys.modules)
    importer_modules_before = dict(importer.modules)

    with pytest.raises(RuntimeError, match="boom at import"):
        importer.import_module(f"{top}.boom")

    assert sys.modules == sys_modules_before
    assert importer.modules == importer_modules_before


def test_pickle_naming_a_module_missing_from_the_package_raises_packaged_module_not_found(
    models: str, export: Export, open_package: Open
) -> None:
    """The pickle was saved with dependencies=False, so the class's module never went in."""
    thing = importlib.import_module(f"{models}.models").Thing(1)
    other = f"{models}.other"
    path = export(
        fill=lambda exporter: (
            exporter.save_source_string(other, "X = 1\n"),
            exporter.save_pickle("obj", "thing.pkl", thing, dependencies=False),
        )
    )
    importer = open_package(path)
    sys_modules_before = dict(sys.modules)

    with pytest.raises(PackagedModuleNotFoundError) as caught:
        importer.load_pickle("obj", "thing.pkl")

    assert isinstance(caught.value, ModuleNotFoundError)
    message = str(caught.value)
    assert f"{models}.models" in message
    assert "intern" in message
    assert "extern" in message
    assert sys.modules == sys_modules_before


def test_pickle_naming_a_missing_attribute_raises_imported_object_not_found(
    models: str, export: Export, open_package: Open
) -> None:
    """The package's copy of the module does not define the pickled class."""
    thing = importlib.import_module(f"{models}.models").Thing(1)
    path = export(
        fill=lambda exporter: (
            exporter.save_source_string(f"{models}.models", "X = 1\n"),
            exporter.save_pickle("obj", "thing.pkl", thing, dependencies=False),
        )
    )

    with pytest.raises(ImportedObjectNotFoundError) as caught:
        open_package(path).load_pickle("obj", "thing.pkl")

    assert isinstance(caught.value, AttributeError)
    assert "Thing" in str(caught.value)


# --- mocked and extern modules --------------------------------------------------------

MOCK_USER = {
    "__init__.py": "",
    "mocked.py": "def thing():\n    return 1\n\n\nclass Base:\n    pass\n",
    "uses_mock.py": """
        from .mocked import Base, thing


        class Sub(Base):
            pass


        def call_thing():
            return thing()
        """,
}


@pytest.fixture
def mock_user(source_tree: SourceTree, export: Export, open_package: Open) -> tuple[str, Any]:
    """(top, uses_mock) where uses_mock was loaded from a package with ``mocked`` mocked out."""
    top = source_tree(MOCK_USER)
    path = export(mock=[f"{top}.mocked"], intern=[f"{top}.**"], modules=[f"{top}.uses_mock"])
    return top, open_package(path).import_module(f"{top}.uses_mock")


def test_names_from_a_mocked_module_import_but_raise_when_used(
    mock_user: tuple[str, Any],
) -> None:
    top, uses_mock = mock_user
    with pytest.raises(NotImplementedError, match=re.escape(f"{top}.mocked.thing")):
        uses_mock.call_thing()


def test_subclass_of_a_mocked_class_is_defined_but_cannot_be_instantiated(
    mock_user: tuple[str, Any],
) -> None:
    _, uses_mock = mock_user
    assert isinstance(uses_mock.Sub, type)
    with pytest.raises(NotImplementedError):
        uses_mock.Sub()


def test_extern_module_is_the_environments_module_object(
    source_tree: SourceTree, export: Export, open_package: Open
) -> None:
    lib = source_tree({"__init__.py": "VALUE = 1\n"})
    user = source_tree({"__init__.py": f"import {lib}\n\nLIB = {lib}\n"})
    path = export(extern=[lib], intern=[user], modules=[user])

    module = open_package(path).import_module(user)

    assert module.LIB is sys.modules[lib]


# --- the import statement in packaged code --------------------------------------------

RELATIVE = {
    "__init__.py": "",
    "z.py": "NAME = 'z'\n",
    "rel/__init__.py": "",
    "rel/x.py": "NAME = 'x'\n",
    "rel/sub.py": "y = 'y'\n",
    "rel/dot.py": "from . import x\n",
    "rel/dot_sub.py": "from .sub import y\n",
    "rel/up.py": "from .. import z\n",
    "starpkg/__init__.py": "__all__ = ['public', 'submod']\npublic = 1\nhidden = 2\n",
    "starpkg/submod.py": "VALUE = 3\n",
    "star_user.py": "from .starpkg import *\n",
    "deep/__init__.py": "",
    "deep/er/__init__.py": "",
    "deep/er/est.py": "VALUE = 4\n",
}


@pytest.fixture
def relative(source_tree: SourceTree, export: Export, open_package: Open) -> tuple[str, Any]:
    """(top, importer) for a package exercising each form of the import statement."""
    top = source_tree(RELATIVE)
    source_tree({"dotted_user.py": f"import {top}.deep.er.est\n\nBOUND = {top}\n"}, name=top)
    modules = [
        f"{top}.rel.dot",
        f"{top}.rel.dot_sub",
        f"{top}.rel.up",
        f"{top}.star_user",
        f"{top}.starpkg.submod",
        f"{top}.dotted_user",
    ]
    return top, open_package(export(intern=[f"{top}.**"], modules=modules))


def test_from_dot_import_binds_the_sibling_module(relative: tuple[str, Any]) -> None:
    top, importer = relative
    module = importer.import_module(f"{top}.rel.dot")
    assert module.x is importer.import_module(f"{top}.rel.x")


def test_from_dot_submodule_import_binds_the_name(relative: tuple[str, Any]) -> None:
    top, importer = relative
    assert importer.import_module(f"{top}.rel.dot_sub").y == "y"


def test_from_dot_dot_import_binds_a_module_of_the_parent_package(
    relative: tuple[str, Any],
) -> None:
    top, importer = relative
    module = importer.import_module(f"{top}.rel.up")
    assert module.z is importer.import_module(f"{top}.z")


def test_star_import_binds_the_names_in_dunder_all(relative: tuple[str, Any]) -> None:
    top, importer = relative
    module = importer.import_module(f"{top}.star_user")
    assert module.public == 1
    assert module.submod is importer.import_module(f"{top}.starpkg.submod")
    assert not hasattr(module, "hidden")


def test_import_dotted_name_binds_the_top_level_package(relative: tuple[str, Any]) -> None:
    top, importer = relative
    module = importer.import_module(f"{top}.dotted_user")
    assert module.BOUND is importer.import_module(top)
    assert module.BOUND.deep.er.est.VALUE == 4


# --- importlib.resources --------------------------------------------------------------


@pytest.fixture
def resource_reader(source_tree: SourceTree, export: Export, open_package: Open) -> Any:
    """A packaged module that reads ``data.txt``, saved with save_text next to it."""
    top = source_tree({"__init__.py": ""})
    source_tree(
        {
            "reader.py": f"""
                import importlib.resources

                import {top} as package


                def read_with_files():
                    return importlib.resources.files(package).joinpath("data.txt").read_text()


                def read_with_legacy_read_text():
                    return importlib.resources.read_text(package, "data.txt")
                """
        },
        name=top,
    )
    path = export(
        intern=[f"{top}.**"],
        modules=[top, f"{top}.reader"],
        texts={(top, "data.txt"): "packaged data\n"},
    )
    return open_package(path).import_module(f"{top}.reader")


def test_packaged_code_reads_a_packaged_resource_with_importlib_resources_files(
    resource_reader: Any,
) -> None:
    assert resource_reader.read_with_files() == "packaged data\n"


@pytest.mark.skipif(
    not hasattr(importlib.resources, "read_text"), reason="importlib.resources.read_text removed"
)
def test_packaged_code_reads_a_packaged_resource_with_legacy_read_text(
    resource_reader: Any,
) -> None:
    with warnings.catch_warnings():
        # Deprecated on Python 3.11 and 3.12, un-deprecated in 3.13.
        warnings.simplefilter("ignore", DeprecationWarning)
        assert resource_reader.read_with_legacy_read_text() == "packaged data\n"


# --- re-export: importers -------------------------------------------------------------


def test_sys_importer_imports_from_the_running_interpreter() -> None:
    assert sys_importer.import_module("json") is sys.modules["json"]


@pytest.fixture
def two_versions(
    source_tree: SourceTree, export: Export, open_package: Open
) -> tuple[str, PackageImporter, PackageImporter]:
    """(top, first, second): two archives with different ``top.mod``; only first has ``only``."""
    top = source_tree({"__init__.py": ""})

    def version(value: int, with_only: bool) -> Callable[[PackageExporter], None]:
        def fill(exporter: PackageExporter) -> None:
            exporter.save_source_string(f"{top}.mod", f"VALUE = {value}\n")
            if with_only:
                exporter.save_source_string(f"{top}.only", "VALUE = 'only'\n")

        return fill

    first = open_package(export(fill=version(1, with_only=True)))
    second = open_package(export(fill=version(2, with_only=False)))
    return top, first, second


def test_ordered_importer_takes_the_module_from_the_first_importer_that_has_it(
    two_versions: tuple[str, PackageImporter, PackageImporter],
) -> None:
    top, first, second = two_versions
    assert OrderedImporter(first, second).import_module(f"{top}.mod").VALUE == 1
    assert OrderedImporter(second, first).import_module(f"{top}.mod").VALUE == 2


def test_ordered_importer_falls_through_to_a_later_importer(
    two_versions: tuple[str, PackageImporter, PackageImporter],
) -> None:
    top, first, second = two_versions
    ordered = OrderedImporter(second, first, sys_importer)
    assert ordered.import_module(f"{top}.only") is first.import_module(f"{top}.only")
    assert ordered.import_module("json") is sys.modules["json"]


def test_package_importer_alone_can_serve_a_new_exporter(
    reexport: Reexport, open_package: Open
) -> None:
    thing, path = reexport(then_sys_importer=False)

    reloaded = open_package(path).load_pickle("obj", "thing.pkl")
    assert reloaded.double() == 42
    assert type(reloaded) is not type(thing)


def test_object_reexported_with_package_importer_then_sys_importer_loads_again(
    reexport: Reexport, open_package: Open
) -> None:
    _, path = reexport(then_sys_importer=True)

    assert open_package(path).load_pickle("obj", "thing.pkl").double() == 42


def test_get_name_of_a_packaged_class_gives_its_demangled_module(
    archive: Path, open_package: Open, models: str
) -> None:
    importer = open_package(archive)
    thing_class = type(importer.load_pickle("obj", "thing.pkl"))
    assert importer.get_name(thing_class) == (f"{models}.models", "Thing")
    assert OrderedImporter(importer, sys_importer).get_name(thing_class) == (
        f"{models}.models",
        "Thing",
    )


def test_whichmodule_of_a_packaged_class_gives_its_demangled_module(
    archive: Path, open_package: Open, models: str
) -> None:
    importer = open_package(archive)
    thing_class = type(importer.load_pickle("obj", "thing.pkl"))
    assert importer.whichmodule(thing_class, "Thing") == f"{models}.models"


def test_reexport_with_only_sys_importer_raises_pickling_error_naming_the_fix(
    archive: Path, open_package: Open, tmp_path: Path
) -> None:
    """The environment still has the original module; the loaded class is another one."""
    importer = open_package(archive)
    thing = importer.load_pickle("obj", "thing.pkl")
    target = tmp_path / "reexport.pt"

    def reexport() -> None:
        with PackageExporter(target) as exporter:
            exporter.intern("**")
            exporter.save_pickle("obj", "thing.pkl", thing)

    with pytest.raises(pickle.PicklingError) as caught:
        reexport()

    assert "importer=(" in str(caught.value)
    assert "sys_importer" in str(caught.value)
    assert not target.exists()


def test_collected_reexport_with_only_sys_importer_is_a_from_another_package_problem(
    archive: Path, open_package: Open
) -> None:
    thing = open_package(archive).load_pickle("obj", "thing.pkl")

    exporter = PackageExporter(io.BytesIO(), collect_errors=True)
    exporter.intern("**")
    exporter.save_pickle("obj", "thing.pkl", thing)
    with pytest.raises(PackagingError) as caught:
        exporter.close()

    assert [problem.reason for problem in caught.value.problems] == [
        PackagingErrorReason.FROM_ANOTHER_PACKAGE
    ]


# --- fixed where torch.package is wrong -----------------------------------------------

ANNOTATED = {
    "__init__.py": "",
    "points.py": """
        from __future__ import annotations

        import dataclasses
        import typing


        class Unit:
            pass


        @dataclasses.dataclass
        class Point:
            x: int
            y: int = 0
            unit: typing.Optional[Unit] = None
            count: typing.ClassVar[int] = 0
        """,
}


@pytest.fixture
def points(source_tree: SourceTree, export: Export, open_package: Open) -> Any:
    """``points`` (``from __future__ import annotations`` + @dataclass) loaded from a package."""
    top = source_tree(ANNOTATED)
    path = export(intern=[f"{top}.**"], modules=[f"{top}.points"])
    return open_package(path).import_module(f"{top}.points")


def test_dataclass_in_a_module_with_future_annotations_loads_and_works(points: Any) -> None:
    point = points.Point(1, 2)
    assert (point.x, point.y, point.unit) == (1, 2, None)
    assert point == points.Point(1, 2)
    assert repr(point) == "Point(x=1, y=2, unit=None)"


def test_dataclasses_fields_of_a_packaged_dataclass_skip_class_vars(points: Any) -> None:
    assert [field.name for field in dataclasses.fields(points.Point)] == ["x", "y", "unit"]


def test_get_type_hints_resolves_string_annotations_in_the_packaged_module(
    points: Any,
) -> None:
    hints = typing.get_type_hints(points.Point)
    assert hints["x"] is int
    assert typing.get_args(hints["unit"]) == (points.Unit, type(None))
    assert hints["count"] == typing.ClassVar[int]


def test_a_second_importer_of_the_same_archive_compiles_nothing(
    monkeypatch: pytest.MonkeyPatch, source_tree: Callable[..., str]
) -> None:
    from torchpkg import _importlib

    top = source_tree({"__init__.py": "", "net.py": "def double(x):\n    return 2 * x\n"})
    data = io.BytesIO()
    with PackageExporter(data) as exporter:
        exporter.save_module(f"{top}.net")
    with PackageImporter(io.BytesIO(data.getvalue())) as first:
        assert first.import_module(f"{top}.net").double(2) == 4
    compiled: list[str] = []
    real_compile = compile
    monkeypatch.setattr(
        _importlib,
        "compile",
        lambda *args, **kw: compiled.append(args[1]) or real_compile(*args, **kw),
        raising=False,
    )
    with PackageImporter(io.BytesIO(data.getvalue())) as second:
        module = second.import_module(f"{top}.net")
        assert module.double(3) == 6
        assert module.__file__.startswith(second.id())
        assert module.double.__code__.co_filename == module.__file__
    assert compiled == []
