"""ini keys: a repository's defaults for the mode, the export policy and the tolerances."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from _misbehaving import MISBEHAVES_IN_PACKAGE
from pytest_torchpkg.plugin import (
    ATOL_INI,
    EXTERN_INI,
    INTERN_INI,
    ISOLATION_INI,
    MOCK_INI,
    REPORT_OPTION,
    ROUNDTRIP_INI,
    ROUNDTRIP_OPTION,
    RTOL_INI,
    TIMEOUT_INI,
)

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("zoo")

RunPytest = Callable[..., pytest.RunResult]

COUNTER_TEST = """
    import torch
    from zoo import Counter


    def test_counts():
        Counter()(torch.ones(2))
"""
NEEDS_HELPERS_TEST = """
    import torch
    from zooextra import NeedsHelpers


    def test_adds_one():
        assert NeedsHelpers()(torch.zeros(1)).item() == 1
"""
PACKAGE_AWARE_TEST = """
    import torch
    from zoo import PackageAware


    def test_is_close_to_identity():
        assert torch.allclose(PackageAware()(torch.ones(2)), torch.ones(2))
"""


def test_the_ini_mode_turns_checking_on_for_the_repository(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makeini(f"[pytest]\n{ROUNDTRIP_INI} = fail\n")
    pytester.makepyfile(COUNTER_TEST)
    result = run_pytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["1 models checked: 0 passed, 1 failed"])


def test_the_command_line_mode_overrides_the_ini(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makeini(f"[pytest]\n{ROUNDTRIP_INI} = fail\n")
    pytester.makepyfile(COUNTER_TEST)
    run_pytest(f"{ROUNDTRIP_OPTION}=report").assert_outcomes(passed=1)


def test_a_bad_ini_mode_is_a_usage_error(run_pytest: RunPytest, pytester: pytest.Pytester) -> None:
    pytester.makeini(f"[pytest]\n{ROUNDTRIP_INI} = yes\n")
    pytester.makepyfile(COUNTER_TEST)
    result = run_pytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: ini key {ROUNDTRIP_INI}: invalid mode 'yes': expected one of fail, report, off*"]
    )


def test_a_dependency_without_a_rule_is_interned_by_provenance(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """The baseline for the ini patterns below: zoohelpers is the repository's code."""
    pytester.makepyfile(NEEDS_HELPERS_TEST)
    result = run_pytest(ROUNDTRIP_OPTION, f"{REPORT_OPTION}=report.json")
    result.assert_outcomes(passed=1)
    [test] = json.loads(pytester.path.joinpath("report.json").read_text())["tests"]
    assert "zoohelpers" in test["models"][0]["interned"]


@pytest.mark.parametrize("key", [EXTERN_INI, MOCK_INI, INTERN_INI])
def test_ini_patterns_apply_to_every_roundtrip(
    run_pytest: RunPytest, pytester: pytest.Pytester, key: str
) -> None:
    pytester.makeini(f"[pytest]\n{key} =\n    numpy.**\n    zoohelpers\n")
    pytester.makepyfile(NEEDS_HELPERS_TEST)
    result = run_pytest(ROUNDTRIP_OPTION, f"{REPORT_OPTION}=report.json")
    result.assert_outcomes(passed=1)
    [test] = json.loads(pytester.path.joinpath("report.json").read_text())["tests"]
    action = key.removeprefix("torchpkg_")
    assert "zoohelpers" in test["models"][0][f"{action}ed"]


@pytest.mark.parametrize("key", [RTOL_INI, ATOL_INI])
def test_ini_tolerances_accept_small_differences(
    run_pytest: RunPytest, pytester: pytest.Pytester, key: str
) -> None:
    pytester.makeini(f"[pytest]\n{key} = 1e-4\n")
    pytester.makepyfile(PACKAGE_AWARE_TEST)
    run_pytest(ROUNDTRIP_OPTION).assert_outcomes(passed=1)


def test_without_a_tolerance_outputs_must_be_identical(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(PACKAGE_AWARE_TEST)
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*output-mismatch*exact comparison*"])


def test_a_bad_ini_tolerance_is_a_usage_error(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makeini(f"[pytest]\n{ATOL_INI} = tiny\n")
    pytester.makepyfile(PACKAGE_AWARE_TEST)
    result = run_pytest(ROUNDTRIP_OPTION)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: ini key {ATOL_INI}: expected a number >= 0, got 'tiny'"])


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (ISOLATION_INI, "thread", "expected one of process, in-process, got 'thread'"),
        (TIMEOUT_INI, "0", "expected a number of seconds > 0"),
    ],
)
def test_a_bad_isolation_or_timeout_is_a_usage_error(
    run_pytest: RunPytest, pytester: pytest.Pytester, key: str, value: str, message: str
) -> None:
    pytester.makeini(f"[pytest]\n{key} = {value}\n")
    pytester.makepyfile(PACKAGE_AWARE_TEST)
    result = run_pytest(ROUNDTRIP_OPTION)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: ini key {key}: {message}"])


def test_a_clone_that_hangs_fails_its_test_at_the_ini_timeout_and_the_session_goes_on(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makeini(f"[pytest]\n{ISOLATION_INI} = process\n{TIMEOUT_INI} = 2\n")
    pytester.makepyfile(
        hangs_in_package=MISBEHAVES_IN_PACKAGE,
        test_hangs="""
        import torch
        from hangs_in_package import Hangs
        from zoo import Doubler


        def test_hangs():
            Hangs()(torch.ones(2))


        def test_later():
            Doubler()(torch.ones(2))
        """,
    )
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["FAILED hangs_in_package.Hangs in *: run-failed", "  clone-timeout: *in 2 s*"]
    )
