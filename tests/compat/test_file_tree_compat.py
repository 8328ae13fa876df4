"""``str(directory_from_records(...))`` against ``torch.package``'s ``file_structure()``.

Archives are written by ``torch.package``; their record list is read back with
``zipfile`` and fed to torchpkg, and both trees must render byte for byte alike.
Then the same export is written by each tool, and each tool's importer shows it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

# The defining modules: torch.package's __init__ re-exports without __all__ for mypy.
from torch.package.package_exporter import PackageExporter  # noqa: E402
from torch.package.package_importer import PackageImporter  # noqa: E402

import torchpkg  # noqa: E402
from torchpkg.file_tree import directory_from_records  # noqa: E402
from torchpkg.glob import GlobPattern  # noqa: E402


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive with nested packages, resources, pickled tensors and .data files."""
    path = tmp_path_factory.mktemp("compat") / "my_package.pt"
    with PackageExporter(str(path)) as exporter:
        exporter.save_source_string("alpha", "VALUE = 1\n", is_package=True)
        exporter.save_source_string("alpha.utils", "def f():\n    return 1\n")
        exporter.save_source_string("alpha.beta.gamma", "X = 2\n")
        exporter.save_source_string("zeta", "Y = 3\n")
        exporter.save_pickle("models", "model_1.pkl", {"w": torch.ones(2), "b": torch.zeros(3)})
        exporter.save_text("models/sub", "notes.txt", "hello")
        exporter.save_text("models.sub.deep", "config.json", "{}")
        exporter.save_binary("assets", "Upper.bin", b"\x00")
        exporter.save_binary("assets", "_under.bin", b"\x01")
        exporter.save_binary("assets", "lower.bin", b"\x02")
        exporter.save_binary("assets", "ünïcode.bin", b"\x03")
        exporter.save_text("", "top_level.txt", "an empty package writes '/top_level.txt'")
    return path


def _records(path: Path) -> list[str]:
    """The archive's records without the top-level ``<archive stem>/`` folder."""
    with zipfile.ZipFile(path) as zf:
        return [name.split("/", 1)[1] for name in zf.namelist()]


def test_archive_has_the_records_the_cases_rely_on(archive: Path) -> None:
    records = _records(archive)
    assert {".data/version", "alpha/__init__.py", "/top_level.txt"} <= set(records)
    assert any(r.startswith(".data/") and r.endswith(".storage") for r in records)


@pytest.mark.parametrize(
    ("include", "exclude"),
    [
        ("**", ()),
        (["**/utils.py", "**/*.pkl"], "**/*.storage"),
        ("models/**", ()),
        ("models/**", "models/sub/**"),
        ("models/*", ()),
        (".data/**", ["**/*.storage"]),
        ("**", ["alpha/**", ".data/**"]),
        ("*", ()),
        ("*/*.bin", ()),
        ("assets/*e*", "assets/u*"),
        ("**/*.py", "alpha/beta/**"),
        ("no/such/**", ()),
        ("*/top_level.txt", ()),
        ([], ()),
    ],
)
def test_rendering_matches_torch_package(
    archive: Path, include: GlobPattern, exclude: GlobPattern
) -> None:
    importer = PackageImporter(str(archive))
    expected = str(importer.file_structure(include=include, exclude=exclude))
    ours = directory_from_records(str(archive), _records(archive), include, exclude)
    assert str(ours) == expected


def test_default_filters_match_torch_package(archive: Path) -> None:
    expected = str(PackageImporter(str(archive)).file_structure())
    assert str(directory_from_records(str(archive), _records(archive))) == expected


@pytest.mark.parametrize(
    "filename",
    [
        "alpha/utils.py",
        "alpha/beta/gamma.py",
        "models/sub/deep/config.json",
        "assets/ünïcode.bin",
        "byteorder",
        "missing.py",
        "alpha/utils.py/x",
    ],
)
def test_has_file_agrees_with_torch_package_on_files(archive: Path, filename: str) -> None:
    expected = PackageImporter(str(archive)).file_structure().has_file(filename)
    ours = directory_from_records(str(archive), _records(archive)).has_file(filename)
    assert ours == expected


@pytest.mark.parametrize("directory", ["alpha", "alpha/beta", "models/sub", ".data"])
def test_has_file_agrees_with_torch_package_on_directories(archive: Path, directory: str) -> None:
    expected = PackageImporter(str(archive)).file_structure().has_file(directory)
    assert directory_from_records(str(archive), _records(archive)).has_file(directory) == expected


def test_subdirectory_renders_like_torch_package(archive: Path) -> None:
    expected = PackageImporter(str(archive)).file_structure().children["models"]
    ours = directory_from_records(str(archive), _records(archive)).children["models"]
    assert str(ours) == str(expected)


# --- the same export written by each tool ------------------------------------------------------


def _export_with_both(tmp_path: Path) -> tuple[Path, Path]:
    """The same export written by torch.package and by torchpkg: (theirs, ours)."""
    paths = (tmp_path / "theirs" / "my_package.pt", tmp_path / "ours" / "my_package.pt")
    for exporter_cls, path in zip((PackageExporter, torchpkg.PackageExporter), paths, strict=True):
        path.parent.mkdir()
        with exporter_cls(str(path)) as exporter:
            exporter.extern("json")
            exporter.save_source_string("alpha", "import json\n", is_package=True)
            exporter.save_pickle("models", "model_1.pkl", {"w": torch.ones(2)})
            exporter.save_text("notes", "readme.txt", "hello")
    return paths


def _tree_below_the_name(tree: object) -> str:
    """The rendered tree without its first line, which names the archive's path."""
    return str(tree).split("\n", 1)[1]


def test_the_same_export_shows_the_same_tree_from_both_tools(tmp_path: Path) -> None:
    """torchpkg's own records (``.data/torchpkg/``) are private metadata: hidden."""
    theirs, ours = _export_with_both(tmp_path)
    with torchpkg.PackageImporter(ours) as importer:
        our_tree = importer.file_structure()
    assert _tree_below_the_name(our_tree) == _tree_below_the_name(
        PackageImporter(str(theirs)).file_structure()
    )
    assert not our_tree.has_file(".data/torchpkg")


def test_private_records_show_when_asked_as_torch_package_shows_every_record(
    tmp_path: Path,
) -> None:
    _, ours = _export_with_both(tmp_path)
    with torchpkg.PackageImporter(ours) as importer:
        our_tree = importer.file_structure(include_private=True)
    assert our_tree.has_file(".data/torchpkg/environment.json")
    assert _tree_below_the_name(our_tree) == _tree_below_the_name(
        PackageImporter(str(ours)).file_structure()
    )
