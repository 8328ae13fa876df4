"""TorchScript, FX and torch.export objects cross over between torchpkg and
torch.package: each archive written by one tool is loaded by the other and the
loaded modules compute what the originals did. TorchScript's edges (torch.classes
objects, a ScriptModule shared by eager modules) behave the same in both tools."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.package as tp  # noqa: E402

import torchpkg  # noqa: E402
import torchpkg.exporter  # noqa: E402
from _crossover import CROSSINGS, Direction  # noqa: E402
from _torch_models import MODELS, SourceTree, X, import_models  # noqa: E402


@pytest.fixture(params=list(CROSSINGS))
def direction(request: pytest.FixtureRequest) -> Direction:
    return CROSSINGS[request.param]


@pytest.fixture
def models(source_tree: SourceTree) -> ModuleType:
    return import_models(source_tree)


@pytest.fixture
def ungated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both tools save ScriptModules only when told to."""
    monkeypatch.setattr(torchpkg.exporter, "_gate_torchscript_serialization", False)
    monkeypatch.setattr(tp.package_exporter, "_gate_torchscript_serialization", False)


Roundtrip = Callable[..., Any]


@pytest.fixture
def roundtrip(models: ModuleType, tmp_path: Path) -> Iterator[Roundtrip]:
    """``roundtrip(direction, obj, map_location=None)``: write ``obj`` with one tool,
    the models' package interned, and load it with the other (closed at teardown)."""
    opened: list[Any] = []

    def run(direction: Direction, obj: Any, map_location: Any = None) -> Any:
        path = tmp_path / f"package{len(opened)}.pt"
        with direction.exporter(str(path)) as exporter:
            exporter.intern(f"{models.__package__}.**")
            exporter.save_pickle("obj", "obj.pkl", obj)
        importer = direction.importer(str(path))
        opened.append(importer)
        return importer.load_pickle("obj", "obj.pkl", map_location=map_location)

    yield run
    for importer in opened:
        if isinstance(importer, torchpkg.PackageImporter):
            importer.close()


# --- TorchScript ----------------------------------------------------------------


@pytest.mark.parametrize(
    "exporter_cls", [torchpkg.PackageExporter, tp.PackageExporter], ids=["torchpkg", "torch"]
)
def test_both_tools_refuse_a_script_module_while_their_gate_is_on(
    exporter_cls: type[Any], models: ModuleType
) -> None:
    scripted = torch.jit.script(models.Affine())
    with (
        pytest.raises(Exception, match="_gate_torchscript_serialization"),
        exporter_cls(io.BytesIO()) as exporter,
    ):
        exporter.save_pickle("obj", "obj.pkl", scripted)


@pytest.mark.usefixtures("ungated")
def test_a_scripted_module_crosses_over(
    direction: Direction, models: ModuleType, roundtrip: Roundtrip
) -> None:
    scripted = torch.jit.script(models.Affine())
    loaded = roundtrip(direction, scripted)
    assert isinstance(loaded, torch.jit.RecursiveScriptModule)
    assert torch.equal(loaded(X), scripted(X))


@pytest.mark.usefixtures("ungated")
def test_a_traced_module_crosses_over(
    direction: Direction, models: ModuleType, roundtrip: Roundtrip
) -> None:
    traced = torch.jit.trace(models.Affine(), (X,))
    assert torch.equal(roundtrip(direction, traced)(X), traced(X))


@pytest.mark.usefixtures("ungated")
def test_a_scripted_submodule_of_a_plain_module_crosses_over(
    direction: Direction, models: ModuleType, roundtrip: Roundtrip
) -> None:
    holder = models.Holder(torch.jit.script(models.Affine()))
    loaded = roundtrip(direction, holder)
    assert isinstance(loaded.inner, torch.jit.RecursiveScriptModule)
    assert torch.equal(loaded(X), holder(X))


@pytest.mark.usefixtures("ungated")
@pytest.mark.parametrize("tensor_first", [True, False], ids=["tensor-first", "script-first"])
def test_a_storage_shared_with_a_script_module_stays_shared_across_tools(
    direction: Direction, models: ModuleType, roundtrip: Roundtrip, tensor_first: bool
) -> None:
    scripted = torch.jit.script(models.Affine())
    weight = scripted.linear.weight.detach()
    obj = {"weight": weight, "model": scripted}
    if not tensor_first:
        obj = {"model": scripted, "weight": weight}
    loaded = roundtrip(direction, obj)
    assert loaded["weight"].data_ptr() == loaded["model"].linear.weight.data_ptr()
    assert torch.equal(loaded["model"](X), scripted(X))


@pytest.mark.usefixtures("ungated")
def test_several_script_modules_and_tensors_cross_over_in_one_pickle(
    direction: Direction, models: ModuleType, roundtrip: Roundtrip
) -> None:
    scripted = torch.jit.script(models.Affine())
    traced = torch.jit.trace(models.Affine(), (X,))
    tensor = torch.arange(5.0)
    loaded = roundtrip(direction, [tensor, scripted, traced, scripted])
    assert torch.equal(loaded[0], tensor)
    assert torch.equal(loaded[1](X), scripted(X))
    assert torch.equal(loaded[2](X), traced(X))
    assert loaded[3] is loaded[1]


@pytest.mark.usefixtures("ungated")
def test_a_script_module_crosses_over_with_a_cpu_map_location(
    direction: Direction, models: ModuleType, roundtrip: Roundtrip
) -> None:
    scripted = torch.jit.script(models.Affine())
    loaded = roundtrip(direction, scripted, map_location=torch.device("cpu"))
    assert {t.device.type for t in loaded.state_dict().values()} == {"cpu"}
    assert torch.equal(loaded(X), scripted(X))


# --- TorchScript edges, the same code against both tools ----------------------------

SHARING_MODELS = (
    MODELS
    + """

class WithTensor(torch.nn.Module):
    def __init__(self, tensor):
        super().__init__()
        self.tensor = tensor

    def forward(self, x):
        return x + self.tensor


class Pair(torch.nn.Module):
    def __init__(self, first, second, tensor=None):
        super().__init__()
        self.first = first
        self.second = second
        self.tensor = tensor
"""
)
TOOLS = {
    "torch.package": (tp.PackageExporter, tp.PackageImporter),
    "torchpkg": (torchpkg.PackageExporter, torchpkg.PackageImporter),
}
Tool = tuple[type[Any], type[Any]]


@pytest.fixture(params=list(TOOLS))
def tool(request: pytest.FixtureRequest) -> Tool:
    return TOOLS[request.param]


@pytest.fixture
def sharing_models(source_tree: SourceTree) -> ModuleType:
    return import_models(source_tree, SHARING_MODELS)


def export(tool: Tool, models: ModuleType, pickles: dict[str, Any]) -> Any:
    """An importer of an archive ``tool`` wrote with each of ``pickles`` in ``res/``."""
    exporter_cls, importer_cls = tool
    buffer = io.BytesIO()
    with exporter_cls(buffer) as exporter:
        exporter.intern(f"{models.__package__}.**")
        for resource, obj in pickles.items():
            exporter.save_pickle("res", resource, obj)
    buffer.seek(0)
    return importer_cls(buffer)


def test_a_torch_classes_object_without_pickle_support_is_torch_packages_runtime_error(
    tool: Tool,
) -> None:
    profile = torch.classes.profiling._ScriptProfile()
    with (
        tool[0](io.BytesIO()) as exporter,
        pytest.raises(RuntimeError, match="does not have a __getstate__ method defined"),
    ):
        exporter.save_pickle("res", "obj.pkl", {"profile": profile})


@pytest.mark.usefixtures("ungated")
def test_a_script_module_holding_such_an_object_is_torch_packages_runtime_error(
    tool: Tool,
) -> None:
    class HoldsProfile(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.profile = torch.classes.profiling._ScriptProfile()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    scripted = torch.jit.script(HoldsProfile())
    with (
        tool[0](io.BytesIO()) as exporter,
        pytest.raises(RuntimeError, match="Cannot serialize custom bound C\\+\\+ class"),
    ):
        exporter.save_pickle("res", "obj.pkl", scripted)


# Quantized tensors are deprecated in torch; packed params are the torch.classes object
# with pickle support that CPU torch offers without building an extension.
@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
def test_a_torch_classes_object_with_pickle_support_round_trips(
    tool: Tool, sharing_models: ModuleType
) -> None:
    weight = torch.quantize_per_tensor(torch.arange(6.0).reshape(2, 3), 0.5, 0, torch.qint8)
    packed = torch.ops.quantized.linear_prepack(weight, None)
    importer = export(tool, sharing_models, {"packed.pkl": packed})
    loaded_weight, bias = importer.load_pickle("res", "packed.pkl").unpack()
    assert torch.equal(loaded_weight.int_repr(), weight.int_repr())
    assert bias is None


@pytest.mark.usefixtures("ungated")
def test_eager_modules_sharing_a_script_module_save_its_code_once(
    tool: Tool, sharing_models: ModuleType
) -> None:
    scripted = torch.jit.script(sharing_models.Affine())
    first, second = sharing_models.Holder(scripted), sharing_models.Holder(scripted)
    importer = export(tool, sharing_models, {"first.pkl": first, "second.pkl": second})
    structure = importer.file_structure()
    assert structure.has_file(".data/ts_code/0/data.pkl")
    assert not structure.has_file(".data/ts_code/1/data.pkl")
    assert torch.equal(importer.load_pickle("res", "second.pkl")(X), second(X))


@pytest.mark.usefixtures("ungated")
def test_eager_modules_sharing_a_script_module_load_back_sharing_one(
    tool: Tool, sharing_models: ModuleType
) -> None:
    scripted = torch.jit.script(sharing_models.Affine())
    holders = sharing_models.Pair(sharing_models.Holder(scripted), sharing_models.Holder(scripted))
    loaded = export(tool, sharing_models, {"pair.pkl": holders}).load_pickle("res", "pair.pkl")
    assert loaded.first.inner is loaded.second.inner
    assert loaded.first is not loaded.second
    assert torch.equal(loaded.second(X), holders.second(X))


@pytest.mark.usefixtures("ungated")
def test_a_tensor_shared_by_an_eager_module_and_script_modules_loads_back_shared(
    tool: Tool, sharing_models: ModuleType
) -> None:
    shared = torch.ones(2)
    first = torch.jit.script(sharing_models.WithTensor(shared))
    second = torch.jit.script(sharing_models.WithTensor(shared))
    obj = sharing_models.Pair(first, second, shared)
    importer = export(tool, sharing_models, {"pair.pkl": obj})
    storages = importer.file_structure(include=".data/*.storage").children[".data"].children
    assert len(storages) == 1
    loaded = importer.load_pickle("res", "pair.pkl")
    loaded.tensor.add_(1)  # one storage: every module sees the change
    assert torch.equal(loaded.first.tensor, torch.full((2,), 2.0))
    assert torch.equal(loaded.second.tensor, torch.full((2,), 2.0))


# --- FX -------------------------------------------------------------------------


def test_a_graph_module_crosses_over(
    direction: Direction, models: ModuleType, roundtrip: Roundtrip
) -> None:
    traced = torch.fx.symbolic_trace(models.Affine())
    loaded = roundtrip(direction, traced)
    assert isinstance(loaded, torch.fx.GraphModule)
    assert torch.equal(loaded(X), traced(X))


def test_a_graph_module_inside_a_plain_module_crosses_over(
    direction: Direction, models: ModuleType, roundtrip: Roundtrip
) -> None:
    holder = models.Holder(torch.fx.symbolic_trace(models.Affine()))
    assert torch.equal(roundtrip(direction, holder)(X), holder(X))


# --- torch.export ---------------------------------------------------------------


def test_torch_package_reads_an_exported_program_torchpkg_wrote(
    models: ModuleType, roundtrip: Roundtrip
) -> None:
    """torch.package cannot write one, but reads ours where torchpkg is installed:
    the loader is the extern module torchpkg._exported."""
    program = torch.export.export(models.Affine(), (X,))
    direction = Direction(torchpkg.PackageExporter, tp.PackageImporter)
    loaded = roundtrip(direction, program)
    assert isinstance(loaded, torch.export.ExportedProgram)
    assert torch.equal(loaded.module()(X), program.module()(X))
