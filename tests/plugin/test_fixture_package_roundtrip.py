"""The `package_roundtrip` fixture: round-trip a model from inside a test."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_torchpkg.plugin import ROUNDTRIP_OPTION

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("zoo")

RunPytest = Callable[..., pytest.RunResult]


def test_it_returns_the_result_of_a_model_that_survives(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import torch
        from zoo import Doubler


        def test_doubler_packages(package_roundtrip):
            result = package_roundtrip(Doubler(), torch.ones(2))
            assert result.passed
            assert result.model == "zoo.Doubler"
            assert result.interned == ("zoo",)
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_it_fails_the_test_with_the_report_when_the_model_does_not_survive(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import torch
        from zoo import Counter


        def test_counter_packages(package_roundtrip):
            counter = Counter()
            counter(torch.ones(2))
            package_roundtrip(counter, torch.ones(2))
        """
    )
    result = run_pytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E *RoundtripFailure: torchpkg roundtrip of zoo.Counter: mismatch",
            "E *global-state-mutated*",
        ]
    )


def test_check_false_returns_a_failed_result_to_inspect(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import torch
        from torchpkg.roundtrip import DiagnosticKind, Verdict
        from zoo import WithLambda


        def test_lambda_is_reported(package_roundtrip):
            result = package_roundtrip(WithLambda(), torch.ones(2), check=False)
            assert result.verdict is Verdict.PACKAGING_FAILED
            kinds = {d.kind for d in result.diagnostics}
            assert DiagnosticKind.UNPICKLABLE_MEMBER in kinds
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_keyword_inputs_are_passed_with_kwargs(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import torch
        from zoo import Scaled


        def test_scaled_packages(package_roundtrip):
            assert package_roundtrip(Scaled(), torch.ones(2), kwargs={"scale": 2.0}).passed
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_the_marker_options_are_the_defaults(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import pytest
        import torch
        from zooextra import NeedsHelpers


        @pytest.mark.torchpkg(extern=["zoohelpers"])
        def test_extern_from_the_marker(package_roundtrip):
            assert "zoohelpers" in package_roundtrip(NeedsHelpers(), torch.ones(1)).externed
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_options_given_to_the_call_replace_the_defaults(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import pytest
        import torch
        from zoo import PackageAware


        @pytest.mark.torchpkg(atol=1e-3)
        def test_exact_on_request(package_roundtrip):
            assert package_roundtrip(PackageAware(), torch.ones(2)).passed
            exact = package_roundtrip(PackageAware(), torch.ones(2), atol=None, check=False)
            assert not exact.passed
        """
    )
    run_pytest().assert_outcomes(passed=1)


def test_models_it_checks_are_not_checked_again_by_the_recorder(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import torch
        from zoo import PackageAware


        def test_package_aware_differs(package_roundtrip):
            assert not package_roundtrip(PackageAware(), torch.ones(2), check=False).passed
        """
    )
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["0 models checked*"])
