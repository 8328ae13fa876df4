"""The example model repository: `pytest examples --torchpkg-roundtrip` is what `make demo` gates.

Its tests know nothing about torchpkg; the plugin must pass its healthy models
and flag each broken one with the diagnostic of its sharp edge, as
``examples/gate.py`` checks.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from pytest_torchpkg.plugin import REPORT_OPTION, ROUNDTRIP_OPTION

pytest.importorskip("torch")

RunPytest = Callable[..., pytest.RunResult]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_gate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("examples_gate", EXAMPLES / "gate.py")
    assert spec is not None
    assert spec.loader is not None
    gate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gate)
    return gate


def test_each_broken_example_is_flagged_and_each_healthy_one_passes(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    report = pytester.path / "report.json"
    result = run_pytest(str(EXAMPLES), f"{ROUNDTRIP_OPTION}=report", f"{REPORT_OPTION}={report}")
    result.assert_outcomes(passed=12)
    lines = load_gate().check(json.loads(report.read_text()))
    assert [line for line in lines if not line.startswith("ok")] == []
    assert len(lines) == 8


def test_fail_mode_fails_exactly_the_tests_of_broken_examples(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    result = run_pytest(str(EXAMPLES), ROUNDTRIP_OPTION)
    result.assert_outcomes(passed=6, failed=6)
    result.stdout.fnmatch_lines(["13 models checked: 6 passed, 7 failed"])
