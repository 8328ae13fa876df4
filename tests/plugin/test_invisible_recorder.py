"""The recorder is invisible: tracers, compilers, hooks and torch function modes see
what they would see without the plugin, in both modes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_torchpkg.plugin import ROUNDTRIP_OPTION

pytest.importorskip("torch")
# Imported before any pytester run (see test_real_suite_cases.py): not twice.

RunPytest = Callable[..., pytest.RunResult]

MODEL = """
    import torch
    from torch import nn


    class Affine(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 3)

        def forward(self, x):
            return self.linear(x) * 2 + 1
"""


@pytest.fixture(params=["fail", "report"])
def gate(request: pytest.FixtureRequest, pytester: pytest.Pytester) -> str:
    pytester.makepyfile(affine=MODEL)
    return f"{ROUNDTRIP_OPTION}={request.param}"


@pytest.fixture
def run_pytest(run_pytest_subprocess: RunPytest) -> RunPytest:
    return run_pytest_subprocess


def test_torch_compile_sees_one_graph_and_no_break(
    run_pytest: RunPytest, pytester: pytest.Pytester, gate: str
) -> None:
    pytester.makepyfile(
        """
        import torch
        from torch._dynamo.testing import CompileCounter
        from affine import Affine


        def test_compiled():
            torch._dynamo.reset()
            counter = CompileCounter()
            model = Affine()
            compiled = torch.compile(model, backend=counter, fullgraph=True)
            assert torch.allclose(compiled(torch.ones(2, 3)), model(torch.ones(2, 3)))
            assert counter.frame_count == 1
            assert counter.op_count == 3
        """
    )
    run_pytest(gate).assert_outcomes(passed=1)


def test_torch_export_sees_the_model_alone(
    run_pytest: RunPytest, pytester: pytest.Pytester, gate: str
) -> None:
    pytester.makepyfile(
        """
        import torch
        from affine import Affine


        def test_exported():
            program = torch.export.export(Affine(), (torch.ones(2, 3),))
            calls = [n for n in program.graph.nodes if n.op == "call_function"]
            assert len(calls) == 3
        """
    )
    run_pytest(gate).assert_outcomes(passed=1)


def test_a_torch_function_mode_sees_what_it_sees_without_the_plugin(
    run_pytest: RunPytest, pytester: pytest.Pytester, gate: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        """
        import json
        import os

        import torch
        from torch.overrides import TorchFunctionMode
        from affine import Affine


        class Seen(TorchFunctionMode):
            def __init__(self):
                super().__init__()
                self.names = []

            def __torch_function__(self, func, types, args=(), kwargs=None):
                self.names.append(getattr(func, "__name__", str(func)))
                return func(*args, **(kwargs or {}))


        def test_mode():
            model, x = Affine(), torch.ones(2, 3)
            with Seen() as seen:
                model(x)
            with open(os.environ["SEEN"], "w") as out:
                json.dump(seen.names, out)
        """
    )
    monkeypatch.setenv("SEEN", str(pytester.path / "plain.json"))
    run_pytest("-p", "no:torchpkg").assert_outcomes(passed=1)
    monkeypatch.setenv("SEEN", str(pytester.path / "gated.json"))
    run_pytest(gate).assert_outcomes(passed=1)
    plain = pytester.path.joinpath("plain.json").read_text()
    assert "linear" in plain
    assert pytester.path.joinpath("gated.json").read_text() == plain


def test_forward_hooks_get_the_calls_own_inputs_and_outputs(
    run_pytest: RunPytest, pytester: pytest.Pytester, gate: str
) -> None:
    pytester.makepyfile(
        """
        import torch
        from affine import Affine

        SEEN = []


        def before(module, args):
            SEEN.append(args[0])


        def after(module, args, output):
            SEEN.append(output)


        def test_hooks():
            model = Affine()
            model.register_forward_pre_hook(before)
            model.register_forward_hook(after)
            x = torch.ones(2, 3)
            y = model(x)
            assert SEEN[0] is x and SEEN[1] is y
        """
    )
    run_pytest(gate).assert_outcomes(passed=1)
