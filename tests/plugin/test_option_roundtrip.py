"""`--torchpkg-roundtrip[=fail|report|off]`: what happens to a test whose models are checked."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_torchpkg.plugin import ROUNDTRIP_OPTION

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("zoo")

RunPytest = Callable[..., pytest.RunResult]

COUNTER_TEST = """
    import torch
    from zoo import Counter


    def test_counts():
        assert Counter()(torch.ones(2)).sum() > 0
"""
DOUBLER_TEST = """
    import torch
    from zoo import Doubler


    def test_doubles():
        assert Doubler()(torch.ones(2)).tolist() == [2.0, 2.0]
"""


def test_bare_flag_fails_a_passing_test_whose_model_does_not_survive(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(COUNTER_TEST)
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*a model did not survive packaging: zoo.Counter (mismatch)*"])


def test_fail_mode_passes_a_test_whose_model_survives(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(DOUBLER_TEST)
    result = run_pytest(f"{ROUNDTRIP_OPTION}=fail")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["1 models checked: 1 passed, 0 failed"])


def test_the_failure_has_a_torchpkg_section_with_the_model_report(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(COUNTER_TEST)
    result = run_pytest(ROUNDTRIP_OPTION)
    result.stdout.fnmatch_lines(
        [
            "*- torchpkg -*",
            "torchpkg roundtrip of zoo.Counter: mismatch",
            "*global-state-mutated at zoo.built",
            "*next step: keep the state on the model*",
        ]
    )


def test_report_mode_keeps_the_outcome_of_a_test_whose_model_fails(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(COUNTER_TEST)
    result = run_pytest(f"{ROUNDTRIP_OPTION}=report")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["1 models checked: 0 passed, 1 failed (report mode*"])


def test_off_mode_checks_nothing(run_pytest: RunPytest, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(COUNTER_TEST)
    result = run_pytest(f"{ROUNDTRIP_OPTION}=off")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*torchpkg roundtrip*")


def test_a_bad_mode_is_a_usage_error_that_names_the_modes(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(DOUBLER_TEST)
    result = run_pytest(f"{ROUNDTRIP_OPTION}=strict")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"*error: argument {ROUNDTRIP_OPTION}: invalid mode 'strict': expected one of "
            f"fail, report, off (a bare {ROUNDTRIP_OPTION} reads the next word as its mode: "
            f"write {ROUNDTRIP_OPTION}=fail to put paths after it)"
        ]
    )


def test_a_path_after_the_bare_flag_is_an_error_that_says_how_to_write_it(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(DOUBLER_TEST)
    result = run_pytest(ROUNDTRIP_OPTION, ".")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*invalid mode '.'*write {ROUNDTRIP_OPTION}=fail to put paths after it)"]
    )


def test_a_test_that_fails_on_its_own_is_not_checked(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import torch
        from zoo import Counter


        def test_wrong_expectation():
            assert Counter()(torch.ones(2)).sum() < 0
        """
    )
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["0 models checked*"])
    result.stdout.no_fnmatch_line("*did not survive packaging*")
