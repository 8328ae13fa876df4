"""What the recorder captures at a call: the model as called, torch's context, the state after."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from torchpkg.roundtrip import (
    Call,
    DiagnosticKind,
    ModelSnapshot,
    Observation,
    RngState,
    TorchContext,
    _capture,
    roundtrip,
)

torch = pytest.importorskip("torch")


def captured(mode: Any) -> TorchContext:
    """The context captured under ``mode``, bfloat16 autocast and a float64 default."""
    torch.set_default_dtype(torch.float64)
    try:
        with mode, torch.autocast("cpu", dtype=torch.bfloat16):
            return TorchContext.capture()
    finally:
        torch.set_default_dtype(torch.float32)


def test_the_context_holds_grad_mode_autocast_and_the_default_dtype() -> None:
    context = captured(torch.no_grad())
    assert not context.grad_enabled
    assert context.autocast == (("cpu", torch.bfloat16),)
    assert context.default_dtype is torch.float64


def test_an_applied_context_is_in_force_inside_and_undone_after() -> None:
    context = captured(torch.inference_mode())
    before = TorchContext.capture()
    with context.applied():
        inside = TorchContext.capture()
        square = torch.ones(2, 2, dtype=torch.float32)
        assert (square @ square).dtype == torch.bfloat16
    assert inside.differences(context) == []
    assert TorchContext.capture().differences(before) == []


def test_differences_name_each_setting_that_differs() -> None:
    context = TorchContext.capture()
    with torch.no_grad():
        assert context.differences(TorchContext.capture()) == ["grad_enabled True vs False"]


def test_the_snapshot_is_the_model_as_it_was_before_the_test_changed_it() -> None:
    model = torch.nn.Linear(2, 2)
    weight = model.weight.detach().clone()
    snapshot = ModelSnapshot.capture(model)
    with torch.no_grad():
        model.weight.add_(1.0)
    model.eval()
    restored = snapshot.restore()
    assert restored is not model
    assert torch.equal(restored.weight, weight)
    assert restored.training
    assert isinstance(restored.weight, torch.nn.Parameter)


def test_a_large_models_parameters_are_referenced_and_a_later_change_makes_it_stale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_capture, "CAPTURE_BUDGET", 0)
    model = torch.nn.Linear(2, 2)
    snapshot = ModelSnapshot.capture(model)
    assert snapshot.restore() is not None
    with torch.no_grad():
        model.weight.add_(1.0)
    assert snapshot.restore() is None


def test_the_state_after_the_call_has_the_buffers_forward_updated() -> None:
    """Batch norm updates its running statistics without moving their version counter."""
    norm = torch.nn.BatchNorm1d(3)
    snapshot = ModelSnapshot.capture(norm)
    norm(torch.randn(8, 3))
    state = snapshot.state_after(norm)
    assert state is not None
    assert torch.equal(state["running_mean"], norm.running_mean)
    assert not torch.equal(snapshot.restore().running_mean, norm.running_mean)
    norm.running_mean.zero_()
    assert not torch.equal(state["running_mean"], norm.running_mean)


def test_an_unpicklable_model_cannot_be_captured() -> None:
    model = torch.nn.Linear(2, 2)
    model.activation = lambda x: x
    with pytest.raises((AttributeError, pickle.PicklingError)):
        ModelSnapshot.capture(model)


def test_a_roundtrip_of_a_call_takes_no_inputs_of_its_own() -> None:
    model = torch.nn.Linear(2, 2)
    call = Call(model, (torch.ones(2),), {}, RngState.capture(), TorchContext.capture())
    with pytest.raises(TypeError, match="takes the inputs"):
        roundtrip(call, torch.ones(2))


def test_a_grad_tracked_tensor_the_model_holds_at_the_call_still_requires_grad() -> None:
    """zuko's Bayesian flows swap sampled (non-leaf) weights in for the call."""
    model = torch.nn.Module()
    model.weight = torch.ones(2, requires_grad=True) * 2
    restored = ModelSnapshot.capture(model).restore()
    assert restored.weight.requires_grad
    assert torch.equal(restored.weight.detach(), model.weight.detach())


def test_the_state_after_the_call_has_parameters_written_through_data() -> None:
    """gpytorch initialises variational parameters with ``.data.copy_``: no version moves."""
    model = torch.nn.Linear(2, 2)
    snapshot = ModelSnapshot.capture(model)
    model.weight.data.copy_(torch.full((2, 2), 7.0))
    state = snapshot.state_after(model)
    assert state is not None
    assert torch.equal(state["weight"], torch.full((2, 2), 7.0))


def test_a_model_too_large_to_copy_has_no_state_after_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_capture, "CAPTURE_BUDGET", 0)
    model = torch.nn.Linear(2, 2)
    assert ModelSnapshot.capture(model).state_after(model) is None


def test_a_model_that_cannot_be_captured_at_the_call_is_checked_as_it_is_with_a_note() -> None:
    """Bad input: the snapshot fails (an unpicklable member), the check goes on."""
    model = torch.nn.Linear(2, 2)
    outputs = model(torch.ones(2))
    call = Call(
        model,
        (torch.ones(2),),
        {},
        RngState.capture(),
        TorchContext.capture(),
        Observation.capture(model, outputs),
        capture_error="PicklingError: a member cannot be pickled",
    )
    result = roundtrip(call, isolation="in-process")
    assert result.passed, result.report()
    [note] = [d for d in result.diagnostics if d.kind is DiagnosticKind.NOT_CAPTURED]
    assert "PicklingError: a member cannot be pickled" in note.message
    assert "checked as it is at the end of the test" in note.message
