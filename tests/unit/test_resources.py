"""importlib.resources over archive records: ArchiveTraversable and PackageResourceReader."""

from __future__ import annotations

import gc
import importlib.abc
import importlib.resources
import os
import sys
import types
import weakref
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import PurePosixPath

import pytest

from torchpkg.errors import RecordNotFoundError
from torchpkg.resources import ArchiveTraversable, PackageResourceReader, ResourceNotFoundError

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:
    from importlib.abc import Traversable


class FakeSource:
    """An in-memory RecordSource that counts how often its record list is read."""

    def __init__(self, records: dict[str, bytes]) -> None:
        self._records = records
        self.records_calls = 0

    def records(self) -> Sequence[str]:
        self.records_calls += 1
        return list(self._records)

    def has_record(self, name: str) -> bool:
        return name in self._records

    def read(self, name: str) -> bytes:
        return self._records[name]

    def __repr__(self) -> str:
        return "FakeSource()"


RECORDS = {
    "my_pkg/__init__.py": b"",
    "my_pkg/a.txt": "héllo\r\nwörld\n".encode(),
    "my_pkg/latin.txt": "café".encode("latin-1"),
    "my_pkg/sub/__init__.py": b"",
    "my_pkg/sub/b.bin": b"\x00\x01\x02",
    "my_pkg/sub/deep/c.txt": b"c",
    "top.py": b"X = 1\n",
}


@pytest.fixture
def source() -> FakeSource:
    return FakeSource(dict(RECORDS))


@pytest.fixture
def pkg(source: FakeSource) -> ArchiveTraversable:
    return PackageResourceReader(source, "my_pkg").files()


class _Loader(importlib.abc.Loader):
    """The part of the package importer's loader that importlib.resources uses."""

    def __init__(self, source: FakeSource) -> None:
        self.source = source
        self.requested: list[str] = []

    def get_resource_reader(self, fullname: str) -> PackageResourceReader:
        self.requested.append(fullname)
        return PackageResourceReader(self.source, fullname.replace(".", "/"))


@pytest.fixture
def loader(source: FakeSource) -> _Loader:
    return _Loader(source)


@pytest.fixture
def module(loader: _Loader) -> types.ModuleType:
    """A package module ``my_pkg`` whose loader serves resources from ``source``."""
    mod = types.ModuleType("my_pkg")
    mod.__spec__ = ModuleSpec("my_pkg", loader, is_package=True)
    return mod


# -- traversal ---------------------------------------------------------------------------


def test_files_is_the_package_directory(pkg: ArchiveTraversable) -> None:
    assert pkg.name == "my_pkg"
    assert pkg.is_dir()
    assert not pkg.is_file()


def test_files_of_the_root_package_lists_top_level_entries(source: FakeSource) -> None:
    root = PackageResourceReader(source, "").files()
    assert root.name == ""
    assert [child.name for child in root.iterdir()] == ["my_pkg", "top.py"]


def test_traversable_is_an_importlib_traversable(pkg: ArchiveTraversable) -> None:
    assert isinstance(pkg, Traversable)


def test_iterdir_lists_direct_children_once_each_in_name_order(
    pkg: ArchiveTraversable,
) -> None:
    assert [child.name for child in pkg.iterdir()] == ["__init__.py", "a.txt", "latin.txt", "sub"]


def test_iterdir_children_know_whether_they_are_files_or_dirs(pkg: ArchiveTraversable) -> None:
    kinds = {
        child.name: (child.is_file(), child.is_dir()) for child in pkg.joinpath("sub").iterdir()
    }
    assert kinds == {"__init__.py": (True, False), "b.bin": (True, False), "deep": (False, True)}


def test_iterdir_on_a_file_raises_not_a_directory(pkg: ArchiveTraversable) -> None:
    with pytest.raises(NotADirectoryError) as info:
        pkg.joinpath("a.txt").iterdir()
    assert info.value.filename == "my_pkg/a.txt"


def test_iterdir_on_a_missing_path_raises_file_not_found(pkg: ArchiveTraversable) -> None:
    with pytest.raises(FileNotFoundError) as info:
        pkg.joinpath("nope").iterdir()
    assert info.value.filename == "my_pkg/nope"


def test_directories_exist_implicitly_as_record_prefixes(pkg: ArchiveTraversable) -> None:
    assert pkg.joinpath("sub/deep").is_dir()


def test_missing_path_is_neither_file_nor_dir(pkg: ArchiveTraversable) -> None:
    missing = pkg.joinpath("missing.txt")
    assert not missing.is_file()
    assert not missing.is_dir()


def test_record_that_prefixes_other_records_is_a_directory() -> None:
    root = ArchiveTraversable(FakeSource({"a": b"file", "a/b": b"child"}))
    assert root.joinpath("a").is_dir()
    assert not root.joinpath("a").is_file()
    with pytest.raises(IsADirectoryError):
        root.joinpath("a").read_bytes()


def test_empty_named_directory_is_distinct_from_the_root() -> None:
    # torch.package writes save_text("", "top.txt", ...) as the record "/top.txt".
    root = ArchiveTraversable(FakeSource({"/top.txt": b"t", "x.txt": b"x"}))
    empty_dir = next(child for child in root.iterdir() if child.name == "")
    assert empty_dir != root
    assert [child.read_bytes() for child in empty_dir.iterdir()] == [b"t"]


def test_joinpath_accepts_several_descendants(pkg: ArchiveTraversable) -> None:
    assert pkg.joinpath("sub", "deep", "c.txt").read_bytes() == b"c"


def test_joinpath_splits_slash_separated_descendants(pkg: ArchiveTraversable) -> None:
    assert pkg.joinpath("sub/deep/c.txt") == pkg.joinpath("sub", "deep", "c.txt")


def test_joinpath_drops_empty_and_dot_segments(pkg: ArchiveTraversable) -> None:
    assert pkg.joinpath("sub//./deep/", "") == pkg.joinpath("sub", "deep")


def test_joinpath_accepts_path_like_descendants(pkg: ArchiveTraversable) -> None:
    assert pkg.joinpath(PurePosixPath("sub/b.bin")).read_bytes() == b"\x00\x01\x02"


def test_joinpath_without_descendants_is_the_same_path(pkg: ArchiveTraversable) -> None:
    assert pkg.joinpath() == pkg


def test_truediv_joins_a_child(pkg: ArchiveTraversable) -> None:
    assert (pkg / "sub" / "b.bin") == pkg.joinpath("sub", "b.bin")


# -- reading -----------------------------------------------------------------------------


def test_read_bytes_returns_the_record(pkg: ArchiveTraversable) -> None:
    assert pkg.joinpath("sub/b.bin").read_bytes() == b"\x00\x01\x02"


def test_read_text_decodes_utf8_by_default(pkg: ArchiveTraversable) -> None:
    assert pkg.joinpath("a.txt").read_text() == "héllo\nwörld\n"


def test_read_text_honours_encoding(pkg: ArchiveTraversable) -> None:
    assert pkg.joinpath("latin.txt").read_text(encoding="latin-1") == "café"


def test_read_text_honours_errors(pkg: ArchiveTraversable) -> None:
    assert pkg.joinpath("latin.txt").read_text(errors="replace") == "caf\ufffd"


def test_open_text_translates_newlines_by_default(pkg: ArchiveTraversable) -> None:
    with pkg.joinpath("a.txt").open() as stream:
        assert stream.read() == "héllo\nwörld\n"


def test_open_text_honours_newline(pkg: ArchiveTraversable) -> None:
    with pkg.joinpath("a.txt").open("r", newline="") as stream:
        assert stream.readlines() == ["héllo\r\n", "wörld\n"]


def test_open_text_accepts_positional_encoding_and_errors(pkg: ArchiveTraversable) -> None:
    with pkg.joinpath("a.txt").open("r", "ascii", "ignore") as stream:  # type: ignore[call-overload]
        assert stream.read() == "hllo\nwrld\n"


def test_open_rb_returns_a_binary_stream(pkg: ArchiveTraversable) -> None:
    with pkg.joinpath("sub/b.bin").open("rb") as stream:
        assert stream.read() == b"\x00\x01\x02"


def test_open_rb_rejects_text_arguments(pkg: ArchiveTraversable) -> None:
    with pytest.raises(ValueError, match="binary mode"):
        pkg.joinpath("sub/b.bin").open("rb", encoding="utf-8")  # type: ignore[call-overload]


def test_open_rejects_write_modes(pkg: ArchiveTraversable) -> None:
    with pytest.raises(ValueError, match="invalid mode 'w'"):
        pkg.joinpath("a.txt").open("w")  # type: ignore[call-overload]


def test_open_missing_file_raises_file_not_found_naming_the_path(
    pkg: ArchiveTraversable,
) -> None:
    with pytest.raises(FileNotFoundError) as info:
        pkg.joinpath("missing.txt").open()
    assert info.value.filename == "my_pkg/missing.txt"


def test_open_directory_raises_is_a_directory(pkg: ArchiveTraversable) -> None:
    with pytest.raises(IsADirectoryError) as info:
        pkg.joinpath("sub").open("rb")
    assert info.value.filename == "my_pkg/sub"


# -- identity ----------------------------------------------------------------------------


def test_paths_to_the_same_record_of_one_source_are_equal(source: FakeSource) -> None:
    first = PackageResourceReader(source, "my_pkg").files().joinpath("a.txt")
    second = ArchiveTraversable(source, "my_pkg", "a.txt")
    assert first == second
    assert hash(first) == hash(second)


def test_paths_in_different_sources_are_not_equal() -> None:
    first = ArchiveTraversable(FakeSource(dict(RECORDS)), "top.py")
    second = ArchiveTraversable(FakeSource(dict(RECORDS)), "top.py")
    assert first != second


def test_repr_names_the_source_and_the_path(pkg: ArchiveTraversable) -> None:
    assert repr(pkg / "a.txt") == "ArchiveTraversable(FakeSource(), 'my_pkg/a.txt')"


def test_directory_index_is_built_once_per_source(source: FakeSource) -> None:
    for package_dir in ("my_pkg", "my_pkg/sub", ""):
        reader = PackageResourceReader(source, package_dir)
        list(reader.files().iterdir())
    assert source.records_calls == 1


def test_cached_index_does_not_keep_the_source_alive() -> None:
    source = FakeSource({"a.txt": b"a"})
    list(PackageResourceReader(source, "").files().iterdir())
    ref = weakref.ref(source)
    del source
    gc.collect()
    assert ref() is None


# -- legacy reader methods (from TraversableResources) -----------------------------------


def test_open_resource_opens_binary(source: FakeSource) -> None:
    with PackageResourceReader(source, "my_pkg/sub").open_resource("b.bin") as stream:
        assert stream.read() == b"\x00\x01\x02"


def test_is_resource_is_true_only_for_files(source: FakeSource) -> None:
    reader = PackageResourceReader(source, "my_pkg")
    assert reader.is_resource("a.txt")
    assert not reader.is_resource("sub")
    assert not reader.is_resource("missing.txt")


def test_contents_lists_child_names(source: FakeSource) -> None:
    reader = PackageResourceReader(source, "my_pkg/sub")
    assert sorted(reader.contents()) == ["__init__.py", "b.bin", "deep"]


def test_resource_path_raises_file_not_found(source: FakeSource) -> None:
    # Archive members have no file-system path; importlib then falls back to a copy.
    with pytest.raises(FileNotFoundError):
        PackageResourceReader(source, "my_pkg").resource_path("a.txt")


@pytest.mark.parametrize("resource", ["missing.txt", "sub"], ids=["missing", "directory"])
def test_open_resource_of_a_non_file_is_file_not_found_and_record_not_found(
    source: FakeSource, resource: str
) -> None:
    reader = PackageResourceReader(source, "my_pkg", archive="model.pt")
    with pytest.raises(ResourceNotFoundError, match=f"model.pt has no record 'my_pkg/{resource}'"):
        reader.open_resource(resource)
    assert issubclass(ResourceNotFoundError, FileNotFoundError)
    assert issubclass(ResourceNotFoundError, RecordNotFoundError)


def test_resource_path_in_a_folder_is_the_resource_file_of_a_subpackage(
    source: FakeSource,
) -> None:
    reader = PackageResourceReader(source, "my_pkg/sub", folder="/unzipped")
    assert reader.resource_path("b.bin") == os.path.join("/unzipped", "my_pkg", "sub", "b.bin")


def test_resource_path_in_a_folder_is_file_not_found_for_a_directory(source: FakeSource) -> None:
    with pytest.raises(FileNotFoundError):
        PackageResourceReader(source, "my_pkg", folder="/unzipped").resource_path("sub")


# -- importlib.resources through a module's loader ---------------------------------------


def test_importlib_files_reads_through_the_loader(
    module: types.ModuleType, loader: _Loader
) -> None:
    assert importlib.resources.files(module).joinpath("a.txt").read_text() == "héllo\nwörld\n"
    assert loader.requested == ["my_pkg"]


def test_importlib_files_traverses_subdirectories(module: types.ModuleType) -> None:
    assert (importlib.resources.files(module) / "sub" / "deep" / "c.txt").read_bytes() == b"c"


def test_importlib_as_file_copies_a_record_to_a_real_file(module: types.ModuleType) -> None:
    with importlib.resources.as_file(importlib.resources.files(module) / "sub" / "b.bin") as path:
        assert path.read_bytes() == b"\x00\x01\x02"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="as_file() takes directories from 3.12")
def test_importlib_as_file_copies_a_directory(module: types.ModuleType) -> None:
    with importlib.resources.as_file(importlib.resources.files(module) / "sub") as path:
        assert (path / "deep" / "c.txt").read_bytes() == b"c"


def test_importlib_legacy_read_text(module: types.ModuleType) -> None:
    # Deprecated on 3.11 and 3.12; un-deprecated (with a new signature) on 3.13.
    if (3, 11) <= sys.version_info < (3, 13):
        with pytest.deprecated_call():
            text = importlib.resources.read_text(module, "a.txt")
    else:
        text = importlib.resources.read_text(module, "a.txt")
    assert text == "héllo\nwörld\n"


def test_importlib_legacy_is_resource(module: types.ModuleType) -> None:
    if (3, 11) <= sys.version_info < (3, 13):
        with pytest.deprecated_call():
            found = importlib.resources.is_resource(module, "a.txt")
    else:
        found = importlib.resources.is_resource(module, "a.txt")
    assert found
