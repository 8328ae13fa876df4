"""Hooks for conftest files and plugins: configure the exporter, compare, observe results."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest

from pytest_torchpkg.plugin import ROUNDTRIP_OPTION

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("zoo")

RunPytest = Callable[..., pytest.RunResult]

PACKAGE_AWARE_TEST = """
    import torch
    from zoo import PackageAware


    def test_package_aware():
        PackageAware()(torch.ones(2))
"""


def test_configure_exporter_adds_rules_to_every_roundtrip(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makeconftest(
        """
        def pytest_torchpkg_configure_exporter(exporter, item):
            exporter.extern("zoohelpers")
        """
    )
    pytester.makepyfile(
        """
        import torch
        from zooextra import NeedsHelpers


        def test_needs_helpers(package_roundtrip):
            assert "zoohelpers" in package_roundtrip(NeedsHelpers(), torch.zeros(1)).externed
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_a_compare_hook_returning_a_diagnostic_fails_the_model(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makeconftest(
        """
        from torchpkg.roundtrip import Diagnostic, DiagnosticKind


        def pytest_torchpkg_compare(original, clone, item):
            return Diagnostic(
                DiagnosticKind.OUTPUT_MISMATCH,
                f"{item.name}: outputs are never good enough",
                "lower the bar",
            )
        """
    )
    pytester.makepyfile(
        """
        import torch
        from zoo import Doubler


        def test_doubles():
            Doubler()(torch.ones(2))
        """
    )
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["  output-mismatch: test_doubles: outputs are never good enough"])


def test_a_compare_hook_returning_none_accepts_outputs_that_differ(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makeconftest(
        """
        import torch


        def pytest_torchpkg_compare(original, clone, item):
            assert not torch.equal(original, clone)  # the built-in comparison would fail
            return None
        """
    )
    pytester.makepyfile(PACKAGE_AWARE_TEST)
    run_pytest(ROUNDTRIP_OPTION).assert_outcomes(passed=1)


def test_a_conftest_hook_applies_only_to_the_tests_under_it(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.mkpydir("lenient")
    pytester.path.joinpath("lenient", "conftest.py").write_text(
        "def pytest_torchpkg_compare(original, clone, item):\n    return None\n"
    )
    pytester.path.joinpath("lenient", "test_lenient.py").write_text(
        textwrap.dedent(PACKAGE_AWARE_TEST)
    )
    pytester.makepyfile(test_strict=PACKAGE_AWARE_TEST)
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_strict.py::test_package_aware*"])


def test_the_result_hook_sees_every_roundtrip(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """Automatic and fixture roundtrips alike; each worker appends to the same file."""
    pytester.makeconftest(
        """
        from pathlib import Path


        def pytest_torchpkg_roundtrip_result(result, item):
            with Path(__file__).with_name("results.txt").open("a") as results:
                results.write(f"{item.name} {result.model} {result.verdict.value}\\n")
        """
    )
    pytester.makepyfile(
        """
        import torch
        from zoo import Counter, Doubler


        def test_recorded():
            Counter()(torch.ones(2))


        def test_fixture(package_roundtrip):
            package_roundtrip(Doubler(), torch.ones(2))
        """
    )
    run_pytest(ROUNDTRIP_OPTION)
    lines = pytester.path.joinpath("results.txt").read_text().splitlines()
    assert sorted(lines) == [
        "test_fixture zoo.Doubler passed",
        "test_recorded zoo.Counter mismatch",
    ]
