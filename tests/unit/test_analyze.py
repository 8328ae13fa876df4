"""``torchpkg.analyze``: what torchpkg adds to torch.package's answers (torch-free)."""

from __future__ import annotations

import importlib
import io
import sys
import types
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import pytest

from torchpkg import PackageExporter, PackageImporter, PackagingError, analyze
from torchpkg.errors import PackagingErrorReason, Problem

SourceTree = Callable[..., str]  # the `source_tree` fixture of tests/conftest.py


@pytest.fixture
def traced(source_tree: SourceTree) -> str:
    """``model.run`` calls ``helpers.double`` then ``more.triple``; ``model.run_with_thing``
    reads ``Thing.value``, a property that raises, then calls ``helpers.double``."""
    return source_tree(
        {
            "__init__.py": "",
            "helpers.py": "def double(x):\n    return x * 2\n",
            "more.py": "def triple(x):\n    return x * 3\n",
            "model.py": """
                from .helpers import double
                from .more import triple


                def run(x):
                    return triple(double(x))


                class Thing:
                    @property
                    def value(self):
                        raise RuntimeError("not now")

                    def call(self):
                        return self.value_or_default()

                    def value_or_default(self):
                        try:
                            return self.value
                        except RuntimeError:
                            return 0


                def run_with_thing(x):
                    Thing().call()
                    return double(x)
            """,
        }
    )


def test_trace_lists_modules_in_the_order_they_were_first_used(traced: str) -> None:
    model = importlib.import_module(f"{traced}.model")
    used = analyze.trace_dependencies(model.run, [(1,), (2,)])
    assert used == [f"{traced}.model", f"{traced}.helpers", f"{traced}.more"]


def test_trace_restores_a_profiler_that_was_already_running(traced: str) -> None:
    """torch.package turns any running profiler off when it is done."""
    model = importlib.import_module(f"{traced}.model")
    seen: list[str] = []

    def profiler(frame: FrameType, event: str, arg: object) -> None:
        seen.append(event)

    sys.setprofile(profiler)
    try:
        analyze.trace_dependencies(model.run, [(1,)])
        assert sys.getprofile() is profiler
    finally:
        sys.setprofile(None)


def test_trace_restores_the_profiler_when_the_callable_raises(traced: str) -> None:
    def fail(x: int) -> None:
        raise ValueError(x)

    with pytest.raises(ValueError, match="1"):
        analyze.trace_dependencies(fail, [(1,)])
    assert sys.getprofile() is None


def test_trace_goes_on_past_a_property_getter_that_raises(traced: str) -> None:
    """Looking the getter up on ``self`` runs it again; in torch.package that error
    escapes from the profiler, which Python then turns off: later calls go unseen."""
    model = importlib.import_module(f"{traced}.model")
    used = analyze.trace_dependencies(model.run_with_thing, [(1,)])
    assert used == [f"{traced}.model", f"{traced}.helpers"]


def test_first_uses_without_a_graph_come_from_the_problems_chains() -> None:
    error = PackagingError(
        [
            Problem(PackagingErrorReason.DENIED, "secret", chain=("<o.p.pkl>", "app", "secret")),
            Problem(PackagingErrorReason.NO_ACTION, "stray"),
        ]
    )
    assert analyze.find_first_use_of_broken_modules(error) == {
        "secret": ["<o.p.pkl>", "app", "secret"],
        "stray": ["stray"],
    }


def test_first_uses_of_an_export_follow_the_exporters_graph(source_tree: SourceTree) -> None:
    secret = source_tree({"__init__.py": ""})
    app = source_tree({"__init__.py": "", "model.py": f"import {secret}\n"})
    exporter = PackageExporter(io.BytesIO())
    exporter.intern([app, f"{app}.**"])
    exporter.deny(secret)
    exporter.save_module(f"{app}.model")
    with pytest.raises(PackagingError) as failure:
        exporter.close()
    assert failure.value.dependency_graph is exporter.dependency_graph
    assert analyze.find_first_use_of_broken_modules(failure.value) == {
        secret: [f"{app}.model", secret]
    }


def test_a_packaged_module_and_packaged_objects_are_from_the_package(
    source_tree: SourceTree, tmp_path: Path
) -> None:
    app = source_tree({"__init__.py": "", "model.py": "class Thing:\n    pass\n"})
    path = tmp_path / "p.pt"
    with PackageExporter(path) as exporter:
        exporter.intern([app, f"{app}.**"])
        exporter.save_pickle("o", "t.pkl", importlib.import_module(f"{app}.model").Thing())
    with PackageImporter(path) as importer:
        assert analyze.is_from_package(importer.import_module(f"{app}.model"))
        assert analyze.is_from_package(importer.load_pickle("o", "t.pkl"))
        assert not analyze.is_from_package(importlib.import_module(f"{app}.model"))


class _Lazy(types.ModuleType):
    pass


def test_modules_by_name_changes_nothing_for_plain_modules_and_other_objects() -> None:
    plain = types.ModuleType("<torch_package_0>.x")
    for obj in (plain, _Lazy("x"), "text", 3):
        assert analyze.is_from_package(obj, modules_by_name=True) is analyze.is_from_package(obj)
