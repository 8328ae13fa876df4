"""Each sharp edge of packaging, as the plugin reports it for an unchanged test."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_torchpkg.plugin import ROUNDTRIP_OPTION

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("zoo")

RunPytest = Callable[..., pytest.RunResult]


def run_test(run_pytest: RunPytest, pytester: pytest.Pytester, body: str) -> pytest.RunResult:
    """Run one test (``body`` is its source) with roundtrips failing it."""
    pytester.makepyfile(f"import pytest\nimport torch\n\n\n{body}")
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(failed=1)
    return result


def test_a_global_counter_is_reported_as_global_state(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    result = run_test(
        run_pytest,
        pytester,
        "from zoo import Counter\n\ndef test_counts():\n    Counter()(torch.ones(2))\n",
    )
    result.stdout.fnmatch_lines(
        [
            "FAILED zoo.Counter in *: mismatch",
            "  global-state-mutated: zoo.built is 1 in the original's module but 0 in the "
            "clone's freshly imported copy*",
        ]
    )


def test_an_isinstance_check_against_a_class_of_the_package_is_reported(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    result = run_test(
        run_pytest,
        pytester,
        "from zoobatches import Batch, Router\n\n"
        "def test_routes():\n    Router()(Batch(torch.ones(2)))\n",
    )
    result.stdout.fnmatch_lines(
        [
            "FAILED zoobatches.Router in *: run-failed",
            "  run-error: the clone raised TypeError: expected a Batch, got Batch",
            # fnmatch reads "[0]" as a character class: "inputs?0?" stands for "inputs[0]"
            "  isinstance-across-namespaces: inputs?0? is a zoobatches.Batch made by the "
            "original code*The clone failed at zoobatches.py:*isinstance(batch, Batch)*",
        ]
    )


@pytest.mark.parametrize(("model", "path"), [("WithLambda", "activation"), ("WithLock", "lock")])
def test_an_unpicklable_member_is_reported_with_its_attribute_path(
    run_pytest: RunPytest, pytester: pytest.Pytester, model: str, path: str
) -> None:
    result = run_test(
        run_pytest,
        pytester,
        f"from zoo import {model}\n\ndef test_runs():\n    {model}()(torch.ones(2))\n",
    )
    result.stdout.fnmatch_lines(
        [
            f"FAILED zoo.{model} in *: packaging-failed",
            f"  unpicklable-member: model.{path} cannot be pickled: *",
        ]
    )


def test_a_mocked_module_used_in_forward_is_named(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    result = run_test(
        run_pytest,
        pytester,
        "from zooextra import ShiftsWithHelpers\n\n"
        "@pytest.mark.torchpkg(mock=['zoohelpers'])\n"
        "def test_shifts():\n    ShiftsWithHelpers()(torch.ones(2))\n",
    )
    result.stdout.fnmatch_lines(
        [
            "FAILED zooextra.ShiftsWithHelpers in *: run-failed",
            "  mocked-module-used: the clone used zoohelpers.shift, but zoohelpers was mocked*",
        ]
    )


def test_an_output_difference_names_the_leaf_and_its_size(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    result = run_test(
        run_pytest,
        pytester,
        "from zoo import PackageAware\n\ndef test_identity():\n    PackageAware()(torch.ones(2))\n",
    )
    result.stdout.fnmatch_lines(
        ["  output-mismatch: output: 2 of 2 elements differ (max abs diff 9.5*e-07*"]
    )


def test_module_code_reading_a_file_next_to_it_is_a_located_load_error(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    result = run_test(
        run_pytest,
        pytester,
        "from zoodata import Vocabulary\n\n"
        "def test_counts_words():\n    Vocabulary()(torch.ones(2))\n",
    )
    result.stdout.fnmatch_lines(
        [
            "FAILED zoodata.Vocabulary in *: load-failed",
            "  not-hermetic: * file-system access next to __file__ at zoodata/__init__.py:9: *",
        ]
    )
