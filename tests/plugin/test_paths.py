"""The gate's path check: a clone that takes another path than the test's call.

The test's own call of the model is traced (lines of the repository's files)
and compared with the clone's run on the same inputs.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest

from _misbehaving import FALLBACK_LINE, ISINSTANCE_FALLBACK
from pytest_torchpkg.plugin import ROUNDTRIP_OPTION

pytest.importorskip("torch")

RunPytest = Callable[..., pytest.RunResult]

TEST = """
import torch
{marker}
from zoopaths.model import Model


{decorator}
def test_runs():
    Model()(torch.ones(2))
"""


def write(pytester: pytest.Pytester, ini: str = "", marker: bool = False) -> None:
    pytester.mkpydir("zoopaths")
    for path, source in ISINSTANCE_FALLBACK.items():
        pytester.path.joinpath("zoopaths", path).write_text(textwrap.dedent(source))
    decorator = "@pytest.mark.torchpkg(strict_paths=True)" if marker else ""
    pytester.makepyfile(TEST.format(marker="import pytest" if marker else "", decorator=decorator))
    pytester.makeini(f"[pytest]\ntorchpkg_extern = zoopaths.registry\n{ini}")


def test_a_divergent_path_fails_the_test_with_strict_paths(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    write(pytester, "torchpkg_strict_paths = true")
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "  divergent-path: on the same inputs the original ran "
            f"zoopaths/model.py:{FALLBACK_LINE} *"
        ]
    )


def test_a_divergent_path_is_only_reported_by_default(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    write(pytester)
    result = run_pytest(ROUNDTRIP_OPTION, "--torchpkg-report=report.json")
    result.assert_outcomes(passed=1)
    report = (pytester.path / "report.json").read_text()
    assert '"divergent-path"' in report
    assert f'"zoopaths/model.py:{FALLBACK_LINE}"' in report


def test_the_marker_asks_for_strict_paths_for_one_test(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    write(pytester, marker=True)
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(failed=1)


def test_tracing_off_checks_no_paths(run_pytest: RunPytest, pytester: pytest.Pytester) -> None:
    write(pytester, "torchpkg_strict_paths = true\ntorchpkg_trace = false")
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(passed=1)
