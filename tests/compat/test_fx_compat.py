"""FX GraphModules loaded from a package are packaged again with
``importer=(package_importer, sys_importer)`` and load back computing what they
did, with the same generated code, in both tools.

The generated code names a packaged function by its mangled module
(``_torch_package_<n>_<module>_scale``); codes are compared with the mangle
parent's number left out, as it differs from one importer to the next.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.package as tp  # noqa: E402

import torchpkg  # noqa: E402

SourceTree = Callable[..., str]  # the `source_tree` fixture of tests/conftest.py
TOOLS = {
    "torch.package": (tp.PackageExporter, tp.PackageImporter, tp.sys_importer),
    "torchpkg": (torchpkg.PackageExporter, torchpkg.PackageImporter, torchpkg.sys_importer),
}
Tool = tuple[type[Any], type[Any], Any]
X = torch.arange(12.0).reshape(4, 3) / 7

MODELS = """
import torch
import torch.fx


def scale(x):
    return x * 3 + 1


torch.fx.wrap("scale")  # a leaf: the generated code calls it from this module


class Inner(torch.nn.Module):
    def forward(self, x):
        return x.sum(-1, keepdim=True) * 2


class Scaled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        self.inner = Inner()

    def forward(self, x):
        return self.inner(scale(self.linear(x)))


class KeepsInner(torch.fx.Tracer):
    \"\"\"The library's own tracer: ``Inner`` stays a call_module.\"\"\"

    def is_leaf_module(self, module, qualname):
        return isinstance(module, Inner) or super().is_leaf_module(module, qualname)


def trace(module):
    return torch.fx.GraphModule(module, KeepsInner().trace(module))
"""


@pytest.fixture(params=list(TOOLS))
def tool(request: pytest.FixtureRequest) -> Tool:
    return TOOLS[request.param]


@pytest.fixture
def models(source_tree: SourceTree) -> ModuleType:
    top = source_tree({"__init__.py": "", "models.py": MODELS})
    return __import__(f"{top}.models", fromlist=["models"])


Package = Callable[..., tuple[Any, Any]]


@pytest.fixture
def package(tool: Tool, models: ModuleType) -> Iterator[Package]:
    """``package(obj, importer=None)``: ``(loaded object, its importer)`` after a round
    trip through ``tool``, the models' package interned (closed at teardown)."""
    exporter_cls, importer_cls, sys_importer = tool
    opened: list[Any] = []

    def run(obj: Any, importer: Any = None) -> tuple[Any, Any]:
        buffer = io.BytesIO()
        importers = sys_importer if importer is None else (importer, sys_importer)
        with exporter_cls(buffer, importer=importers) as exporter:
            exporter.intern([models.__package__, f"{models.__package__}.**"])
            exporter.save_pickle("model", "model.pkl", obj)
        buffer.seek(0)
        opened.append(importer_cls(buffer))
        return opened[-1].load_pickle("model", "model.pkl"), opened[-1]

    yield run
    for importer in opened:
        if isinstance(importer, torchpkg.PackageImporter):
            importer.close()


def code(graph_module: Any) -> str:
    return re.sub(r"_torch_package_\d+_", "_torch_package_N_", graph_module.code)


def test_a_loaded_graph_module_repackages_with_the_same_outputs_and_code(
    models: ModuleType, package: Package
) -> None:
    traced = torch.fx.symbolic_trace(models.Scaled())
    loaded, importer = package(traced)
    again, _ = package(loaded, importer)
    assert isinstance(again, torch.fx.GraphModule)
    assert torch.equal(again(X), traced(X))
    assert code(again) == code(loaded)


def test_a_graph_module_repackaged_twice_still_computes_the_same(
    models: ModuleType, package: Package
) -> None:
    traced = torch.fx.symbolic_trace(models.Scaled())
    loaded, importer = package(traced)
    again, importer = package(loaded, importer)
    third, _ = package(again, importer)
    assert torch.equal(third(X), traced(X))
    assert code(third) == code(loaded)


def test_a_loaded_graph_module_without_importer_is_an_obj_mismatch(
    tool: Tool, models: ModuleType, package: Package
) -> None:
    """Its generated code calls the packaged ``scale``, which the environment's is not."""
    loaded, _ = package(torch.fx.symbolic_trace(models.Scaled()))
    exporter_cls = tool[0]
    mismatch = (
        tp.ObjMismatchError if exporter_cls is tp.PackageExporter else torchpkg.ObjMismatchError
    )
    with exporter_cls(io.BytesIO()) as exporter:
        exporter.intern([models.__package__, f"{models.__package__}.**"])
        with pytest.raises(mismatch):
            exporter.save_pickle("model", "model.pkl", loaded)


def test_a_loaded_model_traced_by_the_environments_tracer_class_repackages(
    models: ModuleType, package: Package
) -> None:
    """The graph module keeps its tracer class, the environment's copy of a class the
    package also holds: ``sys_importer`` names it after the package importer cannot."""
    loaded, importer = package(models.Scaled())
    traced = models.trace(loaded)
    assert traced._tracer_cls is models.KeepsInner
    again, _ = package(traced, importer)
    assert torch.equal(again(X), traced(X))
    assert code(again) == code(traced)
