"""The same bad export fails the same way in torchpkg and in torch.package.

Each export runs with both tools, with ``debug`` off and on. The exception
types correspond and ``str()`` of torchpkg's error is torch.package's to the
character (torchpkg's advice is in the exception's notes). What torch.package
raises from ``save_pickle`` comes from the same call, of the same type, in
torchpkg, and the export can go on after it.
"""

from __future__ import annotations

import importlib
import io
import pickle
import sys
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.package as tp  # noqa: E402

import torchpkg  # noqa: E402
from torchpkg import PackagingErrorReason as Reason  # noqa: E402

SourceTree = Callable[..., str]  # the `source_tree` fixture of tests/conftest.py
Setup = Callable[[Any], object]

CORRESPONDING_TYPES = {
    tp.PackagingError: torchpkg.PackagingError,
    tp.EmptyMatchError: torchpkg.EmptyMatchError,
}
TOOLS = (tp, torchpkg)


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def _failure(exporter_cls: type[Any], setup: Setup, debug: bool) -> Exception:
    try:
        with exporter_cls(io.BytesIO(), debug=debug) as exporter:
            setup(exporter)
    except Exception as error:
        return error
    pytest.fail(f"{exporter_cls.__module__} exported without an error")


def _both_fail_alike(setup: Setup, debug: bool) -> torchpkg.PackagingError:
    """Run the export with both tools; the types correspond and the messages are equal."""
    theirs = _failure(tp.PackageExporter, setup, debug)
    ours = _failure(torchpkg.PackageExporter, setup, debug)
    assert type(ours) is CORRESPONDING_TYPES[type(theirs)], (theirs, ours)
    assert str(ours) == str(theirs)
    assert isinstance(ours, torchpkg.PackagingError)
    return ours


def _reasons(error: torchpkg.PackagingError) -> dict[Reason, list[str]]:
    return {reason: [p.subject for p in found] for reason, found in error.by_reason().items()}


@pytest.fixture
def project(source_tree: SourceTree) -> tuple[str, str]:
    """``app.model`` (defines ``Thing``) imports ``lib.dep``; returns ``(app, lib)``."""
    lib = source_tree({"__init__.py": "", "dep.py": "X = 1\n"})
    app = source_tree(
        {"__init__.py": "", "model.py": f"import {lib}.dep\n\n\nclass Thing:\n    pass\n"}
    )
    return app, lib


@pytest.fixture
def fake_module(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Put a made-up module (no source anywhere) into sys.modules for the test."""

    def make(name: str, **attributes: object) -> str:
        module = types.ModuleType(name)
        vars(module).update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
        return name

    return make


# --- the reasons both tools share ------------------------------------------------------------


def test_denied_module_is_reported_like_torch_package(
    project: tuple[str, str], debug: bool
) -> None:
    app, lib = project

    def setup(exporter: Any) -> None:
        exporter.intern([app, f"{app}.**"])
        exporter.deny(f"{lib}.**")
        exporter.save_module(f"{app}.model")

    assert _reasons(_both_fail_alike(setup, debug)) == {Reason.DENIED: [f"{lib}.dep"]}


def test_module_matching_no_pattern_is_reported_like_torch_package(
    project: tuple[str, str], debug: bool
) -> None:
    app, lib = project

    def setup(exporter: Any) -> None:
        exporter.intern([app, f"{app}.**"])
        exporter.save_module(f"{app}.model")

    assert _reasons(_both_fail_alike(setup, debug)) == {Reason.NO_ACTION: [f"{lib}.dep"]}


def test_import_chain_under_debug_is_torch_packages_first_path(
    source_tree: SourceTree,
) -> None:
    top = source_tree(
        {"__init__.py": "", "a.py": "from . import b\n", "b.py": "from . import c\n", "c.py": ""}
    )

    def setup(exporter: Any) -> None:
        exporter.intern([f"{top}.a", f"{top}.b"])
        exporter.save_module(f"{top}.a")

    ours = _both_fail_alike(setup, debug=True)

    assert f"A path to {top}.c: {top}.a -> {top}.b -> {top}.c" in str(ours)


def test_mocked_module_still_used_by_pickles_is_reported_with_torch_packages_context(
    project: tuple[str, str], debug: bool
) -> None:
    """The context names the objects of the last pickle that used the module."""
    app, lib = project
    model = importlib.import_module(f"{app}.model")

    def setup(exporter: Any) -> None:
        exporter.mock([app, f"{app}.**"])
        exporter.extern([lib, f"{lib}.**"])
        exporter.save_pickle("objects", "thing.pkl", model.Thing())
        exporter.save_pickle("more", "things.pkl", [model.Thing(), model.Thing])

    ours = _both_fail_alike(setup, debug)

    assert _reasons(ours) == {Reason.MOCKED_BUT_STILL_USED: [f"{app}.model"]}
    assert "Context: Object(s) '['Thing']'" in str(ours)
    assert "resource - `things.pkl` in package `more`" in str(ours)


def test_c_extension_module_given_to_save_module_is_reported_like_torch_package(
    debug: bool,
) -> None:
    pytest.importorskip("numpy")
    extension = "numpy._core._multiarray_umath"
    pytest.importorskip(extension)

    ours = _both_fail_alike(lambda exporter: exporter.save_module(extension), debug)

    assert _reasons(ours) == {Reason.IS_EXTENSION_MODULE: [extension]}


def test_interned_module_without_dunder_file_is_reported_like_torch_package(
    fake_module: Callable[..., str], debug: bool
) -> None:
    name = fake_module("torchpkg_compat_no_file")

    def setup(exporter: Any) -> None:
        exporter.intern(name)
        exporter.save_source_string("main", f"import {name}\n")

    assert _reasons(_both_fail_alike(setup, debug)) == {Reason.NO_DUNDER_FILE: [name]}


def test_interned_module_whose_file_is_gone_is_reported_with_torch_packages_context(
    fake_module: Callable[..., str], tmp_path: Path, debug: bool
) -> None:
    gone = tmp_path / "gone.pyc"
    name = fake_module("torchpkg_compat_gone", __file__=str(gone))

    def setup(exporter: Any) -> None:
        exporter.intern(name)
        exporter.save_source_string("main", f"import {name}\n")

    ours = _both_fail_alike(setup, debug)

    assert _reasons(ours) == {Reason.SOURCE_FILE_NOT_FOUND: [name]}
    assert f"      Context: filename: {gone}\n" in str(ours)


def test_source_that_cannot_be_parsed_is_reported_with_torch_packages_context(
    debug: bool,
) -> None:
    ours = _both_fail_alike(
        lambda exporter: exporter.save_source_string("broken", "def f(:\n    pass\n"), debug
    )

    assert _reasons(ours) == {Reason.DEPENDENCY_RESOLUTION_FAILED: ["broken"]}
    assert "      Context: invalid syntax (<unknown>, line 1)\n" in str(ours)


def test_relative_import_beyond_the_top_level_package_is_reported_in_importlibs_words(
    debug: bool,
) -> None:
    """torchpkg's own explanation (which import, how far up) is in the notes."""
    source = "import json\nfrom .. import x\n"
    ours = _both_fail_alike(lambda exporter: exporter.save_source_string("pkg.mod", source), debug)

    assert _reasons(ours) == {Reason.DEPENDENCY_RESOLUTION_FAILED: ["pkg.mod"]}
    assert "      Context: attempted relative import beyond top-level package\n" in str(ours)
    assert "goes 2 level(s) up from package 'pkg'" in "\n".join(ours.__notes__)


def test_problems_of_several_kinds_and_the_sys_io_note_are_reported_like_torch_package(
    source_tree: SourceTree, debug: bool
) -> None:
    denied = source_tree({"__init__.py": "", "secret.py": ""})
    unknown = source_tree({"__init__.py": "", "stray.py": ""})
    app = source_tree(
        {
            "__init__.py": "",
            "main.py": f"import io\nimport sys\nimport {denied}.secret\nimport {unknown}.stray\n",
        }
    )

    def setup(exporter: Any) -> None:
        exporter.intern([app, f"{app}.**"])
        exporter.deny([denied, f"{denied}.**"])
        exporter.save_module(f"{app}.main")

    ours = _both_fail_alike(setup, debug)

    assert _reasons(ours) == {
        Reason.NO_ACTION: ["io", "sys", f"{unknown}.stray"],
        Reason.DENIED: [f"{denied}.secret"],
    }
    assert "`sys` has a lot of system level access" in str(ours)


# --- allow_empty=False -----------------------------------------------------------------------


def test_unmatched_allow_empty_false_pattern_raises_empty_match_error_like_torch_package(
    debug: bool,
) -> None:
    def setup(exporter: Any) -> None:
        exporter.extern(["nothing_here.**"], exclude="nothing_here.x", allow_empty=False)
        exporter.save_pickle("objects", "list.pkl", [1, 2])

    ours = _both_fail_alike(setup, debug)

    assert _reasons(ours) == {
        Reason.EMPTY_MATCH: ["extern(['nothing_here.**'], exclude=['nothing_here.x'])"]
    }


def test_several_unmatched_patterns_are_named_by_the_first_like_torch_package(
    debug: bool,
) -> None:
    def setup(exporter: Any) -> None:
        exporter.extern("first_unmatched.**", allow_empty=False)
        exporter.mock("second_unmatched.**", allow_empty=False)

    ours = _both_fail_alike(setup, debug)

    assert "first_unmatched" in str(ours)
    assert len(ours.problems) == 2


def test_unmatched_pattern_next_to_dependency_problems_raises_packaging_error_like_torch_package(
    project: tuple[str, str], debug: bool
) -> None:
    """torch.package checks the patterns only once nothing else failed."""
    app, lib = project

    def setup(exporter: Any) -> None:
        exporter.extern("nothing_here.**", allow_empty=False)
        exporter.intern([app, f"{app}.**"])
        exporter.save_module(f"{app}.model")

    ours = _both_fail_alike(setup, debug)

    assert type(ours) is torchpkg.PackagingError
    assert _reasons(ours) == {
        Reason.NO_ACTION: [f"{lib}.dep"],
        Reason.EMPTY_MATCH: ["extern(['nothing_here.**'])"],
    }


# --- save_pickle raises at once ----------------------------------------------------------------


def _save_pickle_error(tool: Any, obj: object, ordered: bool) -> type[BaseException]:
    """What ``save_pickle`` raises; the export then closes without an error."""
    kwargs = {"importer": [tool.sys_importer]} if ordered else {}
    with tool.PackageExporter(io.BytesIO(), **kwargs) as exporter:
        try:
            exporter.save_pickle("objects", "obj.pkl", obj)
        except Exception as error:
            return type(error)
    pytest.fail(f"{tool.__name__} pickled {obj!r}")


def _local_instance() -> object:
    class Local:
        pass

    return Local()


UNPICKLABLE: dict[str, tuple[Callable[[], object], type[BaseException]]] = {
    "lambda": (lambda: {"fn": lambda: 1}, pickle.PicklingError),
    "lock": (threading.Lock, TypeError),
    "local-class": (_local_instance, pickle.PicklingError),
    "module-missing": (
        type("Ghost", (), {"__module__": "torchpkg_compat_missing"}),
        pickle.PicklingError,
    ),
}


@pytest.mark.parametrize("ordered", [False, True], ids=["sys_importer", "ordered-importer"])
@pytest.mark.parametrize("case", list(UNPICKLABLE))
def test_unpicklable_object_raises_from_save_pickle_like_torch_package(
    case: str, ordered: bool
) -> None:
    make, expected = UNPICKLABLE[case]
    theirs, ours = (_save_pickle_error(tool, make(), ordered) for tool in TOOLS)

    assert ours is theirs is expected


@pytest.mark.parametrize("ordered", [False, True], ids=["sys_importer", "ordered-importer"])
def test_object_whose_class_name_leads_to_other_code_raises_pickling_error_like_torch_package(
    project: tuple[str, str], monkeypatch: pytest.MonkeyPatch, ordered: bool
) -> None:
    app, _ = project
    model = importlib.import_module(f"{app}.model")
    thing = model.Thing()
    monkeypatch.setattr(model, "Thing", type("Thing", (), {"__module__": model.__name__}))

    theirs, ours = (_save_pickle_error(tool, thing, ordered) for tool in TOOLS)

    assert ours is theirs is pickle.PicklingError


def _thing_from_a_package(tool: Any, app: str, lib: str) -> tuple[Any, object]:
    """``(importer, thing)``: an ``app.model.Thing`` loaded from a package ``tool`` wrote."""
    buffer = io.BytesIO()
    with tool.PackageExporter(buffer) as exporter:
        exporter.intern([app, f"{app}.**"])
        exporter.extern([lib, f"{lib}.**"])
        exporter.save_pickle(
            "objects", "thing.pkl", importlib.import_module(f"{app}.model").Thing()
        )
    buffer.seek(0)
    importer = tool.PackageImporter(buffer)
    return importer, importer.load_pickle("objects", "thing.pkl")


@pytest.fixture
def loaded_things(project: tuple[str, str]) -> Iterator[dict[Any, object]]:
    """Each tool's ``Thing`` loaded from a package of its own."""
    app, lib = project
    (_, theirs), (ours_importer, ours) = (_thing_from_a_package(tool, app, lib) for tool in TOOLS)
    yield {tp: theirs, torchpkg: ours}
    ours_importer.close()


@pytest.mark.parametrize("ordered", [False, True], ids=["sys_importer", "ordered-importer"])
def test_object_from_another_package_without_its_importer_raises_pickling_error_like_torch_package(
    loaded_things: dict[Any, object], ordered: bool
) -> None:
    theirs, ours = (_save_pickle_error(tool, loaded_things[tool], ordered) for tool in TOOLS)

    assert ours is theirs is pickle.PicklingError


def test_object_from_another_package_raises_even_without_dependencies_like_torch_package(
    loaded_things: dict[Any, object],
) -> None:
    for tool in TOOLS:
        with tool.PackageExporter(io.BytesIO()) as exporter, pytest.raises(pickle.PicklingError):
            exporter.save_pickle("objects", "thing.pkl", loaded_things[tool], dependencies=False)


# --- save_module of a module that does not exist ---------------------------------------------

MISSING = "no_such_module_for_torchpkg_compat"


@pytest.mark.parametrize("tool", TOOLS, ids=["torch.package", "torchpkg"])
def test_save_module_of_a_missing_module_raises_module_not_found_error_at_the_call(
    tool: Any,
) -> None:
    with tool.PackageExporter(io.BytesIO()) as exporter, pytest.raises(ModuleNotFoundError) as info:
        exporter.save_module(MISSING)
    assert str(info.value) == f"No module named '{MISSING}'"
    assert info.value.name == MISSING


@pytest.mark.parametrize("tool", TOOLS, ids=["torch.package", "torchpkg"])
def test_the_export_goes_on_after_a_missing_module_given_to_save_module(
    tool: Any, project: tuple[str, str]
) -> None:
    app, lib = project
    with tool.PackageExporter(io.BytesIO()) as exporter:
        exporter.intern([app, f"{app}.**", lib, f"{lib}.**"])
        with pytest.raises(ModuleNotFoundError):
            exporter.save_module(MISSING)
        exporter.save_module(f"{app}.model")
    assert MISSING not in exporter.dependency_graph
    assert f"{app}.model" in exporter.interned_modules()


@pytest.mark.parametrize("tool", TOOLS, ids=["torch.package", "torchpkg"])
def test_a_missing_module_given_to_save_module_is_not_replaced_by_an_unmatched_pattern(
    tool: Any,
) -> None:
    def setup(exporter: Any) -> None:
        exporter.intern("nothing_matches_this.**", allow_empty=False)
        exporter.save_module(MISSING)

    assert type(_failure(tool.PackageExporter, setup, debug=False)) is ModuleNotFoundError


# --- where torch.package fails differently -----------------------------------------------------


def test_collect_errors_keeps_a_missing_module_given_to_save_module_for_close() -> None:
    """torch.package has no ``collect_errors``: this is torchpkg's one report."""
    exporter = torchpkg.PackageExporter(io.BytesIO(), collect_errors=True)
    exporter.save_module(MISSING)
    with pytest.raises(torchpkg.PackagingError) as info:
        exporter.close()

    assert str(info.value) == (
        f"\n* {Reason.MODULE_NOT_FOUND.value}\n    {MISSING}\n\n"
        "Set debug=True when invoking PackageExporter for a visualization of where broken "
        "modules are coming from!\n"
    )
