"""The kinds of false report that real libraries' own suites (zuko, gpytorch) showed,
each reduced to a minimal test, with the true positive next to it where there is one.

The gate judges the model as the test called it, in the context it was called in,
compares outputs by value, and stays out of sight of tracers and compilers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from pytest_torchpkg.plugin import REPORT_OPTION, ROUNDTRIP_OPTION

torch = pytest.importorskip("torch")
# Imported here, not first inside a pytester run, which would drop them from sys.modules
# after it: torch's operator registrations cannot run twice (optimizers import dynamo,
# torch.jit.trace's check imports torch.distributed.tensor).

RunPytest = Callable[..., pytest.RunResult]

SUITE = '''
    """Models shaped like the ones real suites call."""
    import functools

    import torch
    import torch.distributions as D
    from torch import nn

    SCALE = 1.0


    class CallsForward(nn.Module):
        """Overrides __call__ and calls forward itself, as gpytorch's modules do."""

        def __call__(self, *args, **kwargs):
            return self.forward(*args, **kwargs)


    class Kernel(CallsForward):
        def __init__(self):
            super().__init__()
            self.lengthscale = nn.Parameter(torch.ones(3))
            self.softplus = nn.Softplus()

        def forward(self, x):
            return self.softplus(x / self.lengthscale)


    class GlobalKernel(CallsForward):
        def forward(self, x):
            return x * SCALE


    class Flow(nn.Module):
        """Returns a distribution holding transforms, whose __eq__ is identity."""

        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.full((3,), 2.0))

        def forward(self, x):
            base = D.Normal(x, torch.ones_like(x))
            return D.TransformedDistribution(base, [D.AffineTransform(0.0, self.scale)])


    class Codebook(nn.Module):
        """Updates its own buffers in forward: an EMA and an "initialised" flag."""

        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.zeros(3))
            self.register_buffer("initted", torch.tensor(False))

        def forward(self, x):
            if not self.initted:
                self.mean.copy_(x.mean(0))
                self.initted.fill_(True)
            else:
                self.mean.mul_(0.9).add_(0.1 * x.mean(0))
            return x - self.mean


    class GlobalTally(nn.Module):
        """Adds to a buffer by a module global: the clone, importing afresh, adds 1x."""

        def __init__(self):
            super().__init__()
            self.register_buffer("total", torch.zeros(()))

        def forward(self, x):
            self.total.add_(x.sum() * SCALE)
            return x


    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 3)
            self.dropout = nn.Dropout(0.5)
            self.offset = 0.0

        def forward(self, x):
            return self.dropout(self.linear(x)) + self.offset + torch.full((3,), 0.1)


    class GradAware(nn.Module):
        def forward(self, x):
            return x * (2.0 if torch.is_grad_enabled() else 3.0)


    class Gaussian:
        """An input of the repository's own class: the caller brings its code."""

        def __init__(self, loc):
            self.loc = loc

        def log_prob(self, x):
            return -((x - self.loc) ** 2) / 2


    class Quadrature(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("points", torch.linspace(-1, 1, 5))

        def forward(self, dist):
            return dist.log_prob(self.points).sum()


    @functools.cache
    def grid(n):
        return tuple(range(n))


    class CachedGrid(nn.Module):
        def forward(self, x):
            return x * len(grid(4))


    class fast_mode:
        """A library setting, as gpytorch.settings has: a class flag a context sets."""

        on = False

        def __enter__(self):
            type(self).on = True

        def __exit__(self, *exc):
            type(self).on = False


    class Settled(nn.Module):
        def forward(self, x):
            if fast_mode.on:
                return x * 3
            return x + 1


    class Lazy(nn.Module):
        """Returns a distribution whose lazy properties cache into its __dict__ when read."""

        def __init__(self):
            super().__init__()
            self.loc = nn.Parameter(torch.zeros(2))

        def forward(self, x):
            return D.MultivariateNormal(self.loc + x, scale_tril=torch.eye(2) * 2)
'''


@pytest.fixture
def suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(suite=SUITE)


@pytest.fixture
def run_pytest(run_pytest_subprocess: RunPytest) -> RunPytest:
    return run_pytest_subprocess


def gated(run_pytest: RunPytest, pytester: pytest.Pytester, *args: str) -> dict[str, Any]:
    """Run with the gate; the JSON report."""
    run_pytest(ROUNDTRIP_OPTION, f"{REPORT_OPTION}=report.json", *args)
    report: dict[str, Any] = json.loads(pytester.path.joinpath("report.json").read_text())
    return report


def models(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (model["model"], model["verdict"]) for test in report["tests"] for model in test["models"]
    ]


def kinds(report: dict[str, Any]) -> set[str]:
    return {
        diagnostic["kind"]
        for test in report["tests"]
        for model in test["models"]
        for diagnostic in model["diagnostics"]
    }


pytestmark = pytest.mark.usefixtures("suite")


def test_models_that_override_call_are_checked(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """1. gpytorch-style modules never reach nn.Module.__call__; the torch modules they
    call inside are not roots."""
    pytester.makepyfile(
        """
        import torch
        from suite import Kernel


        def test_kernel():
            assert Kernel()(torch.ones(3)).shape == (3,)
        """
    )
    assert models(gated(run_pytest, pytester)) == [("suite.Kernel", "passed")]


def test_a_model_overriding_call_that_reads_a_global_the_test_set_fails(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import torch
        import suite


        def test_scaled_kernel():
            suite.SCALE = 3.0
            try:
                assert suite.GlobalKernel()(torch.ones(2)).sum() == 6
            finally:
                suite.SCALE = 1.0
        """
    )
    assert models(gated(run_pytest, pytester)) == [("suite.GlobalKernel", "mismatch")]


@pytest.mark.parametrize("mode", ["fail", "report"])
def test_torch_jit_trace_with_its_check_passes_under_the_gate(
    run_pytest: RunPytest, pytester: pytest.Pytester, mode: str
) -> None:
    """2. The recorder copies nothing inside a trace, so the trace check sees one graph."""
    pytester.makepyfile(
        """
        import torch
        from suite import Head


        def test_traces():
            head = Head().eval()
            traced = torch.jit.trace(head, torch.ones(2, 3))
            assert torch.equal(traced(torch.ones(2, 3)), head(torch.ones(2, 3)))
        """
    )
    result = run_pytest(f"{ROUNDTRIP_OPTION}={mode}")
    result.assert_outcomes(passed=1)


def test_outputs_without_value_equality_are_compared_by_state(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """3. A distribution holding transforms whose __eq__ is identity."""
    pytester.makepyfile(
        """
        import torch
        from suite import Flow


        def test_flow():
            assert Flow()(torch.zeros(3)).sample().shape == (3,)
        """
    )
    assert models(gated(run_pytest, pytester)) == [("suite.Flow", "passed")]


def test_a_forward_that_updates_its_own_state_is_checked_as_called(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """4. The clone starts from the state before the call and must end where it did."""
    pytester.makepyfile(
        """
        import torch
        from suite import Codebook


        def test_codebook():
            codebook = Codebook()
            codebook(torch.ones(4, 3))
            codebook(torch.zeros(4, 3))
        """
    )
    assert models(gated(run_pytest, pytester)) == [("suite.Codebook", "passed")]


def test_a_state_update_that_reads_a_global_the_test_set_fails(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """4, the true positive: same outputs, but the buffer the forward updates differs."""
    pytester.makepyfile(
        """
        import torch
        import suite


        def test_tally():
            suite.SCALE = 2.0
            try:
                suite.GlobalTally()(torch.ones(3))
            finally:
                suite.SCALE = 1.0
        """
    )
    report = gated(run_pytest, pytester)
    assert models(report) == [("suite.GlobalTally", "mismatch")]
    assert "state-dict-mismatch" in kinds(report)


def test_a_model_the_test_changes_after_the_call_is_checked_as_called(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """5. eval(), an attribute and a training step after the call."""
    pytester.makepyfile(
        """
        import torch
        from suite import Head


        def test_trains():
            head = Head()
            loss = head(torch.ones(2, 3)).sum()
            loss.backward()
            torch.optim.SGD(head.parameters(), lr=0.1).step()
            head.eval()
            head.offset = 5.0
        """
    )
    assert models(gated(run_pytest, pytester)) == [("suite.Head", "passed")]


def test_the_torch_context_of_the_call_is_replayed(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """6. autocast, grad mode and the default dtype the test called the model under."""
    pytester.makepyfile(
        """
        import torch
        from suite import GradAware, Head


        def test_autocast():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert Head().eval()(torch.ones(2, 3)).dtype == torch.bfloat16


        def test_no_grad():
            with torch.no_grad():
                assert GradAware()(torch.ones(1)).item() == 3.0


        def test_default_dtype():
            torch.set_default_dtype(torch.float64)
            try:
                Head().eval()(torch.ones(2, 3))
            finally:
                torch.set_default_dtype(torch.float32)
        """
    )
    verdicts = {verdict for _, verdict in models(gated(run_pytest, pytester))}
    assert verdicts == {"passed"}


def test_outputs_and_inputs_are_snapshots_the_test_cannot_change(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """7. A lazy property read after the call, an input parameter trained after it."""
    pytester.makepyfile(
        """
        import torch
        from suite import Lazy


        def test_lazy():
            model = Lazy()
            shift = torch.nn.Parameter(torch.ones(2))
            dist = model(shift * 1.0)
            assert dist.covariance_matrix.shape == (2, 2)
            dist.log_prob(torch.zeros(2)).backward()
            torch.optim.SGD([shift, *model.parameters()], lr=0.5).step()
        """
    )
    assert models(gated(run_pytest, pytester)) == [("suite.Lazy", "passed")]


def test_code_the_inputs_bring_is_not_a_leak(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """8. On another machine the caller brings its inputs and their code."""
    pytester.makepyfile(
        """
        import torch
        from suite import Gaussian, Quadrature


        def test_quadrature():
            Quadrature()(Gaussian(torch.tensor(0.5)))
        """
    )
    report = gated(run_pytest, pytester)
    assert models(report) == [("suite.Quadrature", "passed")]
    assert kinds(report) == set()


def test_a_warm_cache_is_not_a_divergent_path(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """9. The original skipped lines a cache answered; the clone ran them: no fork."""
    pytester.makepyfile(
        """
        import torch
        from suite import CachedGrid, grid


        def test_cached():
            grid(4)
            CachedGrid()(torch.ones(2))
        """
    )
    report = gated(run_pytest, pytester)
    assert models(report) == [("suite.CachedGrid", "passed")]
    assert kinds(report) == set()


def test_a_scripted_model_is_packaged_and_checked(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """10. torch.package's beta-feature refusal is not a failure to survive."""
    pytester.makepyfile(
        """
        import torch
        from suite import Codebook


        def test_scripted():
            torch.jit.script(Codebook())(torch.ones(2, 3))
        """
    )
    verdicts = [verdict for _, verdict in models(gated(run_pytest, pytester))]
    assert verdicts == ["passed"]


def test_a_default_dtype_a_conftest_set_and_never_restored_is_replayed(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """11. The clone runs under the default dtype the call ran under."""
    pytester.makeconftest("import torch\n\ntorch.set_default_dtype(torch.float64)\n")
    pytester.makepyfile(
        """
        import torch
        from suite import Head


        def test_head():
            assert Head().eval()(torch.ones(2, 3)).dtype == torch.float64
        """
    )
    assert models(gated(run_pytest, pytester)) == [("suite.Head", "passed")]


def test_a_library_setting_the_test_set_around_the_call_is_named_where_the_runs_part(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """11. gpytorch's settings are class flags of an interned module: the clone has its
    own copy, which the test's ``with`` does not reach. A true positive, named."""
    pytester.makepyfile(
        """
        import torch
        import suite


        def test_fast():
            with suite.fast_mode():
                assert suite.Settled()(torch.ones(2)).sum() == 6
        """
    )
    report = gated(run_pytest, pytester)
    assert models(report) == [("suite.Settled", "mismatch")]
    [cause] = [
        diagnostic
        for test in report["tests"]
        for model in test["models"]
        for diagnostic in model["diagnostics"]
        if diagnostic["kind"] == "depends-on-test-state"
    ]
    assert "part at suite.py:" in cause["message"]
