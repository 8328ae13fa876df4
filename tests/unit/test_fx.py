"""FX GraphModules in packages: their ``__reduce_package__`` saves the generated
forward as packaged source, and the loaded module re-traces it and runs."""

from __future__ import annotations

import io
from types import ModuleType
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch.fx._lazy_graph_module import _LazyGraphModule  # noqa: E402

from _torch_models import MODELS, SourceTree, X, import_models, load, package  # noqa: E402
from torchpkg import PackageImporter  # noqa: E402

FX_MODELS = (
    MODELS
    + """

import torch.fx


def scale(x):
    return x * 3 + 1


torch.fx.wrap("scale")  # a leaf: the graph calls it by name from this module


class Scaled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, x):
        return scale(self.linear(x))
"""
)


@pytest.fixture
def models(source_tree: SourceTree) -> ModuleType:
    return import_models(source_tree, FX_MODELS)


def open_package(data: bytes) -> PackageImporter:
    return PackageImporter(io.BytesIO(data))


def operations(graph_module: Any) -> list[tuple[str, str]]:
    return [(node.op, str(node.target)) for node in graph_module.graph.nodes]


def test_a_traced_graph_module_round_trips_with_equal_outputs(models: ModuleType) -> None:
    traced = torch.fx.symbolic_trace(models.Affine())
    loaded = load(package(traced, models))
    assert isinstance(loaded, torch.fx.GraphModule)
    assert torch.equal(loaded(X), traced(X))


def test_the_loaded_graph_has_the_same_operations(models: ModuleType) -> None:
    traced = torch.fx.symbolic_trace(models.Affine())
    loaded = load(package(traced, models))
    assert operations(loaded) == operations(traced)


def test_the_generated_forward_is_packaged_as_source(models: ModuleType) -> None:
    traced = torch.fx.symbolic_trace(models.Affine())
    importer = open_package(package(traced, models))
    source = importer.load_text("fx-generated", "_0.py")
    assert "def forward(self, x)" in source


def test_a_wrapped_function_the_graph_calls_comes_from_the_package(models: ModuleType) -> None:
    """The generated code imports ``scale`` from the user's module, which is
    interned with it and imported from the archive on load."""
    traced = torch.fx.symbolic_trace(models.Scaled())
    importer = open_package(package(traced, models))
    loaded = importer.load_pickle("obj", "obj.pkl")
    assert torch.equal(loaded(X), traced(X))
    assert models.__name__ in importer.modules


def test_a_graph_module_inside_a_plain_module_round_trips(models: ModuleType) -> None:
    holder = models.Holder(torch.fx.symbolic_trace(models.Affine()))
    loaded = load(package(holder, models))
    assert isinstance(loaded.inner, torch.fx.GraphModule)
    assert torch.equal(loaded(X), holder(X))


def test_a_lazy_graph_module_round_trips(models: ModuleType) -> None:
    """What torch.compile hands out; it recompiles before saving its code."""
    traced = torch.fx.symbolic_trace(models.Affine())
    lazy = _LazyGraphModule(traced, traced.graph)
    loaded = load(package(lazy, models))
    assert torch.equal(loaded(X), traced(X))


def test_two_graph_modules_get_their_own_generated_modules(models: ModuleType) -> None:
    first = torch.fx.symbolic_trace(models.Affine())
    second = torch.fx.symbolic_trace(models.Scaled())
    importer = open_package(package([first, second], models))
    loaded = importer.load_pickle("obj", "obj.pkl")
    assert torch.equal(loaded[0](X), first(X))
    assert torch.equal(loaded[1](X), second(X))
    assert {"fx-generated._0", "fx-generated._1"} <= set(importer.modules)
