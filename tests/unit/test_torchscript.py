"""TorchScript modules in packages: the opt-in gate, scripted and traced modules
as objects and as submodules, shared storages, map_location, and the records
they leave in the archive (torch.package's layout)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torchpkg.exporter  # noqa: E402
from _torch_models import SourceTree, X, import_models, load, package  # noqa: E402
from torchpkg import PackageExporter, PackageImporter, sys_importer  # noqa: E402


@pytest.fixture
def models(source_tree: SourceTree) -> ModuleType:
    """A throwaway module with the plain models (interned by ``package``)."""
    return import_models(source_tree)


@pytest.fixture
def ungated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torchpkg.exporter, "_gate_torchscript_serialization", False)


def records(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [name.partition("/")[2] for name in zf.namelist()]


def assert_same_state(loaded: Any, original: Any) -> None:
    expected = original.state_dict()
    got = loaded.state_dict()
    assert got.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name


# --- the gate -------------------------------------------------------------------


def test_saving_a_script_module_is_refused_while_the_gate_is_on(models: ModuleType) -> None:
    scripted = torch.jit.script(models.Affine())
    with pytest.raises(RuntimeError, match=r"_gate_torchscript_serialization` to False"):
        package(scripted, models)


def test_the_gate_refuses_a_script_module_nested_in_a_plain_module(models: ModuleType) -> None:
    holder = models.Holder(torch.jit.script(models.Affine()))
    with pytest.raises(RuntimeError, match="_gate_torchscript_serialization"):
        package(holder, models)


def test_a_refused_script_module_leaves_no_archive_behind(
    models: ModuleType, tmp_path: Path
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(RuntimeError, match="_gate_torchscript_serialization"):
        package(torch.jit.script(models.Affine()), models, folder / "model.pt")
    assert list(folder.iterdir()) == []


# --- round trips ----------------------------------------------------------------


@pytest.mark.usefixtures("ungated")
def test_a_scripted_module_round_trips_with_equal_outputs(models: ModuleType) -> None:
    scripted = torch.jit.script(models.Affine())
    loaded = load(package(scripted, models))
    assert isinstance(loaded, torch.jit.RecursiveScriptModule)
    assert torch.equal(loaded(X), scripted(X))
    assert_same_state(loaded, scripted)


@pytest.mark.usefixtures("ungated")
def test_a_traced_module_round_trips_with_equal_outputs(models: ModuleType) -> None:
    traced = torch.jit.trace(models.Affine(), (X,))
    loaded = load(package(traced, models))
    assert isinstance(loaded, torch.jit.RecursiveScriptModule)
    assert torch.equal(loaded(X), traced(X))


@pytest.mark.usefixtures("ungated")
def test_a_scripted_submodule_of_a_plain_module_round_trips(models: ModuleType) -> None:
    holder = models.Holder(torch.jit.script(models.Affine()))
    loaded = load(package(holder, models))
    assert type(loaded).__name__ == "Holder"
    assert isinstance(loaded.inner, torch.jit.RecursiveScriptModule)
    assert torch.equal(loaded(X), holder(X))
    assert_same_state(loaded, holder)


@pytest.mark.usefixtures("ungated")
def test_a_module_from_jit_load_nested_in_a_plain_module_round_trips(models: ModuleType) -> None:
    saved = io.BytesIO()
    torch.jit.save(torch.jit.script(models.Affine()), saved)
    saved.seek(0)
    holder = models.Holder(torch.jit.load(saved))
    loaded = load(package(holder, models))
    assert torch.equal(loaded(X), holder(X))


@pytest.mark.usefixtures("ungated")
def test_a_script_module_pickled_twice_loads_as_one_object(models: ModuleType) -> None:
    scripted = torch.jit.script(models.Affine())
    first, second = load(package([scripted, scripted], models))
    assert first is second


@pytest.mark.usefixtures("ungated")
def test_scripted_and_traced_modules_share_one_archive(models: ModuleType) -> None:
    scripted = torch.jit.script(models.Affine())
    traced = torch.jit.trace(models.Affine(), (X,))
    loaded = load(package({"scripted": scripted, "traced": traced}, models))
    assert torch.equal(loaded["scripted"](X), scripted(X))
    assert torch.equal(loaded["traced"](X), traced(X))


@pytest.mark.usefixtures("ungated")
@pytest.mark.parametrize("tensor_first", [True, False], ids=["tensor-first", "script-first"])
def test_a_storage_shared_by_a_script_module_and_a_pickled_tensor_stays_shared(
    models: ModuleType, tensor_first: bool
) -> None:
    """One storage record whichever is pickled first, and one storage after loading."""
    scripted = torch.jit.script(models.Affine())
    weight = scripted.linear.weight.detach()
    obj = {"weight": weight, "model": scripted}
    if not tensor_first:
        obj = {"model": scripted, "weight": weight}
    data = package(obj, models)
    loaded = load(data)
    storages = [name for name in records(data) if name.endswith(".storage")]
    assert len(storages) == 3  # linear.weight, linear.bias, offset
    assert loaded["weight"].data_ptr() == loaded["model"].linear.weight.data_ptr()
    assert torch.equal(loaded["model"](X), scripted(X))


@pytest.mark.usefixtures("ungated")
def test_tensors_pickled_around_a_script_module_keep_their_own_storages(
    models: ModuleType,
) -> None:
    """Storage keys written before the first ScriptModule never collide with its own."""
    scripted = torch.jit.script(models.Affine())
    before, after = torch.full((5,), 9.0), torch.full((7,), -3.0)
    loaded = load(package([before, scripted, after], models))
    assert torch.equal(loaded[0], before)
    assert torch.equal(loaded[1](X), scripted(X))
    assert torch.equal(loaded[2], after)


# --- archive layout ---------------------------------------------------------------


@pytest.mark.usefixtures("ungated")
def test_script_module_code_and_constants_are_stored_under_data_ts_code(
    models: ModuleType,
) -> None:
    names = records(package(torch.jit.script(models.Affine()), models))
    assert ".data/ts_code/0/data.pkl" in names
    assert ".data/ts_code/0/constants.pkl" in names
    assert f".data/ts_code/code/__torch__/{models.__name__.replace('.', '/')}.py" in names


@pytest.mark.usefixtures("ungated")
def test_torch_serializer_bookkeeping_records_are_not_copied_into_the_archive(
    models: ModuleType,
) -> None:
    """The serializer writes its own version, byteorder and serialization id; the
    archive keeps only torchpkg's framework records, each once (its own id last)."""
    names = records(package(torch.jit.script(models.Affine()), models))
    assert "version" not in names
    assert names.count(".data/serialization_id") == 1
    assert names[-1] == ".data/serialization_id"
    assert names.count(".data/version") == 1
    assert names.count("byteorder") == 1


def test_an_export_without_torchscript_writes_no_ts_code(models: ModuleType) -> None:
    names = records(package(models.Affine(), models))
    assert not [name for name in names if name.startswith(".data/ts_code/")]


# --- loading ----------------------------------------------------------------------


@pytest.mark.usefixtures("ungated")
@pytest.mark.parametrize("map_location", ["meta", torch.device("meta")], ids=["str", "device"])
def test_map_location_moves_script_module_and_pickled_tensors_alike(
    models: ModuleType, map_location: Any
) -> None:
    loaded = load(package([torch.jit.script(models.Affine()), torch.ones(3)], models), map_location)
    scripted, tensor = loaded
    assert {t.device.type for t in scripted.state_dict().values()} == {"meta"}
    assert tensor.device.type == "meta"


@pytest.mark.usefixtures("ungated")
def test_a_dict_map_location_is_refused_for_torchscript_as_torch_package_does(
    models: ModuleType,
) -> None:
    """TorchScript's loader takes one device, not a mapping of locations."""
    data = package(torch.jit.script(models.Affine()), models)
    with pytest.raises(ValueError, match="map_location"):
        load(data, {"cpu": "cpu"})


@pytest.mark.usefixtures("ungated")
def test_script_modules_load_from_an_archive_path(models: ModuleType, tmp_path: Path) -> None:
    scripted = torch.jit.script(models.Affine())
    target = tmp_path / "model.pt"
    package(scripted, models, target)
    with PackageImporter(target) as importer:
        loaded = importer.load_pickle("obj", "obj.pkl")
        assert torch.equal(loaded(X), scripted(X))


@pytest.mark.usefixtures("ungated")
def test_script_modules_load_from_an_unzipped_package(models: ModuleType, tmp_path: Path) -> None:
    """torch.package refuses this; torchpkg zips the framework records for torch."""
    scripted = torch.jit.script(models.Affine())
    with zipfile.ZipFile(io.BytesIO(package(scripted, models))) as zf:
        zf.extractall(tmp_path)
    loaded = PackageImporter(tmp_path / "archive").load_pickle("obj", "obj.pkl")
    assert torch.equal(loaded(X), scripted(X))


@pytest.mark.usefixtures("ungated")
def test_a_loaded_script_module_can_be_exported_again(models: ModuleType) -> None:
    holder = models.Holder(torch.jit.script(models.Affine()))
    importer = PackageImporter(io.BytesIO(package(holder, models)))
    loaded = importer.load_pickle("obj", "obj.pkl")
    out = io.BytesIO()
    with PackageExporter(out, importer=(importer, sys_importer)) as exporter:
        exporter.intern(f"{models.__package__}.**")
        exporter.save_pickle("obj", "obj.pkl", loaded)
    assert torch.equal(load(out.getvalue())(X), holder(X))
