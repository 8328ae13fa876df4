"""Packages for the command-line tests."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import pytest

from _cli import Package
from torchpkg import PackageExporter

SourceTree = Callable[..., str]

MODEL = """\
import json
from . import helpers, layers


class Model:
    def __init__(self):
        self.layer = layers.Layer()
        self.config = json.dumps({"size": 3})
"""

LAYERS = """\
import collections


class Layer:
    def __init__(self):
        self.table = collections.OrderedDict(weight=1)
"""


@pytest.fixture
def package(tmp_path: Path, source_tree: SourceTree) -> Package:
    """A torch-free package: two interned modules, one mocked, a pickle, a text
    resource, and a module whose import would create the sentinel."""
    top = source_tree({"__init__.py": "", "model.py": MODEL, "layers.py": LAYERS, "helpers.py": ""})
    sentinel = tmp_path / "packaged-code-ran"
    model = importlib.import_module(f"{top}.model").Model()
    path = tmp_path / "model.pt"
    with PackageExporter(path) as exporter:
        exporter.mock(f"{top}.helpers")
        exporter.intern(f"{top}.**")
        exporter.save_pickle("model", "model.pkl", model)
        exporter.save_text("notes", "readme.txt", "hello")
        exporter.save_source_string("tripwire", f"open({str(sentinel)!r}, 'w').close()\n")
    return Package(path, top, sentinel)
