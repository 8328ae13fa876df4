"""The same bad export fails the same way in torchpkg and in torch.package.

Each export runs with both tools. Every ``* <reason>`` line and every module
line of torch.package's message must appear in torchpkg's, under the same
reason; torchpkg may add lines (``Context:``, ``Next:`` hints). Where
torch.package fails differently (at once, with another exception), the test
name says so and torchpkg's behaviour is asserted.
"""

from __future__ import annotations

import importlib
import io
import pickle
import re
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.package as tp  # noqa: E402

import torchpkg  # noqa: E402
from torchpkg import PackagingErrorReason  # noqa: E402

SourceTree = Callable[..., str]  # the `source_tree` fixture of tests/conftest.py
Setup = Callable[[Any], object]

CORRESPONDING_TYPES = {
    tp.PackagingError: torchpkg.PackagingError,
    tp.EmptyMatchError: torchpkg.EmptyMatchError,
}

_MODULE_LINE = re.compile(r" {4}\S.*")


def _failure(exporter_cls: type[Any], setup: Setup) -> Exception:
    try:
        with exporter_cls(io.BytesIO()) as exporter:
            setup(exporter)
    except Exception as error:
        return error
    pytest.fail(f"{exporter_cls.__module__} exported without an error")


def _key_lines(message: str) -> list[str]:
    """The ``* <reason>`` lines and the module lines (4 spaces in) of a message."""
    return [
        line
        for line in message.splitlines()
        if line.startswith("* ") or _MODULE_LINE.fullmatch(line)
    ]


def _groups(message: str) -> dict[str, set[str]]:
    """Reason sentence -> the modules listed under it."""
    groups: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in message.splitlines():
        if line.startswith("* "):
            current = groups.setdefault(line[2:], set())
        elif current is not None and _MODULE_LINE.fullmatch(line):
            current.add(line.strip())
    return groups


def _both_fail_alike(setup: Setup) -> tuple[Exception, Exception]:
    """Run the export with both tools and check the messages and types agree."""
    theirs = _failure(tp.PackageExporter, setup)
    ours = _failure(torchpkg.PackageExporter, setup)
    assert type(ours) is CORRESPONDING_TYPES[type(theirs)], (theirs, ours)
    our_lines = str(ours).splitlines()
    missing = [line for line in _key_lines(str(theirs)) if line not in our_lines]
    assert not missing, f"torchpkg's message lacks {missing}:\n{ours}"
    our_groups = _groups(str(ours))
    for reason, modules in _groups(str(theirs)).items():
        assert modules <= our_groups.get(reason, set()), reason
    return theirs, ours


@pytest.fixture
def project(source_tree: SourceTree) -> tuple[str, str]:
    """``app.model`` (defines ``Thing``) imports ``lib.dep``; returns ``(app, lib)``."""
    lib = source_tree({"__init__.py": "", "dep.py": "X = 1\n"})
    app = source_tree(
        {"__init__.py": "", "model.py": f"import {lib}.dep\n\n\nclass Thing:\n    pass\n"}
    )
    return app, lib


def test_denied_module_is_reported_like_torch_package(project: tuple[str, str]) -> None:
    app, lib = project

    def setup(exporter: Any) -> None:
        exporter.intern([app, f"{app}.**"])
        exporter.deny(f"{lib}.**")
        exporter.save_module(f"{app}.model")

    _, ours = _both_fail_alike(setup)

    assert _groups(str(ours)) == {PackagingErrorReason.DENIED.value: {f"{lib}.dep"}}


def test_module_matching_no_pattern_is_reported_like_torch_package(
    project: tuple[str, str],
) -> None:
    app, lib = project

    def setup(exporter: Any) -> None:
        exporter.intern([app, f"{app}.**"])
        exporter.save_module(f"{app}.model")

    _, ours = _both_fail_alike(setup)

    assert _groups(str(ours)) == {PackagingErrorReason.NO_ACTION.value: {f"{lib}.dep"}}


def test_mocked_module_still_used_by_a_pickle_is_reported_like_torch_package(
    project: tuple[str, str],
) -> None:
    app, lib = project
    thing = importlib.import_module(f"{app}.model").Thing()

    def setup(exporter: Any) -> None:
        exporter.mock([app, f"{app}.**"])
        exporter.extern([lib, f"{lib}.**"])
        exporter.save_pickle("objects", "thing.pkl", thing)

    _, ours = _both_fail_alike(setup)

    assert _groups(str(ours)) == {
        PackagingErrorReason.MOCKED_BUT_STILL_USED.value: {f"{app}.model"}
    }


def test_c_extension_module_given_to_save_module_is_reported_like_torch_package() -> None:
    pytest.importorskip("numpy")
    extension = "numpy._core._multiarray_umath"
    pytest.importorskip(extension)

    _, ours = _both_fail_alike(lambda exporter: exporter.save_module(extension))

    assert _groups(str(ours)) == {PackagingErrorReason.IS_EXTENSION_MODULE.value: {extension}}


def test_problems_of_several_kinds_are_grouped_by_reason_like_torch_package(
    source_tree: SourceTree,
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

    _, ours = _both_fail_alike(setup)

    assert _groups(str(ours)) == {
        PackagingErrorReason.DENIED.value: {f"{denied}.secret"},
        PackagingErrorReason.NO_ACTION.value: {"io", "sys", f"{unknown}.stray"},
    }


def test_unmatched_allow_empty_false_pattern_raises_empty_match_error_like_torch_package() -> None:
    """torch.package's EmptyMatchError is one sentence naming the first such pattern
    (no reason or module lines); torchpkg lists every unmatched pattern."""

    def setup(exporter: Any) -> None:
        exporter.extern("nothing_here.**", allow_empty=False)
        exporter.save_pickle("objects", "list.pkl", [1, 2])

    theirs, ours = _both_fail_alike(setup)

    assert "nothing_here.**" in str(theirs)
    assert "nothing_here.**" in str(ours)
    assert _groups(str(ours)) == {
        PackagingErrorReason.EMPTY_MATCH.value: {"extern(['nothing_here.**'])"}
    }


def test_unpicklable_object_raises_at_save_pickle_in_torch_package_but_at_close_in_torchpkg(
    project: tuple[str, str],
) -> None:
    """torch.package raises pickle's own error from ``save_pickle``; torchpkg records
    the problem and raises it at ``close()`` with every other problem of the export."""
    app, lib = project
    unpicklable = {"fn": lambda: 1}

    with tp.PackageExporter(io.BytesIO()) as theirs, pytest.raises(pickle.PicklingError):
        theirs.save_pickle("objects", "fn.pkl", unpicklable)

    exporter = torchpkg.PackageExporter(io.BytesIO())
    exporter.intern([app, f"{app}.**"])
    exporter.save_pickle("objects", "fn.pkl", unpicklable)
    exporter.save_module(f"{app}.model")
    with pytest.raises(torchpkg.PackagingError) as info:
        exporter.close()

    assert _groups(str(info.value)) == {
        PackagingErrorReason.UNPICKLABLE.value: {"<objects.fn.pkl>"},
        PackagingErrorReason.NO_ACTION.value: {f"{lib}.dep"},
    }


def test_missing_module_raises_at_save_module_in_torch_package_but_at_close_in_torchpkg() -> None:
    """torch.package lets ``ModuleNotFoundError`` escape from ``save_module``; torchpkg
    reports the module under "could not be found" in its PackagingError."""
    missing = "no_such_module_for_torchpkg_compat"

    with tp.PackageExporter(io.BytesIO()) as theirs, pytest.raises(ModuleNotFoundError):
        theirs.save_module(missing)

    exporter = torchpkg.PackageExporter(io.BytesIO())
    exporter.save_module(missing)
    with pytest.raises(torchpkg.PackagingError) as info:
        exporter.close()

    assert _groups(str(info.value)) == {PackagingErrorReason.MODULE_NOT_FOUND.value: {missing}}
