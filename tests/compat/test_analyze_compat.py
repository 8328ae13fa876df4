"""``torchpkg.analyze`` answers like ``torch.package.analyze`` on the same code and objects."""

from __future__ import annotations

import importlib
import io
import types
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.package as tp  # noqa: E402
from torch.package import analyze as tp_analyze  # noqa: E402

import torchpkg  # noqa: E402
from torchpkg import analyze  # noqa: E402

SourceTree = Callable[..., str]  # the `source_tree` fixture of tests/conftest.py


def test_analyze_offers_torch_package_functions() -> None:
    """torch.package keeps ``is_from_package`` out of ``analyze``'s namespace (the name
    is its submodule there); torchpkg offers it in both places."""
    for name in ["trace_dependencies", "find_first_use_of_broken_modules"]:
        assert callable(getattr(tp_analyze, name)), name
        assert callable(getattr(analyze, name)), name
    assert callable(tp.is_from_package)
    assert torchpkg.is_from_package is analyze.is_from_package


# --- trace_dependencies ------------------------------------------------------------------


@pytest.fixture
def traced(source_tree: SourceTree) -> str:
    """``model.SumMod`` (an nn.Module) and ``model.run`` call ``helpers.double``;
    ``unused`` is imported but never called."""
    return source_tree(
        {
            "__init__.py": "",
            "helpers.py": "def double(x):\n    return x * 2\n",
            "unused.py": "def never():\n    return 0\n",
            "model.py": """
                import torch

                from . import unused
                from .helpers import double


                class SumMod(torch.nn.Module):
                    def forward(self, inp):
                        return double(torch.sum(inp))


                def run(x, y):
                    return double(x) + y
            """,
        }
    )


def test_trace_of_a_function_names_the_modules_whose_functions_ran(traced: str) -> None:
    model = importlib.import_module(f"{traced}.model")
    inputs = [(1, 2), (3, 4)]

    theirs = tp_analyze.trace_dependencies(model.run, inputs)
    ours = analyze.trace_dependencies(model.run, inputs)

    assert set(ours) == set(theirs) == {f"{traced}.model", f"{traced}.helpers"}


def test_trace_of_a_module_call_names_the_same_modules(traced: str) -> None:
    model = importlib.import_module(f"{traced}.model")
    inputs = [(torch.randn(4),)]

    theirs = tp_analyze.trace_dependencies(model.SumMod(), inputs)
    ours = analyze.trace_dependencies(model.SumMod(), inputs)

    assert set(ours) == set(theirs)
    assert {f"{traced}.model", f"{traced}.helpers", "torch.nn.modules.module"} <= set(ours)
    assert f"{traced}.unused" not in ours


def test_trace_with_no_inputs_never_calls_and_names_nothing(traced: str) -> None:
    model = importlib.import_module(f"{traced}.model")
    assert analyze.trace_dependencies(model.run, []) == tp_analyze.trace_dependencies(model.run, [])


def test_trace_goes_on_past_a_raising_property_where_torch_package_stops(
    source_tree: SourceTree,
) -> None:
    """A property getter that raises is run again when torch.package looks it up on
    ``self`` inside its profiler; the error turns the profiler off."""
    top = source_tree(
        {
            "__init__.py": "",
            "helpers.py": "def double(x):\n    return x * 2\n",
            "model.py": """
                from .helpers import double


                class Thing:
                    @property
                    def value(self):
                        raise RuntimeError("not now")


                def run(x):
                    try:
                        Thing().value
                    except RuntimeError:
                        pass
                    return double(x)
            """,
        }
    )
    model = importlib.import_module(f"{top}.model")

    assert f"{top}.helpers" not in tp_analyze.trace_dependencies(model.run, [(1,)])
    assert f"{top}.helpers" in analyze.trace_dependencies(model.run, [(1,)])


# --- find_first_use_of_broken_modules ------------------------------------------------------


@pytest.fixture
def broken(source_tree: SourceTree) -> tuple[str, str, str]:
    """``(app, lib, secret)``: ``app.model`` imports ``lib.dep`` (which imports
    ``secret.keys``) and ``app.helpers``, which imports ``lib.dep`` too."""
    secret = source_tree({"__init__.py": "", "keys.py": "KEY = 1\n"})
    lib = source_tree({"__init__.py": "", "dep.py": f"import {secret}.keys\n"})
    app = source_tree(
        {
            "__init__.py": "",
            "helpers.py": f"import {lib}.dep\n",
            "model.py": f"""
                from . import helpers
                import {lib}.dep


                class Thing:
                    pass
            """,
        }
    )
    return app, lib, secret


def _broken_export_error(exporter_cls: type[Any], broken: tuple[str, str, str]) -> Any:
    """``lib`` is interned by a rule, ``secret`` is denied and ``app.helpers`` matches nothing."""
    app, lib, secret = broken
    exporter = exporter_cls(io.BytesIO())
    exporter.intern([app, f"{app}.model", f"{lib}.**"])
    exporter.deny(f"{secret}.**")
    exporter.save_pickle("objects", "thing.pkl", importlib.import_module(f"{app}.model").Thing())
    with pytest.raises(Exception) as failure:  # noqa: PT011 - each tool has its own type
        exporter.close()
    return failure.value


def test_first_uses_of_broken_modules_are_the_same_paths(broken: tuple[str, str, str]) -> None:
    app, lib, secret = broken
    theirs = tp_analyze.find_first_use_of_broken_modules(
        _broken_export_error(tp.PackageExporter, broken)
    )
    ours = analyze.find_first_use_of_broken_modules(
        _broken_export_error(torchpkg.PackageExporter, broken)
    )

    assert ours == theirs
    assert ours[f"{secret}.keys"] == [
        "<objects.thing.pkl>",
        f"{app}.model",
        f"{lib}.dep",
        f"{secret}.keys",
    ]
    assert f"{app}.helpers" in ours


def test_packaging_error_carries_the_dependency_graph_like_torch_package(
    broken: tuple[str, str, str],
) -> None:
    theirs = _broken_export_error(tp.PackageExporter, broken).dependency_graph
    ours = _broken_export_error(torchpkg.PackageExporter, broken).dependency_graph
    errors = [
        {n: attrs["error"].name for n, attrs in g.nodes.items() if "error" in attrs}
        for g in (theirs, ours)
    ]
    assert errors[1] == errors[0]


def test_first_uses_of_something_else_fail_with_type_error_where_torch_package_asserts() -> None:
    with pytest.raises(AssertionError):
        tp_analyze.find_first_use_of_broken_modules(ValueError("no graph"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="PackagingError"):
        analyze.find_first_use_of_broken_modules(ValueError("no graph"))  # type: ignore[arg-type]


# --- is_from_package -----------------------------------------------------------------------


@pytest.fixture
def archive(tmp_path: Path, source_tree: SourceTree) -> tuple[Path, str]:
    """A package of ``app.model.Thing``, a tensor, a ``collections.Counter`` and a str."""
    app = source_tree(
        {"__init__.py": "", "model.py": "class Thing:\n    pass\n"},
    )
    path = tmp_path / "objects.pt"
    with torchpkg.PackageExporter(path) as exporter:
        exporter.intern([app, f"{app}.**"])
        exporter.save_pickle("o", "thing.pkl", importlib.import_module(f"{app}.model").Thing())
        exporter.save_pickle("o", "tensor.pkl", torch.ones(2))
        exporter.save_pickle("o", "counter.pkl", __import__("collections").Counter("ab"))
        exporter.save_pickle("o", "text.pkl", "text")
    return path, app


def _candidates(importer: Any, app: str) -> dict[str, object]:
    return {
        "packaged module": importer.import_module(f"{app}.model"),
        "packaged class instance": importer.load_pickle("o", "thing.pkl"),
        "packaged class": type(importer.load_pickle("o", "thing.pkl")),
        "tensor": importer.load_pickle("o", "tensor.pkl"),
        "stdlib object": importer.load_pickle("o", "counter.pkl"),
        "str": importer.load_pickle("o", "text.pkl"),
        "stdlib module": importer.import_module("collections"),
        "environment module": importlib.import_module(f"{app}.model"),
    }


@pytest.mark.parametrize("importer_cls", [tp.PackageImporter, torchpkg.PackageImporter])
def test_is_from_package_agrees_on_objects_loaded_by_either_importer(
    archive: tuple[Path, str], importer_cls: type[Any]
) -> None:
    path, app = archive
    importer = importer_cls(str(path))
    try:
        candidates = _candidates(importer, app)
        theirs = {name: tp.is_from_package(obj) for name, obj in candidates.items()}
        ours = {name: torchpkg.is_from_package(obj) for name, obj in candidates.items()}
    finally:
        getattr(importer, "close", lambda: None)()  # torch.package's importer has no close()

    assert ours == theirs
    assert {name for name, answer in ours.items() if answer} == {
        "packaged module",
        "packaged class instance",
    }


class _LazyModule(types.ModuleType):
    """A ModuleType subclass from outside any package, like transformers' lazy modules."""


def test_a_module_of_an_outside_subclass_is_judged_by_its_class_as_in_torch_package() -> None:
    module = _LazyModule("<torch_package_0>.models")
    assert analyze.is_from_package(module) is tp.is_from_package(module) is False


def test_modules_by_name_judges_a_module_by_its_own_mangled_name() -> None:
    assert analyze.is_from_package(_LazyModule("<torch_package_0>.models"), modules_by_name=True)
    assert not analyze.is_from_package(_LazyModule("models"), modules_by_name=True)
    assert isinstance(_LazyModule("x"), ModuleType)
