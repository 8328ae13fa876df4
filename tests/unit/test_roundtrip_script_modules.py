"""A ScriptModule survives the roundtrip: the roundtrip lifts torch.package's beta gate on
saving one, for its own export only."""

from __future__ import annotations

import io
from typing import Any

import pytest

import torchpkg.exporter
from torchpkg import PackageExporter
from torchpkg.roundtrip import Verdict, roundtrip

torch = pytest.importorskip("torch")


def scripted() -> Any:
    torch.manual_seed(0)
    return torch.jit.script(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()))


def test_a_script_module_passes_the_roundtrip() -> None:
    result = roundtrip(scripted(), torch.randn(4, 3))
    assert result.verdict is Verdict.PASSED, result.report()


def test_a_plain_exporter_still_refuses_a_script_module() -> None:
    with (
        pytest.raises(RuntimeError, match="beta feature"),
        PackageExporter(io.BytesIO()) as exporter,
    ):
        exporter.save_pickle("model", "model.pkl", scripted())


def test_an_exporter_that_allows_script_modules_saves_one() -> None:
    target = io.BytesIO()
    with PackageExporter(target, allow_script_modules=True) as exporter:
        exporter.save_pickle("model", "model.pkl", scripted())
    assert target.getvalue()


def test_the_roundtrip_leaves_the_module_level_gate_as_it_was() -> None:
    roundtrip(scripted(), torch.randn(4, 3), isolation="in-process")
    assert torchpkg.exporter._gate_torchscript_serialization is True
