"""Unit tests of torchpkg.testing: Hypothesis strategies for model inputs."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchpkg.roundtrip import roundtrip
from torchpkg.testing import default_elements, model_inputs, shapes, tensors

torch = pytest.importorskip("torch")

FEW = settings(max_examples=10, deadline=None)


@FEW
@given(tensors((3, 4)))
def test_tensors_have_the_shape_asked_for_and_float32_by_default(x: Any) -> None:
    assert x.shape == (3, 4)
    assert x.dtype == torch.float32


@FEW
@given(tensors((5,)))
def test_default_float_elements_are_finite(x: Any) -> None:
    assert bool(torch.isfinite(x).all())


@FEW
@given(tensors((2, 2), dtype="int16"))
def test_a_dtype_may_be_named_by_a_string(x: Any) -> None:
    assert x.dtype == torch.int16


@FEW
@given(tensors((4,), dtype=torch.bool))
def test_boolean_tensors_hold_booleans(x: Any) -> None:
    assert x.dtype == torch.bool


@FEW
@given(tensors((3,), elements=st.just(7.0)))
def test_elements_draw_every_value(x: Any) -> None:
    assert x.tolist() == [7.0, 7.0, 7.0]


@FEW
@given(tensors(shapes(min_dims=2, max_dims=2, max_side=3)))
def test_a_shape_strategy_draws_a_shape_per_example(x: Any) -> None:
    assert x.dim() == 2
    assert all(1 <= side <= 3 for side in x.shape)


@FEW
@given(tensors(()))
def test_an_empty_shape_makes_a_scalar_tensor(x: Any) -> None:
    assert x.dim() == 0


@FEW
@given(model_inputs((3, 4), ((2,), torch.int64), tensors((1,), dtype="float64")))
def test_model_inputs_builds_one_tensor_per_spec(inputs: tuple[Any, ...]) -> None:
    assert [(tuple(x.shape), x.dtype) for x in inputs] == [
        ((3, 4), torch.float32),
        ((2,), torch.int64),
        ((1,), torch.float64),
    ]


@FEW
@given(model_inputs(shapes(min_dims=1, max_dims=1, min_side=2, max_side=2)))
def test_model_inputs_accepts_a_strategy_of_shapes(inputs: tuple[Any, ...]) -> None:
    assert inputs[0].shape == (2,)


def test_an_unknown_dtype_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="not a torch dtype name"):
        tensors((2,), dtype="float33")


def test_a_negative_side_is_rejected() -> None:
    with pytest.raises(ValueError, match="negative side"):
        tensors((2, -1))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.complex64, torch.uint8])
def test_default_elements_fit_the_dtype(dtype: Any) -> None:
    @FEW
    @given(tensors((4,), dtype=dtype))
    def check(x: Any) -> None:
        assert x.dtype == dtype
        if dtype.is_floating_point or dtype.is_complex:
            assert bool(torch.isfinite(x).all())

    check()
    assert default_elements(dtype) is not None


AFFINE = """
    from torch import nn


    class Affine(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, x):
            return self.lin(x)
"""


# source_tree makes a fresh package per example and removes them all after the test.
@settings(FEW, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inputs=model_inputs((3, 4)))
def test_a_roundtrip_holds_for_every_drawn_input(source_tree: Any, inputs: tuple[Any, ...]) -> None:
    package = source_tree({"__init__.py": "", "affine.py": AFFINE})
    model = importlib.import_module(f"{package}.affine").Affine()
    result = roundtrip(model, *inputs)
    assert result.passed, result.report()
