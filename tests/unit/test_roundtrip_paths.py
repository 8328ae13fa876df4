"""Which code the clone really ran: hermeticity leaks and divergent paths.

The clone's run is traced: code from the files the package was made from (or
from the repository) running during it is a ``hermeticity-leak``; lines the
original ran on the same inputs and the clone did not (or the reverse) are a
``divergent-path``, reported even when the outputs match.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from _misbehaving import FALLBACK_LINE, ISINSTANCE_FALLBACK
from torchpkg.roundtrip import (
    Call,
    Diagnostic,
    DiagnosticKind,
    Observation,
    RngState,
    RoundtripResult,
    TorchContext,
    Verdict,
    roundtrip,
)
from torchpkg.roundtrip._trace import trace

torch = pytest.importorskip("torch")


def make_package(source_tree: Any, files: dict[str, str]) -> ModuleType:
    package = source_tree({"__init__.py": "", **files})
    return importlib.import_module(f"{package}.model")


def of_kind(result: RoundtripResult, kind: DiagnosticKind) -> list[Diagnostic]:
    return [diagnostic for diagnostic in result.diagnostics if diagnostic.kind is kind]


def check(module: ModuleType, tmp_path: Path, **options: Any) -> RoundtripResult:
    return roundtrip(
        module.Model(), torch.ones(2), roots=[tmp_path / "src"], isolation="in-process", **options
    )


def test_a_forward_importing_a_repository_module_at_run_time_is_a_leak(
    source_tree: Any, tmp_path: Path
) -> None:
    module = make_package(
        source_tree,
        {
            "helpers.py": "def scale(x):\n    return x * 2\n",
            "model.py": """
            import importlib

            from torch import nn


            class Model(nn.Module):
                def forward(self, x):
                    name = __package__ + "." + "".join(["help", "ers"])
                    return importlib.import_module(name).scale(x)
            """,
        },
    )
    result = check(module, tmp_path)
    assert result.verdict is Verdict.MISMATCH
    [leak] = of_kind(result, DiagnosticKind.HERMETICITY_LEAK)
    assert "helpers.py ran from its file on disk" in leak.message
    assert leak.location == f"{module.__name__.replace('.', '/')}.py:10"


def test_an_original_function_kept_in_an_extern_cache_is_a_leak(
    source_tree: Any, tmp_path: Path
) -> None:
    module = make_package(
        source_tree,
        {
            "registry.py": "HANDLERS = {}\n",
            "model.py": """
            from torch import nn

            from . import registry


            def scale(x):
                return x * 2


            registry.HANDLERS.setdefault("scale", scale)  # the first import's wins


            class Model(nn.Module):
                def forward(self, x):
                    return registry.HANDLERS["scale"](x)
            """,
        },
    )
    top = module.__name__.rpartition(".")[0]
    result = check(module, tmp_path, extern=[f"{top}.registry"])
    assert result.verdict is Verdict.MISMATCH
    [leak] = of_kind(result, DiagnosticKind.HERMETICITY_LEAK)
    assert f"{top}/model.py ran from its file on disk" in leak.message


def check_fallback(source_tree: Any, tmp_path: Path, **options: Any) -> RoundtripResult:
    module = make_package(source_tree, ISINSTANCE_FALLBACK)
    top = module.__name__.rpartition(".")[0]
    return check(module, tmp_path, extern=[f"{top}.registry"], **options)


def test_an_isinstance_fallback_with_equal_outputs_is_a_divergent_path(
    source_tree: Any, tmp_path: Path
) -> None:
    result = check_fallback(source_tree, tmp_path)
    assert result.verdict is Verdict.PASSED, result.report()
    [divergent] = of_kind(result, DiagnosticKind.DIVERGENT_PATH)
    assert divergent.location == f"{result.model.partition('.')[0]}/model.py:{FALLBACK_LINE}"
    assert "the original ran" in divergent.message


def test_a_divergent_path_fails_the_model_with_strict_paths(
    source_tree: Any, tmp_path: Path
) -> None:
    result = check_fallback(source_tree, tmp_path, strict_paths=True)
    assert result.verdict is Verdict.MISMATCH
    assert of_kind(result, DiagnosticKind.DIVERGENT_PATH)


def test_a_hermetic_model_has_neither_leak_nor_divergent_path(
    source_tree: Any, tmp_path: Path
) -> None:
    module = make_package(
        source_tree,
        {
            "model.py": """
            from torch import nn


            class Model(nn.Module):
                def forward(self, x):
                    if x.sum() > 0:
                        return x * 2
                    return x
            """
        },
    )
    result = check(module, tmp_path, strict_paths=True)
    assert result.verdict is Verdict.PASSED
    assert result.diagnostics == ()


def test_tracing_off_reports_no_paths(source_tree: Any, tmp_path: Path) -> None:
    result = check_fallback(source_tree, tmp_path, trace=False)
    assert result.verdict is Verdict.PASSED
    assert not of_kind(result, DiagnosticKind.DIVERGENT_PATH)


def test_a_failing_module_whose_code_never_ran_is_suggested_for_mock(
    source_tree: Any, tmp_path: Path
) -> None:
    module = make_package(
        source_tree,
        {
            "unused.py": "def plot(x):\n    return x\n",
            "used.py": "def scale(x):\n    return x * 2\n",
            "model.py": """
            from torch import nn

            from . import unused, used


            class Model(nn.Module):
                def forward(self, x):
                    return used.scale(x)
            """,
        },
    )
    top = module.__name__.rpartition(".")[0]
    model = module.Model()
    with trace(lambda file, packaged: None) as traced:
        outputs = model(torch.ones(2))
    call = Call(
        model,
        (torch.ones(2),),
        {},
        RngState.capture(),
        TorchContext.capture(),
        Observation.capture(model, outputs, traced),
    )
    result = roundtrip(
        call,
        configure_exporter=lambda exporter: exporter.deny([f"{top}.unused", f"{top}.used"]),
        isolation="in-process",
    )
    assert result.verdict is Verdict.PACKAGING_FAILED
    [error] = of_kind(result, DiagnosticKind.PACKAGING_ERROR)
    assert f"none of the code of '{top}.unused' ran during the test's call" in error.next_step
    assert f"mock=['{top}.unused']" in error.next_step
