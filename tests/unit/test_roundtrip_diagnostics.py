"""Unit tests of torchpkg.roundtrip's diagnostics: each sharp edge of packaging, named."""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from torchpkg import PackageExporter, PackageImporter
from torchpkg.roundtrip import Diagnostic, DiagnosticKind, RoundtripResult, Verdict, roundtrip
from torchpkg.roundtrip._diagnostics import not_hermetic_diagnostic

torch = pytest.importorskip("torch")


def make_package(source_tree: Any, files: dict[str, str], module: str = "model") -> ModuleType:
    package = source_tree({"__init__.py": "", **files})
    return importlib.import_module(f"{package}.{module}")


def of_kind(result: RoundtripResult, kind: DiagnosticKind) -> list[Diagnostic]:
    return [diagnostic for diagnostic in result.diagnostics if diagnostic.kind is kind]


# --- module-level global state ------------------------------------------------------------

COUNTER = """
    from torch import nn

    CALLS = 0


    class Counting(nn.Module):
        def forward(self, x):
            global CALLS
            CALLS += 1
            return x * CALLS
"""


def test_a_global_counter_used_in_the_output_is_a_mismatch(source_tree: Any) -> None:
    module = make_package(source_tree, {"model.py": COUNTER})
    model = module.Counting()
    model(torch.ones(2))  # the test ran the model before it was round-tripped
    result = roundtrip(model, torch.ones(2))
    assert result.verdict is Verdict.MISMATCH
    assert of_kind(result, DiagnosticKind.OUTPUT_MISMATCH)[0].location == "output"


def test_a_global_counter_is_reported_with_its_values_before_and_after(source_tree: Any) -> None:
    module = make_package(source_tree, {"model.py": COUNTER})
    model = module.Counting()
    model(torch.ones(2))
    result = roundtrip(model, torch.ones(2))
    [diagnostic] = of_kind(result, DiagnosticKind.GLOBAL_STATE_MUTATED)
    assert diagnostic.location == f"{module.__name__}.CALLS"
    assert "changed during the original's run: 1 -> 2" in diagnostic.message
    assert "the clone's copy started at 0" in diagnostic.message
    assert "buffer" in diagnostic.next_step


def test_a_global_set_after_import_is_reported_as_unseen_by_the_clone(source_tree: Any) -> None:
    module = make_package(
        source_tree,
        {
            "model.py": """
            from torch import nn

            SCALE = 1.0


            class Scaled(nn.Module):
                def forward(self, x):
                    return x * SCALE
            """
        },
    )
    module.SCALE = 2.0
    result = roundtrip(module.Scaled(), torch.ones(2))
    [diagnostic] = of_kind(result, DiagnosticKind.GLOBAL_STATE_MUTATED)
    assert diagnostic.location == f"{module.__name__}.SCALE"
    assert "2.0 in the original's module but 1.0 in the clone's" in diagnostic.message


def test_a_global_mutated_without_changing_the_output_passes(source_tree: Any) -> None:
    module = make_package(
        source_tree,
        {
            "model.py": """
            from torch import nn

            SEEN = []


            class Logging(nn.Module):
                def forward(self, x):
                    SEEN.append(tuple(x.shape))
                    return x + 1
            """
        },
    )
    result = roundtrip(module.Logging(), torch.ones(2))
    assert result.verdict is Verdict.PASSED
    assert result.diagnostics == ()


# --- isinstance across namespaces ---------------------------------------------------------

REGISTRY = {
    "ops.py": """
        REGISTRY = {}


        def register(cls):
            REGISTRY[cls.__name__] = cls
            return cls


        @register
        class Scale:
            def __init__(self, factor):
                self.factor = factor

            def apply(self, x):
                return x * self.factor


        @register
        class Shift:
            def __init__(self, offset):
                self.offset = offset

            def apply(self, x):
                return x + self.offset
    """,
    "model.py": """
        from torch import nn

        from .ops import REGISTRY


        class OpRunner(nn.Module):
            def forward(self, x, op):
                if not isinstance(op, tuple(REGISTRY.values())):
                    raise TypeError(f"unknown op {op!r}")
                return op.apply(x)
    """,
}


def test_a_registry_checked_with_isinstance_fails_the_clone_on_original_objects(
    source_tree: Any,
) -> None:
    module = make_package(source_tree, REGISTRY)
    ops = importlib.import_module(module.__name__.replace(".model", ".ops"))
    result = roundtrip(module.OpRunner(), torch.ones(2), ops.Scale(2.0))
    assert result.verdict is Verdict.RUN_FAILED
    [error] = of_kind(result, DiagnosticKind.RUN_ERROR)
    assert "TypeError: unknown op" in error.message
    assert error.location == f"{module.__name__.replace('.', '/')}.py:10"


def test_a_registry_of_classes_is_named_with_the_input_that_crossed_namespaces(
    source_tree: Any,
) -> None:
    module = make_package(source_tree, REGISTRY)
    ops = importlib.import_module(module.__name__.replace(".model", ".ops"))
    result = roundtrip(module.OpRunner(), torch.ones(2), ops.Scale(2.0))
    found = {d.location: d for d in of_kind(result, DiagnosticKind.ISINSTANCE_ACROSS_NAMESPACES)}
    assert set(found) == {"inputs[1]", f"{ops.__name__}.REGISTRY"}
    assert f"is a {ops.__name__}.Scale made by the original code" in found["inputs[1]"].message
    assert "isinstance(op, tuple(REGISTRY.values()))" in found["inputs[1]"].message
    assert f"{ops.__name__}.Scale" in found[f"{ops.__name__}.REGISTRY"].message
    assert "extern" in found["inputs[1]"].next_step


def test_an_isinstance_check_on_an_input_made_outside_the_package_is_diagnosed(
    source_tree: Any,
) -> None:
    module = make_package(
        source_tree,
        {
            "batches.py": """
            import dataclasses

            import torch


            @dataclasses.dataclass
            class Batch:
                x: torch.Tensor
                scale: float = 1.0


            def unpack(batch):
                if isinstance(batch, Batch):
                    return batch.x * batch.scale
                return batch
            """,
            "model.py": """
            from torch import nn

            from .batches import unpack


            class BatchModel(nn.Module):
                def forward(self, batch):
                    return unpack(batch)
            """,
        },
    )
    batches = importlib.import_module(module.__name__.replace(".model", ".batches"))
    result = roundtrip(module.BatchModel(), kwargs={"batch": batches.Batch(torch.ones(2), 3.0)})
    assert result.verdict is Verdict.MISMATCH
    [mismatch] = of_kind(result, DiagnosticKind.OUTPUT_MISMATCH)
    assert f"torch.Tensor vs {batches.__name__}.Batch" in mismatch.message
    [crossing] = of_kind(result, DiagnosticKind.ISINSTANCE_ACROSS_NAMESPACES)
    assert crossing.location == "kwargs['batch']"


# --- unpicklable members ------------------------------------------------------------------


def test_a_lambda_member_fails_packaging_with_its_attribute_path(source_tree: Any) -> None:
    module = make_package(
        source_tree,
        {
            "model.py": """
            from torch import nn


            class WithLambda(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.act = lambda x: x

                def forward(self, x):
                    return self.act(x)
            """
        },
    )
    result = roundtrip(module.WithLambda(), torch.ones(2))
    assert result.verdict is Verdict.PACKAGING_FAILED
    assert result.archive_bytes == 0
    [packaging] = of_kind(result, DiagnosticKind.PACKAGING_ERROR)
    assert "An object could not be pickled." in packaging.message
    [member] = of_kind(result, DiagnosticKind.UNPICKLABLE_MEMBER)
    assert member.location == "model.act"
    assert "<lambda>" in member.message
    assert "module-level function" in member.next_step


def test_a_lock_deep_in_submodules_is_found_by_its_path(source_tree: Any) -> None:
    module = make_package(
        source_tree,
        {
            "model.py": """
            from torch import nn


            class Layer(nn.Module):
                def forward(self, x):
                    return x


            class Encoder(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = nn.ModuleList([Layer(), Layer(), Layer(), Layer()])


            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.encoder = Encoder()
            """
        },
    )
    model = module.Net()
    model.encoder.layers[3].hook = threading.Lock()
    result = roundtrip(model, torch.ones(2))
    [member] = of_kind(result, DiagnosticKind.UNPICKLABLE_MEMBER)
    assert member.location == "model.encoder.layers[3].hook"
    assert "lock" in member.message


# --- mocked modules -------------------------------------------------------------------------


def test_a_mocked_module_called_in_forward_is_named(source_tree: Any) -> None:
    module = make_package(
        source_tree,
        {
            "helpers.py": """
            def scale(x):
                return x * 2
            """,
            "model.py": """
            from torch import nn

            from . import helpers


            class UsesHelper(nn.Module):
                def forward(self, x):
                    return helpers.scale(x)
            """,
        },
    )
    helpers = module.__name__.replace(".model", ".helpers")
    result = roundtrip(module.UsesHelper(), torch.ones(2), mock=[helpers])
    assert result.verdict is Verdict.RUN_FAILED
    assert helpers in result.mocked
    [mocked] = of_kind(result, DiagnosticKind.MOCKED_MODULE_USED)
    assert mocked.location == f"{helpers}.scale"
    assert f"{helpers} was mocked" in mocked.message
    assert f"stop mocking {helpers}" in mocked.next_step


def test_a_pickled_object_of_a_mocked_module_fails_packaging(source_tree: Any) -> None:
    module = make_package(
        source_tree,
        {
            "parts.py": """
            from torch import nn


            class Part(nn.Module):
                def forward(self, x):
                    return x
            """,
            "model.py": """
            from torch import nn

            from .parts import Part


            class Whole(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.part = Part()

                def forward(self, x):
                    return self.part(x)
            """,
        },
    )
    parts = module.__name__.replace(".model", ".parts")
    result = roundtrip(module.Whole(), torch.ones(2), mock=parts)
    assert result.verdict is Verdict.PACKAGING_FAILED
    [mocked] = of_kind(result, DiagnosticKind.MOCKED_MODULE_USED)
    assert mocked.location == parts


# --- dependencies ---------------------------------------------------------------------------

USES_THIRD_PARTY = """
    from torch import nn

    import {third}


    class Doubler(nn.Module):
        def forward(self, x):
            return {third}.double(x)
"""


def test_a_dependency_that_nothing_installs_is_interned_by_provenance(
    source_tree: Any,
) -> None:
    third = source_tree({"__init__.py": "def double(x):\n    return x * 2\n"})
    module = make_package(source_tree, {"model.py": USES_THIRD_PARTY.format(third=third)})
    result = roundtrip(module.Doubler(), torch.ones(2))
    assert result.passed, result.report()
    assert third in result.interned


def test_an_explicit_extern_overrides_provenance(source_tree: Any) -> None:
    third = source_tree({"__init__.py": "def double(x):\n    return x * 2\n"})
    module = make_package(source_tree, {"model.py": USES_THIRD_PARTY.format(third=third)})
    result = roundtrip(module.Doubler(), torch.ones(2), extern=[f"{third}.**"])
    assert result.passed, result.report()
    assert third in result.externed


def test_a_package_that_ships_c_extensions_is_externed_automatically(source_tree: Any) -> None:
    pytest.importorskip("numpy")
    module = make_package(
        source_tree,
        {
            "model.py": """
            import numpy
            from torch import nn


            class Numpyish(nn.Module):
                def forward(self, x):
                    return x * float(numpy.sqrt(4.0))
            """
        },
    )
    result = roundtrip(module.Numpyish(), torch.ones(2))
    assert result.passed, result.report()
    assert "numpy" in result.externed


# --- load errors ----------------------------------------------------------------------------


def test_module_code_reading_a_file_next_to_it_is_a_located_not_hermetic_load_failure(
    source_tree: Any,
) -> None:
    module = make_package(
        source_tree,
        {
            "data.txt": "3\n",
            "model.py": """
            import os

            from torch import nn

            with open(os.path.join(os.path.dirname(__file__), "data.txt")) as file:
                FACTOR = int(file.read())


            class FromFile(nn.Module):
                def forward(self, x):
                    return x * FACTOR
            """,
        },
    )
    result = roundtrip(module.FromFile(), torch.ones(2))
    assert result.verdict is Verdict.LOAD_FAILED
    [error] = of_kind(result, DiagnosticKind.NOT_HERMETIC)
    assert "file-system access next to __file__" in error.message
    assert "FileNotFoundError" in error.message
    assert error.location == f"{module.__name__.replace('.', '/')}.py:6"
    assert "save_binary" in error.next_step


def test_a_module_importing_a_module_the_package_lacks_is_located_not_hermetic(
    source_tree: Any,
) -> None:
    module = make_package(
        source_tree,
        {
            "plugin.py": "FACTOR = 2\n",
            "model.py": """
            import importlib

            from torch import nn

            NAME = "".join(["plu", "gin"])  # computed: the exporter cannot see it
            FACTOR = importlib.import_module("." + NAME, __package__).FACTOR


            class Plugged(nn.Module):
                def forward(self, x):
                    return x * FACTOR
            """,
        },
    )
    result = roundtrip(module.Plugged(), torch.ones(2))
    assert result.verdict is Verdict.LOAD_FAILED
    [error] = of_kind(result, DiagnosticKind.NOT_HERMETIC)
    assert "an import the package cannot serve" in error.message
    assert f"{module.__name__.rpartition('.')[0]}.plugin" in error.message
    assert error.location == f"{module.__name__.replace('.', '/')}.py:7"
    assert "intern" in error.next_step
    assert result.to_dict()["diagnostics"][0]["location"] == error.location


def test_a_metadata_probe_for_a_missing_distribution_is_located_not_hermetic(
    tmp_path: Path,
) -> None:
    path = tmp_path / "probe.pt"
    with PackageExporter(path) as exporter:
        exporter.extern(["importlib", "importlib.**"])
        exporter.save_source_string(
            "probe", "import importlib.metadata\n\nV = importlib.metadata.version('no-such-dist')\n"
        )
    with (
        PackageImporter(path) as importer,
        pytest.raises(importlib.metadata.PackageNotFoundError) as raised,
    ):
        importer.import_module("probe")
    diagnostic = not_hermetic_diagnostic("loading", raised.value)  # after close: no source
    assert diagnostic is not None
    assert diagnostic.kind is DiagnosticKind.NOT_HERMETIC
    assert "a distribution metadata lookup" in diagnostic.message
    assert diagnostic.location == "probe.py:3"
    assert "install no-such-dist" in diagnostic.next_step
