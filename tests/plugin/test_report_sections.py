"""Which models' reports go into a test's ``torchpkg`` report section (attach(), alone)."""

from __future__ import annotations

import pytest

from pytest_torchpkg.report import SECTION, Mode, attach, results_of
from torchpkg.roundtrip import RoundtripResult, Verdict


def result(model: str, verdict: Verdict) -> RoundtripResult:
    return RoundtripResult(model, verdict, (), (), ("torch",), (), 100, {})


def call_report() -> pytest.TestReport:
    return pytest.TestReport(
        "test_x.py::test_x", ("test_x.py", 0, "test_x"), {}, "passed", None, "call"
    )


def section(report: pytest.TestReport) -> str | None:
    texts = [text for title, text in report.sections if title == SECTION]
    return texts[0] if texts else None


def test_a_test_whose_models_all_passed_gets_no_section() -> None:
    report = call_report()
    attach(report, [result("zoo.Doubler", Verdict.PASSED)], Mode.REPORT)
    assert section(report) is None
    assert results_of(report)[0]["verdict"] == "passed"  # still in the JSON report


def test_the_section_shows_only_the_models_that_did_not_pass() -> None:
    report = call_report()
    results = [result("zoo.Doubler", Verdict.PASSED), result("zoo.Counter", Verdict.MISMATCH)]
    attach(report, results, Mode.REPORT)
    shown = section(report)
    assert shown is not None
    assert "zoo.Counter" in shown
    assert "zoo.Doubler" not in shown


def test_passing_models_are_shown_from_verbosity_two() -> None:
    report = call_report()
    attach(report, [result("zoo.Doubler", Verdict.PASSED)], Mode.REPORT, verbosity=2)
    shown = section(report)
    assert shown is not None
    assert "zoo.Doubler" in shown


def test_verbosity_one_keeps_passing_models_quiet() -> None:
    report = call_report()
    attach(report, [result("zoo.Doubler", Verdict.PASSED)], Mode.FAIL, verbosity=1)
    assert section(report) is None
