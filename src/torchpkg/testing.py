"""Hypothesis strategies for model inputs, to property-check a roundtrip.

::

    from hypothesis import given
    from torchpkg.testing import model_inputs

    @given(model_inputs((3, 4)))
    def test_model_survives_packaging(inputs):
        roundtrip(model, *inputs).raise_for_failure()

Needs ``hypothesis`` (the ``test`` extra); torch is imported when a strategy
is built. ``import torchpkg`` never imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

from hypothesis import strategies as st

__all__ = ["Shape", "TensorSpec", "default_elements", "model_inputs", "shapes", "tensors"]

Shape: TypeAlias = Sequence[int]
# A shape (float32), a strategy of shapes, a strategy of tensors, or (shape, dtype).
TensorSpec: TypeAlias = Any

_BFLOAT16_BOUND = 2.0**99  # exact in float32; far from bfloat16 overflow


def _torch() -> Any:
    import torch

    return torch


def _dtype(dtype: Any) -> Any:
    torch = _torch()
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        found = getattr(torch, dtype, None)
        if not isinstance(found, torch.dtype):
            raise ValueError(f"{dtype!r} is not a torch dtype name (e.g. 'float32', 'int64')")
        return found
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype or its name, not {type(dtype).__name__}")
    return dtype


def default_elements(dtype: Any) -> st.SearchStrategy[Any]:
    """Every finite value of ``dtype`` (bfloat16: within +-2**99, so rounding stays finite)."""
    torch = _torch()
    dtype = _dtype(dtype)
    if dtype == torch.bool:
        return st.booleans()
    if dtype.is_complex:
        if dtype == torch.complex64:
            return st.complex_numbers(allow_nan=False, allow_infinity=False, width=64)
        return st.complex_numbers(allow_nan=False, allow_infinity=False, width=128)
    if dtype.is_floating_point:
        if dtype == torch.bfloat16:
            return st.floats(-_BFLOAT16_BOUND, _BFLOAT16_BOUND, width=32)
        if dtype == torch.float16:
            return st.floats(allow_nan=False, allow_infinity=False, width=16)
        if dtype == torch.float32:
            return st.floats(allow_nan=False, allow_infinity=False, width=32)
        return st.floats(allow_nan=False, allow_infinity=False)
    info = torch.iinfo(dtype)
    return st.integers(int(info.min), int(info.max))


def shapes(
    min_dims: int = 1, max_dims: int = 3, min_side: int = 1, max_side: int = 5
) -> st.SearchStrategy[tuple[int, ...]]:
    """Tensor shapes: ``min_dims`` to ``max_dims`` sides, each ``min_side`` to ``max_side``."""
    if not 0 <= min_dims <= max_dims or not 0 <= min_side <= max_side:
        raise ValueError("need 0 <= min_dims <= max_dims and 0 <= min_side <= max_side")
    side = st.integers(min_side, max_side)
    return st.lists(side, min_size=min_dims, max_size=max_dims).map(tuple)


def _fixed_shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, int) or not all(isinstance(side, int) for side in shape):
        raise TypeError(f"a shape is a sequence of ints, e.g. (3, 4), not {shape!r}")
    if any(side < 0 for side in shape):
        raise ValueError(f"shape {tuple(shape)} has a negative side")
    return tuple(shape)


def tensors(
    shape: Shape | st.SearchStrategy[Shape] = (),
    dtype: Any = None,
    elements: st.SearchStrategy[Any] | None = None,
    device: Any = "cpu",
) -> st.SearchStrategy[Any]:
    """Tensors of ``shape`` (or shapes drawn from a strategy) and ``dtype`` (default float32).

    ``elements`` draws each value (default: every finite value of the dtype).
    Keep shapes small: each element is drawn separately.
    """
    torch = _torch()
    resolved = _dtype(dtype)
    values = elements if elements is not None else default_elements(resolved)
    shape_strategy = shape if isinstance(shape, st.SearchStrategy) else st.just(_fixed_shape(shape))

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        size = _fixed_shape(draw(shape_strategy))
        count = 1
        for side in size:
            count *= side
        data = draw(st.lists(values, min_size=count, max_size=count))
        return torch.tensor(data, dtype=resolved, device=device).reshape(size)

    return build()


def _spec_strategy(spec: TensorSpec) -> st.SearchStrategy[Any]:
    torch = _torch()
    if isinstance(spec, st.SearchStrategy):

        @st.composite
        def from_strategy(draw: st.DrawFn) -> Any:
            value = draw(spec)
            if isinstance(value, torch.Tensor):
                return value
            return draw(tensors(_fixed_shape(value)))

        return from_strategy()
    if (
        isinstance(spec, tuple)
        and len(spec) == 2
        and isinstance(spec[1], (torch.dtype, str))
        and not isinstance(spec[0], int)
    ):
        return tensors(spec[0], dtype=spec[1])
    return tensors(spec)


def model_inputs(*specs: TensorSpec) -> st.SearchStrategy[tuple[Any, ...]]:
    """Tuples of tensors, one per spec, to call a model with: ``model(*inputs)``.

    A spec is a shape (``(3, 4)``: float32), a ``(shape, dtype)`` pair
    (``((3,), torch.int64)``), a strategy of shapes (``shapes(max_dims=2)``),
    or a strategy of tensors (``tensors((2, 2), dtype="float64")``).
    """
    return st.tuples(*(_spec_strategy(spec) for spec in specs))
