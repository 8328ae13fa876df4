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
XDIST = ("-p", "xdist", "-n", "2")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_gate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("examples_gate", EXAMPLES / "gate.py")
    assert spec is not None
    assert spec.loader is not None
    gate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gate)
    return gate


@pytest.fixture(params=["in-process", "xdist"])
def run_examples(request: pytest.FixtureRequest, pytester: pytest.Pytester) -> RunPytest:
    """pytest on examples/ as ``make demo`` runs it: in a new process (transformers cannot
    be imported twice in one), clones in worker processes (the default)."""
    extra = XDIST if request.param == "xdist" else ()

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess(str(EXAMPLES), *args, *extra)

    return run


def test_each_broken_example_is_flagged_and_each_healthy_one_passes(
    run_examples: RunPytest, pytester: pytest.Pytester
) -> None:
    report = pytester.path / "report.json"
    result = run_examples(f"{ROUNDTRIP_OPTION}=report", f"{REPORT_OPTION}={report}")
    result.assert_outcomes(passed=14)
    lines = load_gate().check(json.loads(report.read_text()))
    assert [line for line in lines if not line.startswith("ok")] == []
    assert len(lines) == 9


def test_fail_mode_fails_exactly_the_tests_of_broken_examples(run_examples: RunPytest) -> None:
    result = run_examples(ROUNDTRIP_OPTION)
    result.assert_outcomes(passed=8, failed=6)
    result.stdout.fnmatch_lines(["14 models checked: 7 passed, 7 failed"])
