"""The tracer behind the gate's path checks: sys.monitoring on 3.12+, sys.settrace on 3.11.

Torch-free, so the torch-free Python versions run it with their own mechanism.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from torchpkg.roundtrip import _trace
from torchpkg.roundtrip._trace import in_repository, trace

SourceTree = Callable[..., str]


def test_the_lines_of_the_files_asked_for_are_traced_once_in_order(
    source_tree: SourceTree,
) -> None:
    top = source_tree(
        {
            "__init__.py": "",
            "steps.py": "def run(n):\n    total = 0\n    for i in range(n):\n"
            "        total += i\n    return total\n",
        }
    )
    steps = importlib.import_module(f"{top}.steps")
    with trace(lambda file, packaged: "steps" if file == steps.__file__ else None) as traced:
        assert steps.run(3) == 3
    assert traced.available
    assert traced.outside_lines == [("steps", 2), ("steps", 3), ("steps", 4), ("steps", 5)]
    assert steps.__file__ in traced.files


def test_functions_passed_as_inputs_are_not_traced(source_tree: SourceTree) -> None:
    top = source_tree({"__init__.py": "", "cb.py": "def callback(x):\n    return x + 1\n"})
    cb = importlib.import_module(f"{top}.cb")
    with trace(
        lambda file, packaged: file if file == cb.__file__ else None, (cb.callback,)
    ) as traced:
        cb.callback(1)
    assert traced.outside_lines == []


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="sys.monitoring shares the machine")
def test_nothing_is_traced_while_another_tracer_holds_the_hook() -> None:
    sys.settrace(lambda *args: None)
    try:
        with trace(lambda file, packaged: file) as traced:
            pass
    finally:
        sys.settrace(None)
    assert not traced.available


# --- what is the repository's code: not what is installed inside it ----------------------

REPO = os.path.join(os.sep, "home", "dev", "repo", "")


def test_a_file_of_the_repository_is_the_repositorys() -> None:
    assert in_repository(f"{REPO}src/zoo/model.py", (REPO,))


def test_a_file_outside_the_roots_is_not_the_repositorys() -> None:
    assert not in_repository(os.path.join(os.sep, "home", "dev", "other", "model.py"), (REPO,))


def test_torch_in_a_virtualenv_inside_the_repository_is_not_the_repositorys() -> None:
    torch_file = f"{REPO}.venv/lib/python3.11/site-packages/torch/nn/modules/module.py"
    assert not in_repository(torch_file, (REPO,))


def test_a_dist_packages_folder_inside_the_repository_is_not_the_repositorys() -> None:
    assert not in_repository(f"{REPO}env/lib/python3/dist-packages/numpy/core.py", (REPO,))


def test_the_interpreters_library_folder_inside_the_repository_is_not_the_repositorys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A conda environment in the repository: its standard library is not in site-packages."""
    stdlib = tmp_path / "repo" / ".conda" / "lib" / "python3.11"
    stdlib.mkdir(parents=True)
    monkeypatch.setattr(_trace, "_library_folders", lambda: (str(stdlib),))
    root = os.path.join(tmp_path / "repo", "")
    assert not in_repository(str(stdlib / "functools.py"), (root,))
    assert in_repository(str(tmp_path / "repo" / "model.py"), (root,))


def test_a_repository_checked_out_inside_site_packages_is_still_the_repositorys() -> None:
    """Only install folders below the root are excluded, not those above it."""
    root = os.path.join(os.sep, "opt", "lib", "site-packages", "project", "")
    assert in_repository(f"{root}model.py", (root,))


# --- the code that comes with the inputs is the caller's ---------------------------------

DISTRIBUTIONS = """
import dataclasses
import functools


class Base:
    def log_prob(self, x):
        return [x * w for w in self.weights]


class Normal(Base):
    def __init__(self, weights):
        self.weights = weights

    @property
    def mean(self):
        return sum(self.weights)

    @staticmethod
    def support(x):
        return x >= 0

    @classmethod
    def standard(cls):
        return cls([1.0])

    @functools.cached_property
    def total(self):
        return sum(self.weights)


@dataclasses.dataclass
class Batch:
    items: list


class Holder:
    def __init__(self, inner):
        self.inner = inner
"""

QUADRATURE = """
def integrate(dist, x):
    ratio = dist.mean
    return sum(dist.log_prob(x)) * ratio if dist.support(x) else dist.standard().total


class Quadrature:
    def __call__(self, dist, x):
        return integrate(dist, x)
"""
CALL_LINE = 9  # the body of Quadrature.__call__ in QUADRATURE


def repository(source_tree: SourceTree) -> tuple[ModuleType, ModuleType]:
    top = source_tree({"__init__.py": "", "dists.py": DISTRIBUTIONS, "quad.py": QUADRATURE})
    dists = importlib.import_module(f"{top}.dists")
    quad = importlib.import_module(f"{top}.quad")
    return dists, quad


def lines_traced(
    files: tuple[str | None, ...], inputs: object, run: Callable[[], object], model: object = None
) -> list[tuple[str, int]]:
    with trace(lambda file, packaged: file if file in files else None, inputs, model=model) as t:
        run()
    return t.outside_lines


def files_traced(
    files: tuple[str | None, ...], inputs: object, run: Callable[[], object]
) -> set[str]:
    return {file for file, _ in lines_traced(files, inputs, run)}


def test_the_code_of_an_inputs_package_is_not_traced_but_the_models_own_module_is(
    source_tree: SourceTree,
) -> None:
    """The input's methods, and the module code of its package they may call (helpers
    the caller brings along), are the caller's; the model's module stays traced."""
    dists, quad = repository(source_tree)
    model, normal = quad.Quadrature(), dists.Normal([1.0, 2.0])
    files = (dists.__file__, quad.__file__)
    traced = lines_traced(files, (normal, 2.0), lambda: model(normal, 2.0), model=model)
    assert {file for file, _ in traced} == {quad.__file__}


def test_properties_static_and_class_methods_of_an_input_class_are_not_traced(
    source_tree: SourceTree,
) -> None:
    dists, quad = repository(source_tree)
    normal = dists.Normal([1.0])
    files = (dists.__file__,)
    # -1.0 is outside the support: the classmethod and the cached property run
    assert files_traced(files, (normal,), lambda: quad.integrate(normal, -1.0)) == set()


def test_an_input_object_inside_containers_dataclasses_and_attributes_is_found(
    source_tree: SourceTree,
) -> None:
    dists, quad = repository(source_tree)
    normal = dists.Normal([1.0])
    inputs = ({"batch": [dists.Batch([dists.Holder(normal)])]},)
    files = (dists.__file__,)
    assert files_traced(files, inputs, lambda: quad.integrate(normal, 1.0)) == set()


def test_repository_code_the_inputs_do_not_bring_is_still_traced(
    source_tree: SourceTree,
) -> None:
    dists, quad = repository(source_tree)
    normal = dists.Normal([1.0])
    files = (dists.__file__,)
    traced = files_traced(files, (1.0,), lambda: quad.integrate(normal, 1.0))
    assert traced == {dists.__file__}


def test_the_models_own_classes_are_traced_when_an_input_shares_them(
    source_tree: SourceTree,
) -> None:
    """The model is not an input: an input of the model's own class (or holding the
    model) leaves the model's code traced."""
    dists, quad = repository(source_tree)
    model = quad.Quadrature()
    normal = dists.Normal([1.0])
    other = quad.Quadrature()
    inputs = (normal, 1.0, other, dists.Holder(model))
    traced = lines_traced((quad.__file__,), inputs, lambda: model(normal, 1.0), model=model)
    assert (quad.__file__, CALL_LINE) in traced


def test_without_the_model_an_input_of_its_class_hides_its_methods(
    source_tree: SourceTree,
) -> None:
    """What ``model=`` is for: the reverse of the test above."""
    dists, quad = repository(source_tree)
    model, normal = quad.Quadrature(), dists.Normal([1.0])
    traced = lines_traced((quad.__file__,), (normal, quad.Quadrature()), lambda: model(normal, 1))
    assert (quad.__file__, CALL_LINE) not in traced
