"""``diff``: what changed between two packages, section by section."""

from __future__ import annotations

import collections
import fractions
import json
import pickle
from pathlib import Path

import pytest

from _archives import write_records
from _cli import Package
from torchpkg.cli import main

BASE = {
    ".data/version": b"6\n",
    ".data/extern_modules": b"collections\n",
    "pkg/__init__.py": b"",
    "pkg/kept.py": b"X = 1\n",
    "pkg/edited.py": b"A = 1\nB = 2\n",
    "pkg/gone.py": b"",
    "model/model.pkl": pickle.dumps(collections.OrderedDict(a=1), protocol=3),
    ".data/0.storage": bytes(8),
    ".data/1.storage": bytes(8),
    "notes/readme.txt": b"hello",
}
CHANGED = {
    **{name: data for name, data in BASE.items() if name != "pkg/gone.py"},
    ".data/extern_modules": b"collections\nfractions\n",
    "pkg/edited.py": b"A = 1\nB = 3\nC = 4\n",
    "pkg/new.py": b"",
    "model/model.pkl": pickle.dumps(fractions.Fraction(1, 2), protocol=3),
    ".data/0.storage": bytes(16),
    ".data/1.storage": bytes(range(8)),
}


def archive(tmp_path: Path, name: str, records: dict[str, bytes]) -> str:
    path = tmp_path / name
    with path.open("wb") as out:
        write_records(out, records, name.partition(".")[0])
    return str(path)


def test_diff_of_a_package_with_itself_finds_nothing_and_exits_0(
    package: Package, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diff", str(package.path), str(package.path)]) == 0
    assert "hold the same modules, pickles and tensors" in capsys.readouterr().out


def test_diff_lists_changes_by_section_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = archive(tmp_path, "old.pt", BASE), archive(tmp_path, "new.pt", CHANGED)
    assert main(["diff", old, new]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "modules:",
        "  + pkg.new",
        "  - pkg.gone",
        "  ~ pkg.edited  (+2 -1 lines)",
        "pickles:",
        "  ~ model/model.pkl  (globals +fractions.Fraction -collections.OrderedDict)",
        "storages:",
        "  ~ .data/0.storage  (8 -> 16 bytes)",
        "  ~ .data/1.storage  (contents differ, 8 bytes)",
        "extern modules:",
        "  + fractions",
    ]


def test_diff_json_lists_each_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = archive(tmp_path, "old.pt", BASE), archive(tmp_path, "new.pt", CHANGED)
    assert main(["diff", old, new, "--json"]) == 1
    changes = json.loads(capsys.readouterr().out)["changes"]
    assert {
        "section": "storages",
        "change": "changed",
        "subject": ".data/0.storage",
        "detail": "8 -> 16 bytes",
    } in changes


def test_diff_reports_a_changed_resource(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edited = {**BASE, "notes/readme.txt": b"goodbye"}
    old, new = archive(tmp_path, "old.pt", BASE), archive(tmp_path, "new.pt", edited)
    assert main(["diff", old, new]) == 1
    assert capsys.readouterr().out.splitlines() == ["resources:", "  ~ notes/readme.txt"]
