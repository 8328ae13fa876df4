"""``torch.export.ExportedProgram`` in packages (torch.package cannot save them):
written with ``torch.export.save`` as a ``.data/exported/<id>.pt2`` record and
loaded back with ``torch.export.load`` through ``torchpkg._exported``."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torchpkg import PackageExporter, PackageImporter  # noqa: E402


class Affine(torch.nn.Module):
    """Exported programs keep no reference to the class: it can live here."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        self.register_buffer("offset", torch.arange(2.0))

    def forward(self, x: Any) -> Any:
        return torch.relu(self.linear(x)) + self.offset


X = torch.arange(12.0).reshape(4, 3) / 7


@pytest.fixture(scope="module")
def program() -> Any:
    """Exporting takes a second: one program serves the whole file (loads never change it)."""
    return torch.export.export(Affine(), (X,))


def package(obj: Any) -> bytes:
    """No rules: an exported program needs no packaged code, and torchpkg is extern."""
    out = io.BytesIO()
    with PackageExporter(out) as exporter:
        exporter.save_pickle("obj", "obj.pkl", obj)
    return out.getvalue()


def load(data: bytes) -> Any:
    return PackageImporter(io.BytesIO(data)).load_pickle("obj", "obj.pkl")


def test_an_exported_program_round_trips_and_its_module_gives_equal_outputs(
    program: Any,
) -> None:
    loaded = load(package(program))
    assert isinstance(loaded, torch.export.ExportedProgram)
    assert torch.equal(loaded.module()(X), program.module()(X))


def test_the_loaded_program_keeps_its_weights_and_signature(program: Any) -> None:
    loaded = load(package(program))
    assert loaded.state_dict.keys() == program.state_dict.keys()
    for name, tensor in program.state_dict.items():
        assert torch.equal(loaded.state_dict[name], tensor), name
    assert loaded.graph_signature.user_inputs == program.graph_signature.user_inputs


def test_a_program_with_a_dynamic_dimension_runs_on_other_sizes() -> None:
    batch = torch.export.Dim("batch")
    program = torch.export.export(Affine(), (X,), dynamic_shapes={"x": {0: batch}})
    bigger = torch.arange(21.0).reshape(7, 3)
    assert torch.equal(load(package(program)).module()(bigger), program.module()(bigger))


def test_an_exported_program_is_stored_as_a_pt2_record_torch_export_can_read(
    program: Any,
) -> None:
    with zipfile.ZipFile(io.BytesIO(package(program))) as zf:
        record = zf.read("archive/.data/exported/0.pt2")
    direct = torch.export.load(io.BytesIO(record))
    assert torch.equal(direct.module()(X), program.module()(X))


def test_an_exported_program_pickled_twice_loads_as_one_object(program: Any) -> None:
    first, second = load(package([program, program]))
    assert first is second


def test_an_exported_program_travels_with_other_objects(program: Any) -> None:
    loaded = load(package({"program": program, "example": X, "name": "affine"}))
    assert torch.equal(loaded["program"].module()(loaded["example"]), program.module()(X))
    assert loaded["name"] == "affine"


def test_torchpkg_is_an_extern_module_of_a_package_with_an_exported_program(
    program: Any,
) -> None:
    """The loader, torchpkg._exported, comes from the loading environment."""
    out = io.BytesIO()
    with PackageExporter(out) as exporter:
        exporter.save_pickle("obj", "obj.pkl", program)
        externs = exporter.externed_modules()
    assert "torchpkg._exported" in externs
    assert "torchpkg._exported" in PackageImporter(io.BytesIO(out.getvalue())).extern_modules
