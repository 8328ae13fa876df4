"""Markers: `torchpkg(extern=, mock=, intern=, rtol=, atol=)` per test, `torchpkg_skip`."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from pytest_torchpkg.plugin import EXTERN_INI, REPORT_OPTION, ROUNDTRIP_OPTION

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("zoo")

RunPytest = Callable[..., pytest.RunResult]


@pytest.mark.parametrize("key", ["extern", "mock", "intern"])
def test_marker_patterns_apply_to_the_marked_test_only(
    run_pytest: RunPytest, pytester: pytest.Pytester, key: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest
        import torch
        from zooextra import NeedsHelpers


        @pytest.mark.torchpkg({key}=["zoohelpers"])
        def test_marked():
            NeedsHelpers()(torch.zeros(1))


        def test_unmarked():
            NeedsHelpers()(torch.zeros(1))
        """
    )
    result = run_pytest(ROUNDTRIP_OPTION, f"{REPORT_OPTION}=report.json")
    result.assert_outcomes(passed=2)
    tests = json.loads(pytester.path.joinpath("report.json").read_text())["tests"]
    lists = {test["nodeid"].rpartition("::")[2]: test["models"][0] for test in tests}
    assert "zoohelpers" in lists["test_marked"][f"{key}ed"]
    assert "zoohelpers" in lists["test_unmarked"]["interned"]  # by provenance


def test_marker_patterns_add_to_the_ini_patterns(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """The ini externs zoohelpers; a marker externing something else keeps that rule."""
    pytester.makeini(f"[pytest]\n{EXTERN_INI} = zoohelpers\n")
    pytester.makepyfile(
        """
        import pytest
        import torch
        from zooextra import NeedsHelpers


        @pytest.mark.torchpkg(extern="numpy.**")
        def test_marked():
            NeedsHelpers()(torch.zeros(1))
        """
    )
    run_pytest(ROUNDTRIP_OPTION).assert_outcomes(passed=1)


@pytest.mark.parametrize("key", ["rtol", "atol"])
def test_marker_tolerances_accept_small_differences(
    run_pytest: RunPytest, pytester: pytest.Pytester, key: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest
        import torch
        from zoo import PackageAware


        @pytest.mark.torchpkg({key}=1e-4)
        def test_is_close_to_identity():
            PackageAware()(torch.ones(2))
        """
    )
    run_pytest(ROUNDTRIP_OPTION).assert_outcomes(passed=1)


def test_the_closest_marker_sets_the_tolerance(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import pytest
        import torch
        from zoo import PackageAware

        pytestmark = pytest.mark.torchpkg(atol=1e-4)


        def test_tolerant():
            PackageAware()(torch.ones(2))


        @pytest.mark.torchpkg(atol=None)
        def test_exact():
            PackageAware()(torch.ones(2))
        """
    )
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED *::test_exact*"])


def test_an_unknown_marker_argument_fails_the_test_naming_the_accepted_ones(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import pytest
        import torch
        from zoo import Doubler


        @pytest.mark.torchpkg(externs=["numpy"])
        def test_typo():
            Doubler()(torch.ones(1))
        """
    )
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.torchpkg takes only the keyword arguments extern, mock, intern, "
            "rtol, atol, strict_paths; got externs"
        ]
    )


def test_a_bad_pattern_value_fails_the_test(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import pytest
        import torch
        from zoo import Doubler


        @pytest.mark.torchpkg(extern=42)
        def test_number():
            Doubler()(torch.ones(1))
        """
    )
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.torchpkg(extern=...) expects a module pattern or a list of them, got 42"]
    )


def test_the_skip_marker_leaves_the_test_unchecked(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import pytest
        import torch
        from zoo import Counter


        @pytest.mark.torchpkg_skip(reason="counts calls on purpose")
        def test_counts():
            Counter()(torch.ones(2))
        """
    )
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["0 models checked*"])
