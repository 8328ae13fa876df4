"""``PackageImporter.get_resource_reader``: importlib's ``ResourceReader`` protocol
over a package's resources, answering as torch.package's reader does.

Each test runs the same code against both tools' importers, opened on the same
kind of package: ``app`` with ``model.py``, the resources ``a.txt`` and
``b.bin``, and a subpackage ``app.sub`` with ``c.txt``; ``json`` is extern.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.package as tp  # noqa: E402

import torchpkg  # noqa: E402

SourceTree = Callable[..., str]  # the `source_tree` fixture of tests/conftest.py
TOOLS = {
    "torch.package": (tp.PackageExporter, tp.PackageImporter),
    "torchpkg": (torchpkg.PackageExporter, torchpkg.PackageImporter),
}


@pytest.fixture(params=list(TOOLS))
def tool(request: pytest.FixtureRequest) -> tuple[type[Any], type[Any]]:
    return TOOLS[request.param]


@pytest.fixture
def app(source_tree: SourceTree) -> str:
    return source_tree(
        {
            "__init__.py": "",
            "model.py": "import json\n",
            "sub/__init__.py": "",
        }
    )


@pytest.fixture
def archive(tool: tuple[type[Any], type[Any]], app: str) -> bytes:
    exporter_cls, _ = tool
    buffer = io.BytesIO()
    with exporter_cls(buffer) as exporter:
        exporter.intern(f"{app}.**")
        exporter.extern("json")
        exporter.save_module(f"{app}.model")
        exporter.save_module(f"{app}.sub")
        exporter.save_text(app, "a.txt", "hello")
        exporter.save_binary(app, "b.bin", b"\x00\x01")
        exporter.save_text(f"{app}.sub", "c.txt", "c")
    return buffer.getvalue()


@pytest.fixture
def importer(tool: tuple[type[Any], type[Any]], archive: bytes) -> Iterator[Any]:
    _, importer_cls = tool
    opened = importer_cls(io.BytesIO(archive))
    yield opened
    if isinstance(opened, torchpkg.PackageImporter):
        opened.close()


def test_a_packaged_package_has_a_resource_reader(importer: Any, app: str) -> None:
    assert importer.get_resource_reader(app) is not None


def test_the_reader_is_found_by_the_mangled_name_too(importer: Any, app: str) -> None:
    mangled = importer.import_module(app).__name__
    assert importer.get_resource_reader(mangled).open_resource("a.txt").read() == b"hello"


def test_a_module_that_is_not_a_package_has_no_reader_but_a_type_error(
    importer: Any, app: str
) -> None:
    with pytest.raises(TypeError, match="is not a package"):
        importer.get_resource_reader(f"{app}.model")


@pytest.mark.parametrize("name", ["not_in_the_package", "json"], ids=["missing", "extern"])
def test_a_name_the_package_does_not_serve_has_no_reader(importer: Any, name: str) -> None:
    assert importer.get_resource_reader(name) is None


def test_open_resource_reads_a_resource_as_a_bytes_io(importer: Any, app: str) -> None:
    stream = importer.get_resource_reader(app).open_resource("b.bin")
    assert isinstance(stream, io.BytesIO)
    assert stream.read() == b"\x00\x01"


def test_a_subpackage_reader_reads_the_subpackage_resources(importer: Any, app: str) -> None:
    assert importer.get_resource_reader(f"{app}.sub").open_resource("c.txt").read() == b"c"


@pytest.mark.parametrize("resource", ["missing.txt", "sub"], ids=["missing", "directory"])
def test_open_resource_of_something_that_is_not_a_resource_is_a_runtime_error(
    importer: Any, app: str, resource: str
) -> None:
    with pytest.raises(RuntimeError):
        importer.get_resource_reader(app).open_resource(resource)


@pytest.mark.parametrize(
    ("resource", "expected"),
    [("a.txt", True), ("model.py", True), ("missing.txt", False), ("sub", False)],
)
def test_is_resource_is_true_for_the_package_files_only(
    importer: Any, app: str, resource: str, expected: bool
) -> None:
    assert importer.get_resource_reader(app).is_resource(resource) is expected


def test_contents_lists_the_package_files_and_subdirectories(importer: Any, app: str) -> None:
    contents = importer.get_resource_reader(app).contents()
    assert sorted(contents) == ["a.txt", "b.bin", "model.py", "sub"]


def test_a_zipped_resource_has_no_resource_path(importer: Any, app: str) -> None:
    with pytest.raises(FileNotFoundError):
        importer.get_resource_reader(app).resource_path("a.txt")


def test_a_resource_of_an_unzipped_package_has_its_file_as_resource_path(
    tool: tuple[type[Any], type[Any]], archive: bytes, app: str, tmp_path: Path
) -> None:
    _, importer_cls = tool
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        zipped.extractall(tmp_path / "unzipped")
    # The writer puts every record under one folder.
    (folder,) = (tmp_path / "unzipped").iterdir()
    importer = importer_cls(str(folder))
    reader = importer.get_resource_reader(app)
    assert reader.resource_path("a.txt") == os.path.join(folder, app, "a.txt")
    with pytest.raises(FileNotFoundError):
        reader.resource_path("missing.txt")
    if isinstance(importer, torchpkg.PackageImporter):
        importer.close()
