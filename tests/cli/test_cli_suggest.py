"""``suggest``: the policy a roundtrip would use, printed as Python and as ini lines."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from torchpkg.cli import main

SourceTree = Callable[..., str]


@pytest.fixture
def uses_numpy(source_tree: SourceTree) -> str:
    pytest.importorskip("numpy")
    return source_tree(
        {"__init__.py": "", "model.py": "import numpy\nfrom . import util\n", "util.py": ""}
    )


def test_suggest_interns_the_repository_and_externs_installed_libraries(
    uses_numpy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["suggest", f"{uses_numpy}.model"]) == 0
    out = capsys.readouterr().out
    assert f'exporter.intern(["{uses_numpy}.**"])' in out
    assert 'exporter.extern(["numpy.**"])' in out
    assert (
        f"[pytest]\ntorchpkg_intern =\n    {uses_numpy}.**\ntorchpkg_extern =\n    numpy.**\n"
        in out
    )


def test_suggest_for_a_module_reads_its_source_without_importing_it(
    source_tree: SourceTree, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel = tmp_path / "imported"
    top = source_tree({"__init__.py": "", "model.py": f"open({str(sentinel)!r}, 'w').close()\n"})
    assert main(["suggest", f"{top}.model"]) == 0
    assert f'exporter.intern(["{top}.**"])' in capsys.readouterr().out
    assert not sentinel.exists()
    assert f"{top}.model" not in sys.modules


def test_suggest_for_an_object_adds_the_modules_its_pickle_needs(
    source_tree: SourceTree, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("numpy")
    # No import statement names numpy: only pickling the object finds it.
    top = source_tree(
        {
            "__init__.py": "",
            "model.py": (
                "import importlib\n"
                "class Holder:\n"
                "    def __init__(self, value):\n"
                "        self.value = value\n"
                "MODEL = Holder(importlib.import_module('num' + 'py').arange(3))\n"
            ),
        }
    )
    assert main(["suggest", f"{top}.model", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["extern"] == []
    assert main(["suggest", f"{top}.model:MODEL", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["extern"] == ["numpy.**"]


def test_suggest_exits_1_and_names_what_would_still_fail_the_export(
    source_tree: SourceTree, capsys: pytest.CaptureFixture[str]
) -> None:
    top = source_tree(
        {"__init__.py": "", "model.py": "from . import broken\n", "broken.py": "def ("}
    )
    assert main(["suggest", f"{top}.model"]) == 1
    err = capsys.readouterr().err
    assert f"the export would still fail: {top}.broken: Dependency resolution failed." in err


def test_suggest_of_an_attribute_the_module_lacks_is_an_input_error(
    source_tree: SourceTree, capsys: pytest.CaptureFixture[str]
) -> None:
    top = source_tree({"__init__.py": "", "model.py": ""})
    assert main(["suggest", f"{top}.model:Missing"]) == 2
    assert f"{top}.model has no attribute 'Missing'" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["not a module", "pkg:attr:more", "pkg:"])
def test_suggest_of_a_malformed_target_is_an_input_error(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["suggest", target]) == 2
    assert "is not a module or module:attr name" in capsys.readouterr().err
