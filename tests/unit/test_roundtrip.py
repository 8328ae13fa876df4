"""Unit tests of torchpkg.roundtrip: export, fresh import, re-run, compare; the result API."""

from __future__ import annotations

import importlib
import json
import pickle
import random
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from torchpkg.mangling import is_mangled
from torchpkg.roundtrip import (
    Diagnostic,
    DiagnosticKind,
    RngState,
    RoundtripFailure,
    RoundtripResult,
    Verdict,
    roundtrip,
)

torch = pytest.importorskip("torch")
nn = torch.nn

LINEAR = """
    import torch
    from torch import nn

    SHIFT = 0.0


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, x, *, scale=1.0):
            return self.lin(x) * scale + SHIFT
"""


OUT_DATACLASS = """
    import dataclasses
    import torch
    from torch import nn


    @dataclasses.dataclass
    class Out:
        y: torch.Tensor


    class Net(nn.Module):
        def forward(self, x):
            return Out(x * 2)
"""


def make_module(source_tree: Any, source: str, name: str = "model") -> ModuleType:
    package = source_tree({"__init__.py": "", f"{name}.py": source})
    return importlib.import_module(f"{package}.{name}")


class InTestFile(nn.Module):
    """A model defined in a test file: the test module is interned like any package."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)

    def forward(self, x: Any) -> Any:
        return self.lin(x)


def test_a_healthy_model_passes_with_no_diagnostics(source_tree: Any) -> None:
    module = make_module(source_tree, LINEAR)
    result = roundtrip(module.Net(), torch.randn(2, 4))
    assert result.verdict is Verdict.PASSED
    assert result.passed
    assert result.diagnostics == ()


def test_the_model_is_named_by_its_qualified_class_name(source_tree: Any) -> None:
    module = make_module(source_tree, LINEAR)
    result = roundtrip(module.Net(), torch.randn(2, 4))
    assert result.model == f"{module.__name__}.Net"


def test_the_models_own_package_is_interned_and_torch_is_extern(source_tree: Any) -> None:
    module = make_module(source_tree, LINEAR)
    result = roundtrip(module.Net(), torch.randn(2, 4))
    assert module.__name__ in result.interned
    assert "torch" in result.externed
    assert result.mocked == ()
    assert result.archive_bytes > 0


def test_a_model_defined_in_a_test_module_is_interned_from_it() -> None:
    result = roundtrip(InTestFile(), torch.randn(3, 2))
    assert result.passed, result.report()
    assert __name__ in result.interned


def test_keyword_inputs_reach_both_calls(source_tree: Any) -> None:
    module = make_module(source_tree, LINEAR)
    seen: list[Any] = []

    def keep(original: Any, clone: Any) -> None:
        seen.extend([original, clone])

    model = module.Net()
    x = torch.randn(2, 4)
    roundtrip(model, x, kwargs={"scale": 3.0}, compare=keep)
    expected = model(x, scale=3.0).detach()
    assert torch.equal(seen[0].detach(), expected)
    assert torch.equal(seen[1].detach(), expected)


def test_the_clones_outputs_come_from_the_packages_own_classes(source_tree: Any) -> None:
    module = make_module(source_tree, OUT_DATACLASS)
    types: list[type] = []
    roundtrip(
        module.Net(),
        torch.ones(2),
        compare=lambda a, b: types.extend([type(a), type(b)]),
        isolation="in-process",
    )
    assert types[0] is module.Out
    assert is_mangled(types[1].__module__)
    assert types[1].__qualname__ == "Out"


def test_outputs_of_a_clone_in_the_worker_come_back_as_the_callers_classes(
    source_tree: Any,
) -> None:
    module = make_module(source_tree, OUT_DATACLASS)
    types: list[type] = []
    roundtrip(module.Net(), torch.ones(2), compare=lambda a, b: types.extend([type(a), type(b)]))
    assert types == [module.Out, module.Out]


def test_the_clones_modules_leave_sys_modules(source_tree: Any) -> None:
    module = make_module(source_tree, LINEAR)
    before = {name for name in sys.modules if is_mangled(name)}
    result = roundtrip(module.Net(), torch.randn(2, 4))
    assert result.passed
    assert {name for name in sys.modules if is_mangled(name)} == before


def test_an_archive_on_disk_is_removed_afterwards(
    source_tree: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = make_module(source_tree, LINEAR)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    result = roundtrip(module.Net(), torch.randn(2, 4), in_memory=False)
    assert result.passed
    assert result.archive_bytes > 0
    assert list(temp.iterdir()) == []


def test_each_call_gets_its_own_copy_of_the_inputs(source_tree: Any) -> None:
    module = make_module(
        source_tree,
        """
        from torch import nn


        class AddsInPlace(nn.Module):
            def forward(self, x):
                x.add_(1)
                return x
        """,
    )
    x = torch.zeros(3)
    result = roundtrip(module.AddsInPlace(), x)
    assert result.passed, result.report()
    assert torch.equal(x, torch.zeros(3))


def test_dropout_in_train_mode_matches_because_the_rng_is_replayed(source_tree: Any) -> None:
    module = make_module(
        source_tree,
        """
        import torch
        from torch import nn


        class Noisy(nn.Module):
            def __init__(self):
                super().__init__()
                self.drop = nn.Dropout(0.5)

            def forward(self, x):
                return self.drop(x) + torch.rand_like(x)
        """,
    )
    model = module.Noisy().train()
    result = roundtrip(model, torch.ones(64))
    assert result.verdict is Verdict.PASSED, result.report()


def test_the_rng_state_given_is_the_one_both_calls_start_from(source_tree: Any) -> None:
    module = make_module(
        source_tree,
        """
        import torch
        from torch import nn


        class Noise(nn.Module):
            def forward(self, x):
                return x + torch.rand_like(x)
        """,
    )
    torch.manual_seed(7)
    state = RngState.capture()
    expected = torch.ones(4) + torch.rand(4)
    outputs: list[Any] = []
    roundtrip(
        module.Noise(), torch.ones(4), rng_state=state, compare=lambda a, b: outputs.extend([a, b])
    )
    assert torch.equal(outputs[0], expected)
    assert torch.equal(outputs[1], expected)


def test_the_callers_rng_state_is_restored_on_return(source_tree: Any) -> None:
    module = make_module(source_tree, "from torch import nn\nclass Noisy(nn.Dropout):\n    pass\n")
    torch.manual_seed(3)
    random.seed(3)
    expected = (torch.rand(2), random.random())
    torch.manual_seed(3)
    random.seed(3)
    roundtrip(module.Noisy(0.5).train(), torch.ones(8))
    assert torch.equal(torch.rand(2), expected[0])
    assert random.random() == expected[1]


def test_rng_state_restores_torch_random_and_numpy() -> None:
    numpy = pytest.importorskip("numpy")
    state = RngState.capture()
    first = (torch.rand(3), random.random(), numpy.random.rand())
    state.restore()
    second = (torch.rand(3), random.random(), numpy.random.rand())
    assert torch.equal(first[0], second[0])
    assert first[1:] == second[1:]


def test_configure_exporter_receives_the_exporter_before_the_model_is_saved(
    source_tree: Any,
) -> None:
    module = make_module(source_tree, LINEAR)
    calls: list[Any] = []

    def configure(exporter: Any) -> None:
        calls.append(exporter)
        exporter.mock(f"{module.__name__.partition('.')[0]}.unused")

    result = roundtrip(module.Net(), torch.randn(2, 4), configure_exporter=configure)
    assert result.passed
    assert len(calls) == 1
    assert type(calls[0]).__name__ == "PackageExporter"


def test_a_custom_compare_decides_the_output_verdict(source_tree: Any) -> None:
    module = make_module(source_tree, LINEAR)
    verdict = Diagnostic(DiagnosticKind.OUTPUT_MISMATCH, "always different", "ignore it")
    result = roundtrip(module.Net(), torch.randn(2, 4), compare=lambda a, b: verdict)
    assert result.verdict is Verdict.MISMATCH
    assert result.diagnostics[0] is verdict


def test_a_custom_compare_returning_none_accepts_different_outputs(source_tree: Any) -> None:
    module = make_module(source_tree, LINEAR)
    module.SHIFT = 1.0  # the clone re-imports the module and adds 0.0
    result = roundtrip(module.Net(), torch.randn(2, 4), compare=lambda a, b: None)
    assert result.passed


def test_an_original_that_raises_is_a_run_failure_of_the_original(source_tree: Any) -> None:
    module = make_module(source_tree, LINEAR)
    result = roundtrip(module.Net(), torch.randn(2, 5))
    assert result.verdict is Verdict.RUN_FAILED
    assert result.diagnostics[0].kind is DiagnosticKind.RUN_ERROR
    assert "the original model raised RuntimeError" in result.diagnostics[0].message


def test_timings_cover_export_load_and_run(source_tree: Any) -> None:
    module = make_module(source_tree, LINEAR)
    result = roundtrip(module.Net(), torch.randn(2, 4))
    assert {"export", "load", "run"} <= set(result.timings)
    assert all(result.timings[part] > 0 for part in ("export", "load", "run"))
    assert all(seconds >= 0 for seconds in result.timings.values())


# --- the result -----------------------------------------------------------------------


def mismatch(source_tree: Any) -> RoundtripResult:
    module = make_module(source_tree, LINEAR)
    module.SHIFT = 1.0
    return roundtrip(module.Net(), torch.randn(2, 4))


def test_to_dict_is_json_serialisable_with_enums_as_values(source_tree: Any) -> None:
    result = mismatch(source_tree)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["verdict"] == "mismatch"
    assert data["passed"] is False
    assert data["diagnostics"][0]["kind"] == "output-mismatch"
    assert data["diagnostics"][0]["location"] == "output"
    assert data["interned"] == list(result.interned)


def test_from_dict_rebuilds_the_result(source_tree: Any) -> None:
    result = mismatch(source_tree)
    assert RoundtripResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_report_names_the_verdict_each_diagnostic_and_its_next_step(source_tree: Any) -> None:
    result = mismatch(source_tree)
    report = result.report()
    assert report.startswith(f"torchpkg roundtrip of {result.model}: mismatch")
    for diagnostic in result.diagnostics:
        assert diagnostic.kind.value in report
        assert diagnostic.next_step in report
    assert report.count("next step:") == len(result.diagnostics)


def test_raise_for_failure_raises_an_assertion_error_carrying_the_result(
    source_tree: Any,
) -> None:
    result = mismatch(source_tree)
    with pytest.raises(AssertionError) as caught:
        result.raise_for_failure()
    assert isinstance(caught.value, RoundtripFailure)
    assert caught.value.result is result
    assert str(caught.value) == result.report()


def test_raise_for_failure_is_silent_when_the_roundtrip_passed(source_tree: Any) -> None:
    module = make_module(source_tree, LINEAR)
    roundtrip(module.Net(), torch.randn(2, 4)).raise_for_failure()


def test_a_roundtrip_failure_survives_pickling(source_tree: Any) -> None:
    """pytest-xdist sends exceptions between processes."""
    failure = RoundtripFailure(mismatch(source_tree))
    copy = pickle.loads(pickle.dumps(failure))
    assert copy.result == failure.result
    assert str(copy) == str(failure)
