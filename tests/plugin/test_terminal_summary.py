"""The terminal summary block and the session's exit status."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_torchpkg.plugin import ROUNDTRIP_OPTION
from pytest_torchpkg.report import REPORT_MODE_NOTE

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("zoo")

RunPytest = Callable[..., pytest.RunResult]

MIXED = """
    import torch
    from zoo import Counter, Doubler, WithLock


    def test_doubles():
        Doubler()(torch.ones(2))


    def test_counts():
        Counter()(torch.ones(2))


    def test_locks():
        WithLock()(torch.ones(2))
"""


def test_the_summary_counts_models_checked_passed_and_failed(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(MIXED)
    result = run_pytest(ROUNDTRIP_OPTION)
    result.stdout.fnmatch_lines(
        ["=* torchpkg roundtrip =*", "3 models checked: 1 passed, 2 failed"]
    )


def test_report_mode_claims_only_that_its_results_failed_no_test(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(MIXED)
    result = run_pytest(f"{ROUNDTRIP_OPTION}=report")
    result.stdout.fnmatch_lines([f"3 models checked: 1 passed, 2 failed{REPORT_MODE_NOTE}"])
    assert "no test was failed for these results" in REPORT_MODE_NOTE
    result.stdout.no_fnmatch_line("*outcomes unchanged*")


def test_a_passing_model_prints_no_report_section_with_ra(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(MIXED)
    result = run_pytest(f"{ROUNDTRIP_OPTION}=report", "-rA")
    result.stdout.fnmatch_lines(["*- torchpkg -*", "*roundtrip of zoo.Counter: mismatch*"])
    result.stdout.no_fnmatch_line("*roundtrip of zoo.Doubler*")


def test_the_summary_lists_each_failing_model_with_its_diagnostics(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(MIXED)
    result = run_pytest(ROUNDTRIP_OPTION)
    name = "test_the_summary_lists_each_failing_model_with_its_diagnostics.py"
    result.stdout.fnmatch_lines(
        [
            f"FAILED zoo.Counter in {name}::test_counts: mismatch",
            "  output-mismatch: output: 2 of 2 elements differ*",
            "  global-state-mutated: zoo.built is 1 in the original's module but 0*",
            f"FAILED zoo.WithLock in {name}::test_locks: packaging-failed",
            "  packaging-error: exporting the model failed: * An object could not be pickled.",
            "  unpicklable-member: model.lock cannot be pickled*",
        ]
    )
    result.stdout.no_fnmatch_line("FAILED zoo.Doubler*")


def test_the_summary_says_when_no_model_was_called(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import torch


        def test_tensors_only():
            assert torch.ones(2).sum() == 2
        """
    )
    result = run_pytest(ROUNDTRIP_OPTION)
    result.stdout.fnmatch_lines(
        ["0 models checked: no model of the repository was called at the top level of a test"]
    )


def test_the_summary_counts_the_torch_modules_it_did_not_check(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import torch


        def test_layers():
            torch.nn.Linear(2, 2)(torch.ones(2))
            torch.nn.Linear(2, 2)(torch.ones(2))
            torch.nn.ReLU()(torch.ones(2))
        """
    )
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "0 models checked: *",
            "3 calls of models made only of torch's own modules not checked (their package "
            "would hold nothing of the repository): torch.nn.modules.linear.Linear x2, "
            "torch.nn.modules.activation.ReLU",
        ]
    )


def test_the_exit_status_is_tests_failed_when_a_model_fails_in_fail_mode(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(MIXED)
    assert run_pytest(ROUNDTRIP_OPTION).ret == pytest.ExitCode.TESTS_FAILED


def test_the_exit_status_is_ok_in_report_mode_when_models_fail(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(MIXED)
    assert run_pytest(f"{ROUNDTRIP_OPTION}=report").ret == pytest.ExitCode.OK


def test_there_is_no_summary_when_roundtrips_are_off(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(MIXED)
    result = run_pytest()
    result.assert_outcomes(passed=3)
    result.stdout.no_fnmatch_line("*torchpkg roundtrip*")


def test_the_exit_status_stays_failed_when_another_plugin_passes_the_test_again(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """Like a rerun plugin: the gate does not depend on the test's final outcome."""
    pytester.makeconftest(
        """
        import pytest


        @pytest.hookimpl(wrapper=True)
        def pytest_runtest_makereport(item, call):
            report = yield
            report.outcome = "passed"
            return report
        """
    )
    pytester.makepyfile(MIXED)
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
