"""The environment record: what a package's extern modules came from, checked at load."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import pytest

from torchpkg import PackageExporter, PackageImporter, records
from torchpkg.cli import main
from torchpkg.records import (
    ENVIRONMENT_RECORD,
    EnvironmentMismatchError,
    EnvironmentMismatchWarning,
    EnvironmentRecord,
)


def export_using_pytest(target: Path | io.BytesIO) -> None:
    with PackageExporter(target) as exporter:
        exporter.extern("pytest")
        exporter.save_source_string("uses", "import pytest\nimport json\n")


def test_the_record_names_the_distribution_and_version_of_each_extern_module() -> None:
    buffer = io.BytesIO()
    export_using_pytest(buffer)
    with PackageImporter(io.BytesIO(buffer.getvalue())) as importer:
        record = importer.environment()
    assert record is not None
    assert record.modules["pytest"] == "pytest"
    assert record.modules["json"] is None  # the standard library comes with Python
    assert record.distributions["pytest"] == pytest.__version__
    assert record.python.count(".") == 2


def test_a_different_installed_version_is_a_warning_naming_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buffer = io.BytesIO()
    export_using_pytest(buffer)
    monkeypatch.setattr(records, "installed_version", lambda name: "0.0.1")
    with pytest.warns(EnvironmentMismatchWarning) as caught:
        PackageImporter(io.BytesIO(buffer.getvalue())).close()
    message = str(caught[0].message)
    assert f"pytest: the package was made with {pytest.__version__}" in message
    assert "this environment has 0.0.1" in message


def test_strict_environment_makes_a_mismatch_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.BytesIO()
    export_using_pytest(buffer)
    monkeypatch.setattr(records, "installed_version", lambda name: None)
    with pytest.raises(EnvironmentMismatchError, match=r"pytest: .* not installed") as raised:
        PackageImporter(io.BytesIO(buffer.getvalue()), strict_environment=True)
    assert "pytest" in [m.distribution for m in raised.value.mismatches]


def test_the_same_environment_loads_without_a_warning() -> None:
    buffer = io.BytesIO()
    export_using_pytest(buffer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PackageImporter(io.BytesIO(buffer.getvalue()), strict_environment=True).close()


def test_the_record_round_trips_through_json() -> None:
    record = EnvironmentRecord("3.11.7", "2.13.0", {"pytest": "9.0"}, {"pytest": "pytest"})
    assert EnvironmentRecord.from_json(record.to_json()) == record


def test_a_malformed_record_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=ENVIRONMENT_RECORD):
        EnvironmentRecord.from_json(json.dumps({"torch": "2"}).encode())


def test_torchpkg_info_prints_the_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "uses.pt"
    export_using_pytest(archive)
    assert main(["info", str(archive)]) == 0
    output = capsys.readouterr().out
    assert f"pytest {pytest.__version__} (1 extern modules)" in output
    assert "standard library / no distribution: json" in output
