"""`--torchpkg-report=PATH`: the JSON report, per test and model."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from pytest_torchpkg.plugin import REPORT_OPTION, ROUNDTRIP_OPTION

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("zoo")

RunPytest = Callable[..., pytest.RunResult]

TWO_MODULES = {
    "test_healthy": """
        import torch
        from zoo import Doubler


        def test_doubles():
            Doubler()(torch.ones(2))
        """,
    "test_broken": """
        import torch
        from zoo import Counter, WithLambda


        def test_counts():
            Counter()(torch.ones(2))


        def test_clamps():
            WithLambda()(torch.ones(2))
        """,
}


def run_with_report(run_pytest: RunPytest, pytester: pytest.Pytester) -> dict[str, Any]:
    pytester.makepyfile(**TWO_MODULES)
    run_pytest(f"{ROUNDTRIP_OPTION}=report", f"{REPORT_OPTION}=report.json")
    report: dict[str, Any] = json.loads(pytester.path.joinpath("report.json").read_text())
    return report


def test_the_report_lists_every_test_that_called_a_model(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """Under xdist the tests run on different workers; the controller writes them all."""
    report = run_with_report(run_pytest, pytester)
    assert [test["nodeid"] for test in report["tests"]] == [
        "test_broken.py::test_clamps",
        "test_broken.py::test_counts",
        "test_healthy.py::test_doubles",
    ]
    assert report["mode"] == "report"
    assert report["summary"] == {"checked": 3, "passed": 1, "failed": 2}


def test_a_model_entry_has_verdict_package_lists_size_and_timings(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    report = run_with_report(run_pytest, pytester)
    tests = {test["nodeid"]: test["models"] for test in report["tests"]}
    [doubler] = tests["test_healthy.py::test_doubles"]
    assert doubler["model"] == "zoo.Doubler"
    assert doubler["verdict"] == "passed"
    assert doubler["diagnostics"] == []
    assert doubler["interned"] == ["zoo"]
    assert "torch" in doubler["externed"]
    assert doubler["mocked"] == []
    assert doubler["archive_bytes"] > 0
    assert set(doubler["timings"]) >= {"export", "load", "run"}


def test_a_failed_model_entry_has_its_diagnostics(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    report = run_with_report(run_pytest, pytester)
    tests = {test["nodeid"]: test["models"] for test in report["tests"]}
    [with_lambda] = tests["test_broken.py::test_clamps"]
    assert with_lambda["verdict"] == "packaging-failed"
    assert with_lambda["archive_bytes"] == 0
    unpicklable = [d for d in with_lambda["diagnostics"] if d["kind"] == "unpicklable-member"]
    assert [d["location"] for d in unpicklable] == ["model.activation"]
    assert "lambda" in unpicklable[0]["message"]
    assert unpicklable[0]["next_step"]


def test_a_relative_path_is_written_under_the_invocation_directory_creating_folders(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(TWO_MODULES["test_healthy"])
    result = run_pytest(ROUNDTRIP_OPTION, f"{REPORT_OPTION}=out/torchpkg.json")
    path = pytester.path / "out" / "torchpkg.json"
    result.stdout.fnmatch_lines([f"JSON report: {path}"])
    assert json.loads(path.read_text())["summary"]["checked"] == 1


def test_a_report_without_roundtrips_is_a_usage_error(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(TWO_MODULES["test_healthy"])
    result = run_pytest(f"{REPORT_OPTION}=report.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: {REPORT_OPTION} reports on roundtrips, which are off: add {ROUNDTRIP_OPTION}*"]
    )
