"""The exporter's own reduction of plain tensors and parameters writes the pickle
torch's ``__reduce_ex__`` would: the same archive, byte for byte, at a fraction of
the cost. What is not plain is left to torch."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torchpkg.exporter  # noqa: E402
from torchpkg import PackageExporter, PackageImporter  # noqa: E402

LEGACY_DTYPES = [
    *(torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.uint8),
    *(torch.int16, torch.int32, torch.int64, torch.bool, torch.complex64),
]


def export(obj: Any) -> bytes:
    out = io.BytesIO()
    with PackageExporter(out) as exporter:
        exporter.save_pickle("obj", "obj.pkl", obj)
    return out.getvalue()


def export_with_torchs_reduction(obj: Any, monkeypatch: pytest.MonkeyPatch) -> bytes:
    with monkeypatch.context() as patch:
        patch.setattr(torchpkg.exporter.PackageExporter, "_reducers", lambda self, protocol: None)
        return export(obj)


def with_attribute(tensor: Any) -> Any:
    tensor.note = "kept"
    return tensor


def parameter_with_attribute() -> Any:
    parameter = torch.nn.Parameter(torch.ones(3))
    parameter.note = "kept"
    return parameter


def quantized() -> Any:
    with warnings.catch_warnings():
        # torch 2.13 deprecates the quantized dtypes; the archive format still has them.
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor", UserWarning)
        return torch.quantize_per_tensor(torch.randn(4), 0.1, 0, torch.quint8)


def shared_storage() -> Any:
    base = torch.arange(12.0)
    return [base, base[2:8].view(2, 3), base.view(3, 4).t()]


CASES: dict[str, Callable[[], Any]] = {
    "float32": lambda: torch.randn(4, 5),
    "every legacy dtype": lambda: [torch.ones(3, dtype=dtype) for dtype in LEGACY_DTYPES],
    "views sharing a storage": shared_storage,
    "storage offset and strides": lambda: torch.arange(30.0).view(5, 6)[1:, ::2],
    "zero elements": lambda: torch.empty(0, 3),
    "zero dimensions": lambda: torch.tensor(3.5),
    "requires grad": lambda: torch.ones(2, requires_grad=True),
    "parameter": lambda: torch.nn.Parameter(torch.randn(3)),
    "frozen parameter": lambda: torch.nn.Parameter(torch.randn(3), requires_grad=False),
    "module": lambda: torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)),
    # Left to torch:
    "tensor with a Python attribute": lambda: with_attribute(torch.ones(2)),
    "parameter with a Python attribute": parameter_with_attribute,
    "conjugate bit": lambda: torch.randn(3, dtype=torch.complex64).conj(),
    "negative bit": lambda: torch.randn(3, dtype=torch.complex64).conj().imag,
    "newer dtype": lambda: torch.ones(3, dtype=torch.uint16),
    "sparse": lambda: torch.eye(3).to_sparse(),
    "quantized": quantized,
    "meta device": lambda: torch.empty(2, 3, device="meta"),
}


@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
def test_the_archive_is_the_one_torchs_reduction_gives(
    make: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    obj = make()
    assert export(obj) == export_with_torchs_reduction(obj, monkeypatch)


@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
def test_what_was_reduced_loads_back_equal(make: Callable[[], Any]) -> None:
    obj = make()
    loaded = PackageImporter(io.BytesIO(export(obj))).load_pickle("obj", "obj.pkl")
    for ours, theirs in zip(tensors_of(obj), tensors_of(loaded), strict=True):
        assert type(ours) is type(theirs)
        assert described(ours) == described(theirs)


def described(tensor: Any) -> tuple[Any, ...]:
    """What must survive: kind, shape, strides, dtype, grad, and the values."""
    values = None
    if tensor.device.type != "meta":
        plain = tensor.dequantize() if tensor.is_quantized else tensor.to_dense()
        values = plain.resolve_conj().resolve_neg().tolist()
    strides = tensor.stride() if tensor.layout is torch.strided else None
    return (tensor.layout, tensor.size(), strides, tensor.dtype, tensor.requires_grad, values)


def tensors_of(obj: Any) -> list[Any]:
    if isinstance(obj, torch.nn.Module):
        return [*obj.parameters(), *obj.buffers()]
    if isinstance(obj, (list, tuple)):
        return [tensor for item in obj for tensor in tensors_of(item)]
    return [obj]


def test_a_tensor_with_a_backward_hook_is_left_to_torch_which_warns() -> None:
    tensor = torch.ones(2, requires_grad=True)
    tensor.register_hook(lambda grad: grad)
    with pytest.warns(UserWarning, match="backward hook .* will not be serialized"):
        export(tensor)
