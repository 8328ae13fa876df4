"""The path checks judge the model's code only: not the code its inputs bring, not a
path that one run merely shortened.

Each test writes a tiny repository (``source_tree``) and round-trips its model in
process, with that repository as the root.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from torchpkg.roundtrip import Diagnostic, DiagnosticKind, RoundtripResult, Verdict, roundtrip

torch = pytest.importorskip("torch")

PATH_KINDS = (DiagnosticKind.HERMETICITY_LEAK, DiagnosticKind.DIVERGENT_PATH)

DISTRIBUTIONS = """
import torch


class Normal:
    def __init__(self, loc):
        self.loc = loc

    @property
    def scale(self):
        return torch.ones_like(self.loc)

    def log_prob(self, x):
        z = (x - self.loc) / self.scale
        return -0.5 * z * z
"""

QUADRATURE = """
from torch import nn


class Quadrature(nn.Module):
    def forward(self, dist, x):
        return dist.log_prob(x).sum()
"""

CACHED = """
import functools

from torch import nn


@functools.cache
def weights(n):
    total = 0.0
    for i in range(n):
        total += i
    return total


class Model(nn.Module):
    def forward(self, x):
        return x * weights(3)
"""


def path_diagnostics(result: RoundtripResult) -> list[Diagnostic]:
    return [d for d in result.diagnostics if d.kind in PATH_KINDS]


def check(model: Any, *inputs: Any, root: Path) -> RoundtripResult:
    return roundtrip(model, *inputs, roots=[root], isolation="in-process", strict_paths=True)


def test_methods_of_an_input_of_the_repositorys_class_are_neither_leak_nor_divergence(
    source_tree: Any, tmp_path: Path
) -> None:
    top = source_tree({"__init__.py": "", "dists.py": DISTRIBUTIONS, "quad.py": QUADRATURE})
    dists = importlib.import_module(f"{top}.dists")
    quad = importlib.import_module(f"{top}.quad")
    normal = dists.Normal(torch.zeros(3))
    result = check(quad.Quadrature(), normal, torch.ones(3), root=tmp_path / "src")
    assert result.verdict is Verdict.PASSED, result.report()
    assert path_diagnostics(result) == []


def test_a_warm_cache_in_the_original_is_not_a_divergent_path(
    source_tree: Any, tmp_path: Path
) -> None:
    top = source_tree({"__init__.py": "", "model.py": CACHED})
    module = importlib.import_module(f"{top}.model")
    model = module.Model()
    model(torch.ones(2))  # the original's cache is warm; the clone's module is fresh
    result = check(model, torch.ones(2), root=tmp_path / "src")
    assert result.verdict is Verdict.PASSED, result.report()
    assert path_diagnostics(result) == []


SETTINGS = """
SCALE = 1.0


def scale():
    return SCALE
"""

SETTLED = """
import torch

from . import settings


class Normal:
    def __init__(self, loc):
        self.loc = loc

    def log_prob(self, x):
        return -0.5 * ((x - self.loc) * settings.scale()) ** 2
"""


def test_the_library_code_an_inputs_methods_call_is_not_a_leak(
    source_tree: Any, tmp_path: Path
) -> None:
    """gpytorch's distributions call its settings and memoization helpers: module-level
    code of the library the input came from, which the caller brings too."""
    top = source_tree(
        {"__init__.py": "", "settings.py": SETTINGS, "dists.py": SETTLED, "quad.py": QUADRATURE}
    )
    dists = importlib.import_module(f"{top}.dists")
    quad = importlib.import_module(f"{top}.quad")
    result = check(quad.Quadrature(), dists.Normal(torch.zeros(3)), torch.ones(3), root=tmp_path)
    assert result.verdict is Verdict.PASSED, result.report()
    assert path_diagnostics(result) == []
