"""``verify`` and ``info`` with the integrity manifest: verified, altered, unverified.

``verify`` checks the manifest before it imports anything: the package's
``tripwire`` module creates its sentinel when imported, so a sentinel that does
not exist proves that nothing ran.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from _cli import Package, run_cli
from _tamper import remove, replace
from torchpkg.cli import main
from torchpkg.records import MANIFEST_RECORD

UNVERIFIED = "unverified (no manifest: written by torch.package or an older torchpkg)\n"


def test_verify_says_every_record_matches_the_manifest_and_exits_0(
    package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(package.path)]) == 0
    out = capsys.readouterr().out
    assert "verified: all " in out
    assert out.endswith(": OK\n")


Alter = Callable[[Package], None]

# How the archive is changed, and the line verify prints about it.
ALTERATIONS: dict[str, tuple[Alter, str]] = {
    "altered pickle": (
        lambda p: replace(p.path, "model/model.pkl", b"\x80\x03N."),
        "altered: model/model.pkl",
    ),
    "altered source": (
        lambda p: replace(p.path, f"{p.top}/layers.py", b"X = 1\n"),
        "altered: {top}/layers.py",
    ),
    "removed record": (
        lambda p: remove(p.path, "notes/readme.txt"),
        "missing: notes/readme.txt",
    ),
    "added record": (
        lambda p: replace(p.path, "payload.py", b"import os\n"),
        "extra: payload.py",
    ),
}


@pytest.mark.parametrize("alteration", ALTERATIONS.values(), ids=ALTERATIONS.keys())
def test_verify_lists_each_changed_record_exits_1_and_runs_nothing(
    package: Package, capsys: pytest.CaptureFixture[str], alteration: tuple[Alter, str]
) -> None:
    alter, line = alteration
    alter(package)
    assert main(["verify", str(package.path), "--pickles"]) == 1
    out = capsys.readouterr().out
    assert f"{line.format(top=package.top)}\n" in out
    assert "1 record(s) differ from the manifest" in out
    assert out.endswith("FAILED (its code was not run)\n")
    assert not package.sentinel.exists()


def test_verify_lists_every_changed_record_together(
    package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    replace(package.path, "model/model.pkl", b"\x80\x03N.")
    remove(package.path, "notes/readme.txt")
    assert main(["verify", str(package.path)]) == 1
    out = capsys.readouterr().out
    assert "altered: model/model.pkl\nmissing: notes/readme.txt\n" in out


def test_verify_json_gives_the_status_of_every_record(
    package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    replace(package.path, "model/model.pkl", b"\x80\x03N.")
    assert main(["verify", str(package.path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["integrity"] == "altered"
    assert report["records"]["model/model.pkl"] == "altered"
    assert report["records"]["notes/readme.txt"] == "verified"
    assert report["records"][".data/version"] == "verified"


@pytest.fixture
def unverified(package: Package) -> Package:
    """The package as torch.package (or a torchpkg from before manifests) would write it."""
    remove(package.path, MANIFEST_RECORD)
    return package


def test_verify_reports_an_archive_without_a_manifest_as_unverified_and_exits_0(
    unverified: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(unverified.path)]) == 0
    out = capsys.readouterr().out
    assert UNVERIFIED in out
    assert out.endswith(": OK\n")


def test_verify_strict_fails_an_unverified_archive_and_runs_nothing(
    unverified: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(unverified.path), "--strict"]) == 1
    assert UNVERIFIED in capsys.readouterr().out
    assert not unverified.sentinel.exists()


def test_verify_json_says_unverified_with_no_record_statuses(
    unverified: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(unverified.path), "--json", "--integrity-only"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["integrity"], report["records"]) == (True, "unverified", {})


def test_verify_integrity_only_checks_the_manifest_without_importing_anything(
    package: Package, tmp_path: Path
) -> None:
    done = run_cli("verify", str(package.path), "--integrity-only", pythonpath=tmp_path / "src")
    assert done.returncode == 0, done.stderr
    assert "verified: all " in done.stdout
    assert done.stderr.rstrip().endswith("torch imported: False")
    assert not package.sentinel.exists()


def test_info_says_the_archive_has_a_manifest(
    package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(package.path)]) == 0
    assert "integrity: BLAKE3 manifest" in capsys.readouterr().out
    assert main(["info", str(package.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["manifest"] is True


def test_info_says_an_archive_without_a_manifest_is_unverified(
    unverified: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(unverified.path)]) == 0
    assert f"integrity: {UNVERIFIED}" in capsys.readouterr().out
