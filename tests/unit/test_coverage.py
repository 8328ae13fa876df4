"""Coverage of packaged code: the lines a clone runs count for the file its source came from.

coverage.py runs in a subprocess here, as a user runs it (``coverage run``,
``pytest --cov``), and its data file is read back. Torch-free.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

coverage = pytest.importorskip("coverage")

MODEL = """\
class Model:
    def forward(self, x):
        if x > 0:
            doubled = x * 2
            return doubled
        return -x
"""
FORWARD_BODY = {3, 4, 5}  # the lines only the clone runs
NEGATIVE = 6

EXPORT_AND_RUN_THE_CLONE = """
import sys
import warnings

from torchpkg import PackageExporter, PackageImporter

import covmodel

with PackageExporter("model.pt") as exporter:
    exporter.intern("covmodel")
    exporter.save_pickle("model", "model.pkl", covmodel.Model())
del sys.modules["covmodel"]
if len(sys.argv) > 1:  # the source changes after the export
    with open("covmodel.py", "a") as file:
        file.write("# edited\\n")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    clone = PackageImporter("model.pt").load_pickle("model", "model.pkl")
assert clone.forward(3) == 6
for warning in caught:
    print("WARNING", warning.category.__name__, warning.message)
"""


def _measured_lines(data_file: Path, source: Path) -> set[int]:
    data = coverage.CoverageData(basename=str(data_file))
    data.read()
    return set(data.lines(str(source)) or ())


def _coverage_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "covmodel.py").write_text(MODEL)
    (tmp_path / "script.py").write_text(textwrap.dedent(EXPORT_AND_RUN_THE_CLONE))
    command = [sys.executable, "-m", "coverage", "run", "--data-file=.coverage", "script.py"]
    done = subprocess.run(
        [*command, *args], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done


def test_lines_only_the_clone_ran_count_for_the_real_file_under_coverage_run(
    tmp_path: Path,
) -> None:
    done = _coverage_run(tmp_path)
    lines = _measured_lines(tmp_path / ".coverage", tmp_path / "covmodel.py")
    assert lines >= FORWARD_BODY
    assert NEGATIVE not in lines
    assert "WARNING" not in done.stdout


def test_packaged_code_from_a_changed_file_is_left_out_with_one_warning(tmp_path: Path) -> None:
    done = _coverage_run(tmp_path, "edit")
    lines = _measured_lines(tmp_path / ".coverage", tmp_path / "covmodel.py")
    assert not FORWARD_BODY & lines
    [warning] = [line for line in done.stdout.splitlines() if line.startswith("WARNING")]
    assert "CoverageNotMeasuredWarning" in warning
    assert "covmodel.py" in warning
    assert "torch_package" not in done.stdout + done.stderr


def test_lines_only_the_clone_ran_count_under_pytest_cov(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_cov")
    pytester.makepyfile(covmodel=MODEL)
    pytester.makepyfile(
        test_clone="""
        import sys

        from torchpkg import PackageExporter, PackageImporter


        def test_the_clone(tmp_path):
            import covmodel

            with PackageExporter(tmp_path / "model.pt") as exporter:
                exporter.intern("covmodel")
                exporter.save_pickle("model", "model.pkl", covmodel.Model())
            del sys.modules["covmodel"]
            clone = PackageImporter(tmp_path / "model.pt").load_pickle("model", "model.pkl")
            assert clone.forward(3) == 6
        """
    )
    result = pytester.runpytest_subprocess("--cov=.", "--cov-report=", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    lines = _measured_lines(pytester.path / ".coverage", pytester.path / "covmodel.py")
    assert lines >= FORWARD_BODY
    assert NEGATIVE not in lines
