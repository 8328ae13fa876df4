"""What the plugin reports: per-test data on reports, the terminal summary, JSON, exit status.

Results travel as the plain dicts of ``RoundtripResult.to_dict()`` on an
attribute of each test report, so pytest-xdist carries them from the workers
to the controller unchanged; everything the controller builds starts from
those dicts. Nothing here imports torch.

What the terminal shows: each test whose models did not all pass gets a
``torchpkg`` report section (pytest prints it under the failure, and for a
passing test in report mode with ``-rA``/``-rP``) holding the reports of the
models that did not pass. Passing models stay quiet: their reports join the
section only at verbosity 2 (``-vv``) and above, and are always in the JSON
report. The summary claims only what the results show: in report mode, that
no test was failed because of them (the recording still ran inside every test;
it cannot tell whether a test behaved differently because of it).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from torchpkg.roundtrip import RoundtripResult

__all__ = [
    "NOT_CHECKED_ATTRIBUTE",
    "REPORT_MODE_NOTE",
    "RESULTS_ATTRIBUTE",
    "SECTION",
    "VERBOSE_SECTION",
    "Mode",
    "SessionReport",
    "attach",
    "results_of",
]

# The test report attribute holding the results (pytest serialises a report's
# attributes for xdist, so no serialisation hook is needed).
RESULTS_ATTRIBUTE: Final = "torchpkg_results"
# The classes of the models a test called that were made of torch's modules alone.
NOT_CHECKED_ATTRIBUTE: Final = "torchpkg_not_checked"
# The title of the report section that holds each model's full report.
SECTION: Final = "torchpkg"
# What report mode can vouch for: its verdicts failed no test. Not that outcomes are
# as without the plugin: its hooks ran inside every test, and a test may behave
# differently because of them (one that torch.jit.trace's the model, say).
REPORT_MODE_NOTE: Final = (
    " (report mode: no test was failed for these results; the plugin still recorded "
    "inside every test)"
)


class Mode(enum.Enum):
    """What ``--torchpkg-roundtrip`` does with a model that does not survive packaging."""

    FAIL = "fail"  # fail the test that called it
    REPORT = "report"  # report it; outcomes stay as they were
    OFF = "off"  # record nothing


# The verbosity (``-vv``) from which passing models' reports are shown too.
VERBOSE_SECTION: Final = 2


def attach(
    report: pytest.TestReport,
    results: Sequence[RoundtripResult],
    mode: Mode,
    *,
    verbosity: int = 0,
) -> None:
    """Put a test's results on its call-phase report; in ``fail`` mode fail a passing test.

    The ``torchpkg`` section holds the reports of the models that did not pass (of all
    of them from ``verbosity`` 2 on); a test whose models all passed gets none."""
    setattr(report, RESULTS_ATTRIBUTE, [result.to_dict() for result in results])
    failed = [result for result in results if not result.passed]
    shown = results if verbosity >= VERBOSE_SECTION else failed
    if shown:
        report.sections.append((SECTION, "\n\n".join(result.report() for result in shown)))
    if mode is Mode.FAIL and failed and report.passed:
        report.outcome = "failed"
        models = ", ".join(f"{result.model} ({result.verdict.value})" for result in failed)
        count = "a model" if len(failed) == 1 else f"{len(failed)} models"
        report.longrepr = (
            f"{count} did not survive packaging: {models}\n"
            f"(what differs and what to do is in the '{SECTION}' section below)"
        )


def results_of(report: pytest.TestReport) -> list[dict[str, Any]]:
    """The result dicts a report carries (none for tests that called no model)."""
    results: list[dict[str, Any]] = getattr(report, RESULTS_ATTRIBUTE, [])
    return results


def not_checked_of(report: pytest.TestReport) -> list[str]:
    """The classes of the torch-only models a report's test called (never checked)."""
    classes: list[str] = getattr(report, NOT_CHECKED_ATTRIBUTE, [])
    return classes


@dataclass
class SessionReport:
    """Every model checked in the session, by test; listed in node id order (xdist's
    arrival order changes from run to run)."""

    mode: Mode
    tests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Models made of torch's modules alone: class -> how many a test called.
    not_checked: dict[str, int] = field(default_factory=dict)

    def add(
        self, nodeid: str, results: list[dict[str, Any]], not_checked: Sequence[str] = ()
    ) -> None:
        if results:
            self.tests.setdefault(nodeid, []).extend(results)
        for name in not_checked:
            self.not_checked[name] = self.not_checked.get(name, 0) + 1

    def failures(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            (nodeid, result)
            for nodeid, results in sorted(self.tests.items())
            for result in results
            if result["verdict"] != "passed"
        ]

    def counts(self) -> dict[str, int]:
        checked = sum(len(results) for results in self.tests.values())
        failed = len(self.failures())
        return {"checked": checked, "passed": checked - failed, "failed": failed}

    def summary_lines(self) -> list[str]:
        counts = self.counts()
        lines = [self._not_checked_line()] if self.not_checked else []
        if not counts["checked"]:
            return [
                "0 models checked: no model of the repository was called at the top level "
                "of a test",
                *lines,
            ]
        lines.insert(
            0,
            f"{counts['checked']} models checked: {counts['passed']} passed, "
            f"{counts['failed']} failed{REPORT_MODE_NOTE if self.mode is Mode.REPORT else ''}",
        )
        for nodeid, result in self.failures():
            lines.append(f"FAILED {result['model']} in {nodeid}: {result['verdict']}")
            kinds: set[str] = set()
            for diagnostic in result["diagnostics"]:
                if diagnostic["kind"] not in kinds:  # the first diagnostic of each kind
                    kinds.add(diagnostic["kind"])
                    lines.append(f"  {diagnostic['kind']}: {_headline(diagnostic['message'])}")
        return lines

    def _not_checked_line(self) -> str:
        total = sum(self.not_checked.values())
        shown = ", ".join(
            f"{name} x{count}" if count > 1 else name
            for name, count in sorted(self.not_checked.items(), key=lambda item: -item[1])[:5]
        )
        more = f" and {len(self.not_checked) - 5} more classes" if len(self.not_checked) > 5 else ""
        return (
            f"{total} calls of models made only of torch's own modules not checked "
            f"(their package would hold nothing of the repository): {shown}{more}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "summary": self.counts(),
            "not_checked": dict(sorted(self.not_checked.items())),
            "tests": [
                {"nodeid": nodeid, "models": results}
                for nodeid, results in sorted(self.tests.items())
            ],
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

    def exit_status(self, current: int) -> int:
        """``current``, or "tests failed" if a model failed in ``fail`` mode and all else passed."""
        if self.mode is Mode.FAIL and self.failures() and current == pytest.ExitCode.OK:
            return pytest.ExitCode.TESTS_FAILED
        return current


def _headline(message: str) -> str:
    """The first line of a message, with the next one when the first only introduces it."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[1]}"
    return lines[0] if lines else ""
