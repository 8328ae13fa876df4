"""Unit tests of how torchpkg.roundtrip compares the clone's outputs and state with the original's.

The models read a module global, ``SHIFT``: setting it on the original's module
after import makes the original's output differ from the clone's (the package
re-imports the module and sees the value in the source, 0).
"""

from __future__ import annotations

import enum
import functools
import gc
import importlib
import weakref
from types import ModuleType
from typing import Any

import pytest

from torchpkg.roundtrip import Diagnostic, DiagnosticKind, RoundtripResult, Verdict, roundtrip
from torchpkg.roundtrip._compare import Tolerance, compare_values

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


# --- objects without value equality ------------------------------------------------------

FLOW = """
    import torch
    from torch import distributions, nn

    SHIFT = 0.0


    class Shift(distributions.Transform):
        \"\"\"Like zuko's transforms: torch's Transform.__eq__ is identity.\"\"\"

        bijective = True
        domain = codomain = distributions.constraints.real

        def __init__(self, shift):
            super().__init__()
            self.shift = shift

        def _call(self, x):
            return x + self.shift


    class Flow(nn.Module):
        def forward(self, x):
            base = distributions.Normal(x, torch.ones_like(x))
            return distributions.TransformedDistribution(base, [Shift(x + SHIFT)])
"""


class Identity:
    """A class whose ``__eq__`` is identity, as torch.distributions.Transform's is."""

    def __init__(self, **state: Any) -> None:
        vars(self).update(state)

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__

    def method(self) -> None:
        pass


class Cached:
    """Equal by ``value``; ``cache`` is not part of its value."""

    def __init__(self, value: int, cache: object) -> None:
        self.value = value
        self.cache = cache

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cached) and self.value == other.value

    __hash__ = object.__hash__


def paths(original: Any, clone: Any) -> list[str]:
    return [difference.path for difference in compare_values(original, clone, Tolerance())]


def normal_through_affine(loc: float) -> Any:
    base = torch.distributions.Normal(torch.full((3,), loc), torch.ones(3))
    affine = torch.distributions.AffineTransform(torch.ones(3), 2.0)
    return torch.distributions.TransformedDistribution(base, [affine])


def test_objects_with_identity_eq_and_equal_state_are_equal() -> None:
    assert paths(Identity(shift=torch.ones(2)), Identity(shift=torch.ones(2))) == []


def test_a_state_difference_is_reported_by_its_attribute_path() -> None:
    original = Identity(transforms=[Identity(shift=torch.ones(2))])
    clone = Identity(transforms=[Identity(shift=torch.zeros(2))])
    assert paths(original, clone) == ["output.transforms[0].shift"]


def test_a_missing_attribute_is_reported_on_its_object() -> None:
    [difference] = compare_values(Identity(a=1, b=2), Identity(a=1), Tolerance())
    assert difference.path == "output"
    assert "only the original has ['b']" in difference.message


def test_the_clones_copy_of_a_class_compares_by_state() -> None:
    packaged = type("Identity", (Identity,), {"__module__": "<torch_package_7>.models"})
    mine = type("Identity", (Identity,), {"__module__": "models"})
    assert paths(mine(x=1), packaged(x=1)) == []
    assert paths(mine(x=1), packaged(x=2)) == ["output.x"]


def test_torch_distributions_compare_equal_with_an_equal_fresh_one() -> None:
    assert paths(normal_through_affine(0.0), normal_through_affine(0.0)) == []


def test_torch_distributions_differ_at_the_differing_parameter() -> None:
    assert paths(normal_through_affine(0.0), normal_through_affine(1.0)) == ["output.base_dist.loc"]


def test_eq_saying_equal_wins_over_a_differing_cache() -> None:
    assert paths(Cached(1, cache=[1]), Cached(1, cache=[2])) == []


def test_eq_saying_unequal_with_a_differing_state_is_a_difference() -> None:
    assert paths(Cached(1, cache=None), Cached(2, cache=None)) == ["output.value"]


def test_objects_without_state_differ_unless_eq_says_equal() -> None:
    [difference] = compare_values(object(), object(), Tolerance())
    assert difference.path == "output"


def test_functions_compare_by_demangled_name() -> None:
    def local() -> None:
        pass

    packaged = type(local)(local.__code__, {})
    packaged.__module__ = f"<torch_package_7>.{local.__module__}"
    packaged.__qualname__ = local.__qualname__
    assert paths(local, packaged) == []
    assert paths(len, len) == []
    assert paths(len, abs) == ["output"]


def test_bound_methods_compare_their_functions_and_objects() -> None:
    assert paths(Identity(x=1).method, Identity(x=1).method) == []
    assert paths(Identity(x=1).method, Identity(x=2).method) == ["output.__self__.x"]


def test_partials_compare_function_arguments_and_keywords() -> None:
    assert paths(functools.partial(max, 1, key=abs), functools.partial(max, 1, key=abs)) == []
    assert paths(functools.partial(max, 1, key=abs), functools.partial(max, 2, key=abs)) == [
        "output.args[0]"
    ]
    assert paths(functools.partial(max, key=abs), functools.partial(max, key=len)) == [
        "output.keywords['key']"
    ]


def test_weakrefs_compare_their_referents() -> None:
    one, same, other = Identity(x=1), Identity(x=1), Identity(x=2)
    assert paths(weakref.ref(one), weakref.ref(same)) == []
    assert paths(weakref.ref(one), weakref.ref(other)) == ["output().x"]


def test_a_dead_weakref_equals_only_a_dead_one() -> None:
    dead, also_dead = weakref.ref(Identity()), weakref.ref(Identity())
    gc.collect()
    alive = Identity()
    assert paths(dead, also_dead) == []
    assert paths(dead, weakref.ref(alive)) == ["output()"]


def test_sizes_dtypes_and_devices_compare_as_values() -> None:
    assert paths(torch.Size([2, 3]), torch.Size([2, 3])) == []
    [difference] = compare_values(torch.Size([2]), torch.Size([3]), Tolerance())
    assert difference.message == "torch.Size([2]) vs torch.Size([3])"
    assert paths(torch.float32, torch.float64) == ["output"]
    assert paths(torch.device("cpu"), torch.device("meta")) == ["output"]


def test_enums_compare_by_name() -> None:
    color = enum.Enum("Color", ["RED", "GREEN"])
    assert paths(color.RED, color.RED) == []
    assert paths(color.RED, color.GREEN) == ["output"]


def test_a_distribution_with_an_identity_eq_transform_roundtrips(source_tree: Any) -> None:
    package = source_tree({"__init__.py": "", "flow.py": FLOW})
    flow = importlib.import_module(f"{package}.flow")
    assert roundtrip(flow.Flow(), torch.randn(3)).passed


def test_a_differing_transform_parameter_is_reported_by_its_path(source_tree: Any) -> None:
    package = source_tree({"__init__.py": "", "flow.py": FLOW})
    flow = importlib.import_module(f"{package}.flow")
    flow.SHIFT = 0.5
    result = roundtrip(flow.Flow(), torch.randn(3))
    [diagnostic] = mismatches(result, DiagnosticKind.OUTPUT_MISMATCH)
    assert diagnostic.location == "output.transforms[0].shift"
