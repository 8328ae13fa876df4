"""Small torch models for the TorchScript, FX and interop tests, and how they are packaged.

The models are source text, written into a throwaway package with the ``source_tree``
fixture of tests/conftest.py, so that archives intern their code. Import this module
only after ``pytest.importorskip("torch")``.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from torchpkg import PackageExporter, PackageImporter

SourceTree = Callable[..., str]  # the `source_tree` fixture of tests/conftest.py

MODELS = """
import torch


class Affine(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        self.register_buffer("offset", torch.arange(2.0))

    def forward(self, x):
        return torch.relu(self.linear(x)) + self.offset


class Holder(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.head = torch.nn.Linear(2, 2)

    def forward(self, x):
        return self.head(self.inner(x))
"""

X = torch.arange(12.0).reshape(4, 3) / 7  # an input for Affine (and Holder around it)


def import_models(source_tree: SourceTree, source: str = MODELS) -> ModuleType:
    """Write ``source`` as ``models.py`` of a throwaway package and import it."""
    top = source_tree({"__init__.py": "", "models.py": source})
    return importlib.import_module(f"{top}.models")


def package(obj: Any, models: ModuleType, target: Path | io.BytesIO | None = None) -> bytes:
    """Archive bytes holding ``obj`` as ``obj/obj.pkl``, the models' package interned."""
    out = io.BytesIO() if target is None else target
    with PackageExporter(out) as exporter:
        exporter.intern(f"{models.__package__}.**")
        exporter.save_pickle("obj", "obj.pkl", obj)
    return out.read_bytes() if isinstance(out, Path) else out.getvalue()


def load(data: bytes, map_location: Any = None) -> Any:
    """The ``obj/obj.pkl`` of archive bytes that ``package`` wrote."""
    return PackageImporter(io.BytesIO(data)).load_pickle("obj", "obj.pkl", map_location)
