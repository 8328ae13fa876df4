"""The default policy by provenance: which modules a roundtrip interns and which it externs."""

from __future__ import annotations

import importlib
import sys
import zipfile
from pathlib import Path

import pytest

from torchpkg.policy import Action
from torchpkg.provenance import Origin, ProvenancePolicy


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path; modules imported from it are forgotten afterwards."""
    before = set(sys.modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]
    importlib.invalidate_caches()


def test_code_under_the_repository_root_is_interned(on_path: Path) -> None:
    write(on_path, {"repo_pkg/__init__.py": "", "repo_pkg/model.py": "X = 1\n"})
    policy = ProvenancePolicy([on_path])
    assert policy.provenance("repo_pkg.model").origin is Origin.REPOSITORY
    assert policy("repo_pkg.model") is Action.INTERN


def test_code_that_nothing_installs_is_interned_outside_the_root(
    on_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    write(on_path, {"loose_helpers.py": "X = 1\n"})
    policy = ProvenancePolicy([tmp_path_factory.mktemp("elsewhere")])
    assert policy.provenance("loose_helpers").origin is Origin.UNINSTALLED
    assert policy("loose_helpers") is Action.INTERN


def test_an_installed_distribution_is_extern() -> None:
    assert ProvenancePolicy()("pytest") is Action.EXTERN
    assert ProvenancePolicy().provenance("_pytest.main").origin is Origin.DISTRIBUTION


def test_the_standard_library_is_extern() -> None:
    provenance = ProvenancePolicy().provenance("json.decoder")
    assert provenance.origin is Origin.STANDARD_LIBRARY
    assert provenance.origin.action is Action.EXTERN


def test_a_package_in_site_packages_without_metadata_is_extern(on_path: Path) -> None:
    site = on_path / "venv" / "site-packages"
    write(site, {"nometa_pkg/__init__.py": "X = 1\n"})
    sys.path.insert(0, str(site))
    try:
        policy = ProvenancePolicy([on_path])  # even inside the repository's folder
        assert policy.provenance("nometa_pkg").origin is Origin.DISTRIBUTION
        assert policy("nometa_pkg") is Action.EXTERN
    finally:
        sys.path.remove(str(site))


def test_an_editable_install_of_the_project_itself_is_interned() -> None:
    """torchpkg is installed editable from this repository: its source is under the root."""
    root = Path(__file__).resolve().parents[2]
    assert ProvenancePolicy([root]).provenance("torchpkg.glob").origin is Origin.REPOSITORY


def test_an_editable_install_outside_the_repository_is_extern(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The same editable distribution, seen from another repository."""
    elsewhere = tmp_path_factory.mktemp("other_repo")
    assert ProvenancePolicy([elsewhere]).provenance("torchpkg.glob").origin is Origin.DISTRIBUTION


def test_a_namespace_package_is_decided_by_its_folders(on_path: Path) -> None:
    write(on_path, {"ns_pkg/part.py": "X = 1\n"})
    policy = ProvenancePolicy([on_path])
    assert policy("ns_pkg") is Action.INTERN
    assert policy("ns_pkg.part") is Action.INTERN


def test_a_module_from_a_zip_file_in_the_repository_is_interned(on_path: Path) -> None:
    archive = on_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("zipped_mod.py", "X = 1\n")
    sys.path.insert(0, str(archive))
    try:
        provenance = ProvenancePolicy([on_path]).provenance("zipped_mod")
        assert provenance.origin is Origin.REPOSITORY
        assert provenance.location is not None
        assert "bundle.zip" in provenance.location
    finally:
        sys.path.remove(str(archive))


def test_a_c_extension_is_extern_wherever_it_lives() -> None:
    pytest.importorskip("numpy")
    provenance = ProvenancePolicy().provenance("numpy._core._multiarray_umath")
    assert provenance.origin in (Origin.NO_SOURCE, Origin.DISTRIBUTION)
    assert provenance.origin.action is Action.EXTERN


def test_a_module_that_does_not_exist_gets_no_decision() -> None:
    assert ProvenancePolicy()("no_such_module_anywhere") is None
