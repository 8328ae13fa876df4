"""The clone is compared with what the test observed, not with a re-run after the test."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_torchpkg.plugin import ROUNDTRIP_OPTION

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("zoo")

RunPytest = Callable[..., pytest.RunResult]


def test_a_global_the_test_sets_around_the_call_is_named(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import torch
        import zoo


        def test_scaled():
            zoo.SCALE = 3.0
            try:
                assert zoo.ScaledByGlobal()(torch.ones(2)).sum() == 6
            finally:
                zoo.SCALE = 1.0
        """
    )
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "FAILED zoo.ScaledByGlobal in *: mismatch",
            "  depends-on-test-state: *zoo.SCALE was 3.0 during the call and is 1.0 now*",
        ]
    )


def test_the_same_global_left_alone_passes(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import torch
        import zoo


        def test_scaled():
            assert zoo.ScaledByGlobal()(torch.ones(2)).sum() == 2
        """
    )
    run_pytest(ROUNDTRIP_OPTION).assert_outcomes(passed=1)


def test_weights_a_test_trains_after_the_call_are_judged_as_they_are_now(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import torch


        def test_one_training_step():
            model = torch.nn.Linear(2, 2)
            model(torch.ones(1, 2)).sum().backward()
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter -= 0.1 * parameter.grad
        """
    )
    run_pytest(ROUNDTRIP_OPTION).assert_outcomes(passed=1)
