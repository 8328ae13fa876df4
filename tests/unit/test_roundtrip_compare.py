"""Unit tests of how torchpkg.roundtrip compares the clone's outputs and state with the original's.

The models read a module global, ``SHIFT``: setting it on the original's module
after import makes the original's output differ from the clone's (the package
re-imports the module and sees the value in the source, 0).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import pytest

from torchpkg.roundtrip import Diagnostic, DiagnosticKind, RoundtripResult, Verdict, roundtrip

torch = pytest.importorskip("torch")

CONTAINERS = """
    import collections
    import dataclasses
    import typing

    import torch
    from torch import nn

    SHIFT = 0.0


    class Pair(typing.NamedTuple):
        first: torch.Tensor
        second: torch.Tensor


    @dataclasses.dataclass
    class Output:
        logits: torch.Tensor
        hidden: tuple


    class ModelOutput(collections.OrderedDict):
        \"\"\"Like transformers' ModelOutput: a dict with to_tuple().\"\"\"

        def to_tuple(self):
            return tuple(self.values())


    class Containers(nn.Module):
        def __init__(self, kind):
            super().__init__()
            self.kind = kind

        def forward(self, x):
            y = x + SHIFT
            return {
                "tensor": lambda: y,
                "tuple": lambda: (x, y),
                "list": lambda: [x, y],
                "dict": lambda: {"x": x, "y": y},
                "dataclass": lambda: Output(logits=y, hidden=(x,)),
                "namedtuple": lambda: Pair(x, y),
                "model_output": lambda: ModelOutput(loss=None, logits=y),
                "nested": lambda: (x, {"logits": y}),
                "number": lambda: float(y.sum()),
            }[self.kind]()
"""

KINDS_AND_PATHS = [
    ("tensor", "output"),
    ("tuple", "output[1]"),
    ("list", "output[1]"),
    ("dict", "output['y']"),
    ("dataclass", "output.logits"),
    ("namedtuple", "output.second"),
    ("model_output", "output['logits']"),
    ("nested", "output[1]['logits']"),
    ("number", "output"),
]


@pytest.fixture
def containers(source_tree: Any) -> ModuleType:
    package = source_tree({"__init__.py": "", "containers.py": CONTAINERS})
    return importlib.import_module(f"{package}.containers")


def mismatches(result: RoundtripResult, kind: DiagnosticKind) -> list[Diagnostic]:
    return [diagnostic for diagnostic in result.diagnostics if diagnostic.kind is kind]


@pytest.mark.parametrize("kind", [kind for kind, _ in KINDS_AND_PATHS])
def test_equal_outputs_of_every_container_kind_pass(containers: ModuleType, kind: str) -> None:
    result = roundtrip(containers.Containers(kind), torch.randn(3))
    assert result.verdict is Verdict.PASSED, result.report()


@pytest.mark.parametrize(("kind", "path"), KINDS_AND_PATHS)
def test_a_differing_leaf_is_reported_by_its_path(
    containers: ModuleType, kind: str, path: str
) -> None:
    containers.SHIFT = 0.5
    result = roundtrip(containers.Containers(kind), torch.randn(3))
    assert result.verdict is Verdict.MISMATCH
    [diagnostic] = mismatches(result, DiagnosticKind.OUTPUT_MISMATCH)
    assert diagnostic.location == path


def test_a_tensor_mismatch_gives_the_count_and_the_largest_differences(
    containers: ModuleType,
) -> None:
    containers.SHIFT = 0.5
    result = roundtrip(containers.Containers("tensor"), torch.full((2, 3), 2.0))
    [diagnostic] = mismatches(result, DiagnosticKind.OUTPUT_MISMATCH)
    assert "6 of 6 elements differ" in diagnostic.message
    assert "max abs diff 0.5" in diagnostic.message
    assert "max rel diff 0.25" in diagnostic.message
    assert "first at [0, 0]: 2.5 vs 2.0" in diagnostic.message


def test_a_tiny_difference_fails_an_exact_comparison(containers: ModuleType) -> None:
    containers.SHIFT = 1e-6
    result = roundtrip(containers.Containers("tensor"), torch.ones(4, dtype=torch.float64))
    assert result.verdict is Verdict.MISMATCH


def test_atol_accepts_differences_within_it(containers: ModuleType) -> None:
    containers.SHIFT = 1e-6
    ones = torch.ones(4, dtype=torch.float64)
    assert roundtrip(containers.Containers("tensor"), ones, atol=1e-5).passed
    assert not roundtrip(containers.Containers("tensor"), ones, atol=1e-7).passed


def test_rtol_scales_with_the_clones_values(containers: ModuleType) -> None:
    containers.SHIFT = 1e-3
    big = torch.full((4,), 1000.0, dtype=torch.float64)
    small = torch.full((4,), 0.1, dtype=torch.float64)
    assert roundtrip(containers.Containers("tensor"), big, rtol=1e-5).passed
    assert not roundtrip(containers.Containers("tensor"), small, rtol=1e-5).passed


def test_the_tolerance_applies_to_numbers_too(containers: ModuleType) -> None:
    containers.SHIFT = 1e-6
    assert roundtrip(containers.Containers("number"), torch.ones(2), atol=1e-4).passed


def test_nans_in_the_same_places_are_equal(containers: ModuleType) -> None:
    x = torch.tensor([1.0, float("nan"), 3.0])
    assert roundtrip(containers.Containers("tuple"), x).passed


def test_a_dtype_difference_is_a_mismatch_even_when_values_agree(source_tree: Any) -> None:
    package = source_tree(
        {
            "__init__.py": "",
            "model.py": """
            import torch
            from torch import nn

            DTYPE = torch.float32


            class Cast(nn.Module):
                def forward(self, x):
                    return x.to(DTYPE)
            """,
        }
    )
    module = importlib.import_module(f"{package}.model")
    module.DTYPE = torch.float64
    result = roundtrip(module.Cast(), torch.ones(2))
    [diagnostic] = mismatches(result, DiagnosticKind.OUTPUT_MISMATCH)
    assert "tensor dtype differs: torch.float64 vs torch.float32" in diagnostic.message


def test_missing_dict_keys_are_a_mismatch(source_tree: Any) -> None:
    package = source_tree(
        {
            "__init__.py": "",
            "model.py": """
            from torch import nn

            KEYS = ("a",)


            class Keys(nn.Module):
                def forward(self, x):
                    return {key: x for key in KEYS}
            """,
        }
    )
    module = importlib.import_module(f"{package}.model")
    module.KEYS = ("a", "b")
    result = roundtrip(module.Keys(), torch.ones(2))
    [diagnostic] = mismatches(result, DiagnosticKind.OUTPUT_MISMATCH)
    assert diagnostic.location == "output"
    assert "only the original has ['b']" in diagnostic.message


def test_a_buffer_updated_differently_is_a_state_dict_mismatch(source_tree: Any) -> None:
    package = source_tree(
        {
            "__init__.py": "",
            "model.py": """
            import torch
            from torch import nn

            STEP = 0


            class Tracking(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.register_buffer("seen", torch.zeros(()))

                def forward(self, x):
                    self.seen += STEP
                    return x * 2
            """,
        }
    )
    module = importlib.import_module(f"{package}.model")
    module.STEP = 1
    result = roundtrip(module.Tracking(), torch.ones(2))
    assert result.verdict is Verdict.MISMATCH
    assert mismatches(result, DiagnosticKind.OUTPUT_MISMATCH) == []
    [diagnostic] = mismatches(result, DiagnosticKind.STATE_DICT_MISMATCH)
    assert diagnostic.location == "state_dict['seen']"
    assert "1 of 1 elements differ" in diagnostic.message


def test_many_differing_leaves_are_summarised_after_the_first_five(source_tree: Any) -> None:
    package = source_tree(
        {
            "__init__.py": "",
            "model.py": """
            from torch import nn

            SHIFT = 0.0


            class Many(nn.Module):
                def forward(self, x):
                    return [x + SHIFT for _ in range(8)]
            """,
        }
    )
    module = importlib.import_module(f"{package}.model")
    module.SHIFT = 1.0
    result = roundtrip(module.Many(), torch.ones(2))
    found = mismatches(result, DiagnosticKind.OUTPUT_MISMATCH)
    assert [d.location for d in found] == [f"output[{i}]" for i in range(5)] + [None]
    assert found[-1].message == "3 more differences: output[5], output[6], output[7]"
