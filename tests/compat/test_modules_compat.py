"""Each torch.package module has a torchpkg counterpart with the same public names.

The table is the README's "torch.package's modules in torchpkg": porting an
import is changing one line.
"""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

torch = pytest.importorskip("torch")

COUNTERPARTS = {
    "torch.package": "torchpkg",
    "torch.package.package_exporter": "torchpkg.exporter",
    "torch.package.package_importer": "torchpkg.importer",
    "torch.package.importer": "torchpkg.importer",
    "torch.package.glob_group": "torchpkg.glob",
    "torch.package.file_structure_representation": "torchpkg.file_tree",
    "torch.package._mangling": "torchpkg.mangling",
    "torch.package._digraph": "torchpkg.graph",
    "torch.package.analyze": "torchpkg.analyze",
}
# Public by use though neither listed in __all__ nor defined in the module:
# a type alias, and a function its package re-exports from a submodule.
EXTRA_NAMES = {
    "torch.package.glob_group": {"GlobPattern"},
    "torch.package.analyze": {"is_from_package"},
}
MODULES = [pytest.param(theirs, ours, id=theirs) for theirs, ours in COUNTERPARTS.items()]


def _public_names(module: types.ModuleType) -> set[str]:
    """``__all__``, and the names the module (or its package) defines itself."""
    names = set(getattr(module, "__all__", ()))
    for name, value in vars(module).items():
        defined_here = getattr(value, "__module__", "").startswith(module.__name__)
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and defined_here:
            names.add(name)
    return names | EXTRA_NAMES.get(module.__name__, set())


@pytest.mark.parametrize(("theirs", "ours"), MODULES)
def test_every_public_name_of_a_torch_package_module_is_public_in_its_counterpart(
    theirs: str, ours: str
) -> None:
    names = _public_names(importlib.import_module(theirs))
    assert names
    assert names <= set(importlib.import_module(ours).__all__)


@pytest.mark.parametrize(("theirs", "ours"), MODULES)
def test_each_name_is_the_same_kind_of_thing_in_both(theirs: str, ours: str) -> None:
    """Classes are classes (exceptions are exceptions), functions are functions."""
    their_module, our_module = importlib.import_module(theirs), importlib.import_module(ours)
    for name in _public_names(their_module):
        their_value = getattr(their_module, name)
        if isinstance(their_value, types.ModuleType):
            continue  # torch.package.analyze.is_from_package: its submodule shadows the function
        our_value = getattr(our_module, name)
        assert inspect.isclass(our_value) == inspect.isclass(their_value), name
        assert callable(our_value) == callable(their_value), name
        if inspect.isclass(their_value) and issubclass(their_value, BaseException):
            assert issubclass(our_value, BaseException), name
