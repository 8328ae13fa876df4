"""Clones run in a worker process: the caller's session never sees the package's imports."""

from __future__ import annotations

import importlib
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from _misbehaving import MISBEHAVES_IN_PACKAGE
from torchpkg import PackageExporter, PackageImporter
from torchpkg.roundtrip import DiagnosticKind, Verdict, roundtrip
from torchpkg.roundtrip._worker import shutdown

torch = pytest.importorskip("torch")

REGISTERS = """
    from torch import nn

    import registry_lib

    registry_lib.REGISTRY.append("registered")


    class Plain(nn.Module):
        def forward(self, x):
            return x + 1
"""


def make_module(source_tree: Any, source: str) -> ModuleType:
    package = source_tree({"__init__.py": "", "model.py": source})
    return importlib.import_module(f"{package}.model")


@pytest.fixture
def installed_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """An installed library (in a site-packages folder) with a registry that imports fill."""
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / "registry_lib.py").write_text("REGISTRY = []\n")
    monkeypatch.syspath_prepend(str(site))
    import registry_lib

    yield registry_lib
    del sys.modules["registry_lib"]


def test_a_clone_that_hangs_is_stopped_at_the_timeout(source_tree: Any) -> None:
    module = make_module(source_tree, MISBEHAVES_IN_PACKAGE)
    result = roundtrip(module.Hangs(), torch.ones(2), timeout=2)
    assert result.verdict is Verdict.RUN_FAILED
    [diagnostic] = result.diagnostics
    assert diagnostic.kind is DiagnosticKind.CLONE_TIMEOUT
    assert "did not finish loading and running in 2 s" in diagnostic.message


def test_a_clone_that_crashes_the_interpreter_is_reported_with_its_signal(
    source_tree: Any,
) -> None:
    module = make_module(source_tree, MISBEHAVES_IN_PACKAGE)
    result = roundtrip(module.Crashes(), torch.ones(2))
    assert result.verdict is Verdict.RUN_FAILED
    [diagnostic] = result.diagnostics
    assert diagnostic.kind is DiagnosticKind.CLONE_CRASHED
    assert "killed by signal 11 (SIGSEGV)" in diagnostic.message
    assert "about to crash" in diagnostic.message


def test_the_worker_goes_on_after_a_crash(source_tree: Any) -> None:
    module = make_module(source_tree, MISBEHAVES_IN_PACKAGE)
    roundtrip(module.Crashes(), torch.ones(2))
    assert roundtrip(torch.nn.Linear(2, 2), torch.ones(2)).passed


def test_a_registry_the_import_fills_is_untouched_in_the_caller(
    source_tree: Any, installed_registry: ModuleType
) -> None:
    module = make_module(source_tree, REGISTERS)
    assert installed_registry.REGISTRY == ["registered"]
    result = roundtrip(module.Plain(), torch.ones(2))
    assert result.passed, result.report()
    assert installed_registry.REGISTRY == ["registered"]
    [note] = result.diagnostics
    assert note.kind is DiagnosticKind.IMPORT_SIDE_EFFECT
    assert note.location == "registry_lib.REGISTRY"


def test_in_process_clones_fill_the_callers_registry(
    source_tree: Any, installed_registry: ModuleType
) -> None:
    module = make_module(source_tree, REGISTERS)
    roundtrip(module.Plain(), torch.ones(2), isolation="in-process")
    assert installed_registry.REGISTRY == ["registered", "registered"]


def test_a_spawned_worker_gives_the_same_answer(
    source_tree: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where fork is missing, each clone gets a fresh interpreter instead."""
    module = make_module(source_tree, "from torch import nn\n\nclass Plain(nn.Linear):\n    pass\n")
    monkeypatch.setenv("TORCHPKG_WORKER_START", "spawn")
    shutdown()
    try:
        result = roundtrip(module.Plain(2, 2), torch.ones(2))
    finally:
        shutdown()
    assert result.passed, result.report()


class Takes(torch.nn.Module):
    def forward(self, x: Any, callback: Any) -> Any:
        return callback(x)


def test_unpicklable_inputs_run_the_clone_in_process_with_a_note() -> None:
    result = roundtrip(Takes(), torch.ones(2), lambda x: x * 2)
    assert result.passed, result.report()
    assert result.diagnostics[0].kind is DiagnosticKind.RAN_IN_PROCESS


def test_an_extern_submodule_of_a_module_that_is_not_a_package_imports() -> None:
    """``import os.path as osp`` with os extern: what torch.package does (multipy#82)."""
    buffer = io.BytesIO()
    with PackageExporter(buffer) as exporter:
        exporter.save_source_string("uses_osp", "import os.path as osp\nJOIN = osp.join\n")
    with PackageImporter(io.BytesIO(buffer.getvalue())) as importer:
        assert importer.import_module("uses_osp").JOIN is importlib.import_module("os.path").join


BOX = """
    import os

    with open(os.environ["IMPORTS_LOG"], "a") as log:
        log.write("imported\\n")


    class Box:
        def __init__(self, tensor):
            self.tensor = tensor

        def value(self):
            return self.tensor * FACTOR


    FACTOR = 2
"""

UNBOX = """
    from torch import nn


    class Unbox(nn.Module):
        def forward(self, box):
            return box.value() + 1
"""


@pytest.fixture
def boxes(source_tree: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A repository whose model takes an input of the repository's own class; the
    worker's processes log each import of that class's module."""
    monkeypatch.setenv("IMPORTS_LOG", str(tmp_path / "imports.log"))
    shutdown()  # a worker that inherits the variable
    top = source_tree({"__init__.py": "", "box.py": BOX, "unbox.py": UNBOX})
    yield top
    shutdown()


def test_the_worker_keeps_the_repository_modules_a_clone_needed_for_the_next(
    boxes: str, tmp_path: Path
) -> None:
    box = importlib.import_module(f"{boxes}.box")
    unbox = importlib.import_module(f"{boxes}.unbox")
    log = tmp_path / "imports.log"
    for _ in range(3):
        result = roundtrip(unbox.Unbox(), box.Box(torch.ones(2)), roots=[tmp_path / "src"])
        assert result.passed, result.report()
    # here, in the first clone, and once in the worker's server for the two after it
    assert log.read_text().count("imported") == 3


def test_a_repository_module_changed_on_disk_is_imported_afresh(boxes: str, tmp_path: Path) -> None:
    box = importlib.import_module(f"{boxes}.box")
    unbox = importlib.import_module(f"{boxes}.unbox")
    roots = [tmp_path / "src"]
    assert roundtrip(unbox.Unbox(), box.Box(torch.ones(2)), roots=roots).passed
    source = Path(box.__file__)
    source.write_text(source.read_text().replace("FACTOR = 2", "FACTOR = 20"))
    result = roundtrip(unbox.Unbox(), box.Box(torch.ones(2)), roots=roots)
    assert result.verdict is Verdict.MISMATCH  # the clone opened its input with the new file


def test_of_torch_only_the_modules_that_keep_registries_are_measured() -> None:
    """torchpkg registers packaged modules in torch's own table: never a side effect."""
    from torchpkg.roundtrip import _clone

    tops = {path.split(".")[0] for path in _clone._registry_sizes(None)}
    torch_paths = [path for path in _clone._registry_sizes(None) if path.startswith("torch.")]
    assert "torchpkg" not in tops
    assert all(path.startswith(_clone._TORCH_REGISTRIES) for path in torch_paths)
