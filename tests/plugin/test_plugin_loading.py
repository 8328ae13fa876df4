"""Loading the plugin: entry point, options, markers, and no torch import."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import entry_points

import pytest

from pytest_torchpkg.plugin import (
    ATOL_INI,
    EXTERN_INI,
    INTERN_INI,
    MOCK_INI,
    REPORT_OPTION,
    ROUNDTRIP_INI,
    ROUNDTRIP_OPTION,
    RTOL_INI,
)

RunPytest = Callable[..., pytest.RunResult]


def test_importing_the_plugin_does_not_import_torch() -> None:
    code = "import pytest_torchpkg.plugin, sys; print('torch' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "False"


def test_the_plugin_is_registered_as_the_torchpkg_pytest11_entry_point() -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("torchpkg") == "pytest_torchpkg.plugin"


def test_a_torch_free_suite_stays_torch_free_with_roundtrips_on(
    pytester: pytest.Pytester, xdist_args: tuple[str, ...]
) -> None:
    """In a subprocess: the outer test process has imported torch already."""
    pytester.makeconftest(
        """
        import sys

        import pytest


        @pytest.fixture(autouse=True)
        def torch_is_never_imported():
            yield  # checked after the call phase, when models would be round-tripped
            assert "torch" not in sys.modules
        """
    )
    pytester.makepyfile(
        """
        def test_arithmetic():
            assert 1 + 1 == 2
        """
    )
    result = pytester.runpytest_subprocess(*xdist_args, ROUNDTRIP_OPTION)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*0 models checked*"])


def test_help_lists_the_options_and_ini_keys(run_pytest: RunPytest) -> None:
    result = run_pytest("--help")
    result.stdout.fnmatch_lines([f"*{ROUNDTRIP_OPTION}*MODE*", f"*{REPORT_OPTION}*PATH*"])
    for key in (ROUNDTRIP_INI, EXTERN_INI, MOCK_INI, INTERN_INI, RTOL_INI, ATOL_INI):
        result.stdout.fnmatch_lines([f"  {key} *"])


def test_the_markers_are_registered(run_pytest: RunPytest) -> None:
    result = run_pytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.torchpkg(extern=*, mock=*, intern=*, rtol=*, atol=*): *",
            "@pytest.mark.torchpkg_skip(reason=...): *",
        ]
    )


def test_the_markers_pass_strict_markers(run_pytest: RunPytest, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest


        @pytest.mark.torchpkg(extern=["numpy.**"])
        @pytest.mark.torchpkg_skip(reason="not a model")
        def test_marked():
            pass
        """
    )
    run_pytest("--strict-markers").assert_outcomes(passed=1)
