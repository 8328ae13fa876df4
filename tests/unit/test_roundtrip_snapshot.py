"""Unit tests of copy_inputs: the snapshots of a call's inputs and outputs that a replay
runs on and compares with, which nothing the test does afterwards may change."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

from torchpkg.roundtrip import copy_inputs

torch = pytest.importorskip("torch")


class Pair(NamedTuple):
    first: Any
    second: Any


@dataclasses.dataclass
class Output:
    logits: Any
    hidden: Any = None


class Holder:
    def __init__(self, **attributes: Any) -> None:
        vars(self).update(attributes)


def numbers() -> Iterator[int]:
    yield 1


def grad_tracked_categorical() -> Any:
    weight = torch.randn(4, requires_grad=True)
    return torch.distributions.Categorical(logits=weight * 2)


def test_a_tensor_is_a_detached_clone_that_keeps_requires_grad() -> None:
    tensor = torch.randn(3, requires_grad=True) * 2
    snapshot = copy_inputs(tensor)
    assert snapshot.requires_grad
    assert snapshot.is_leaf
    assert snapshot.data_ptr() != tensor.data_ptr()


def test_a_distribution_of_grad_tracked_tensors_is_copied() -> None:
    distribution = grad_tracked_categorical()
    snapshot = copy_inputs(distribution)
    assert type(snapshot) is type(distribution)
    assert snapshot.logits is not distribution.logits
    assert torch.equal(snapshot.logits, distribution.logits)


def test_a_lazy_property_read_afterwards_stays_out_of_the_snapshot() -> None:
    distribution = torch.distributions.Independent(grad_tracked_categorical(), 0)
    snapshot = copy_inputs(distribution)
    distribution.base_dist.probs  # a lazy_property: stored on the instance when first read
    assert "probs" in vars(distribution.base_dist)
    assert "probs" not in vars(snapshot.base_dist)


def test_changing_the_original_afterwards_leaves_the_snapshot_as_it_was() -> None:
    distribution = grad_tracked_categorical()
    before = distribution.logits.detach().clone()
    snapshot = copy_inputs(distribution)
    with torch.no_grad():
        distribution.logits.add_(1.0)
    distribution.extra = "set later"
    assert torch.equal(snapshot.logits, before)
    assert not hasattr(snapshot, "extra")


def test_a_parameter_in_the_inputs_is_a_new_parameter() -> None:
    layer = torch.nn.Linear(2, 2)
    snapshot = copy_inputs(((layer.weight,), {"layer": layer}))
    [weight], kwargs = snapshot
    assert type(weight) is torch.nn.Parameter
    assert weight is not layer.weight
    assert kwargs["layer"].weight is weight


def test_training_the_original_leaves_the_snapshots_parameter_unchanged() -> None:
    layer = torch.nn.Linear(2, 2)
    before = layer.weight.detach().clone()
    snapshot = copy_inputs({"layer": layer})
    optimizer = torch.optim.SGD(layer.parameters(), lr=1.0)
    layer(torch.ones(2)).sum().backward()
    optimizer.step()
    assert not torch.equal(layer.weight, before)
    assert torch.equal(snapshot["layer"].weight, before)


def test_an_object_held_twice_stays_one_object() -> None:
    shared = Holder(weights=torch.ones(2))
    first, second = copy_inputs([shared, shared])
    assert first is second
    assert first is not shared


def test_an_object_shared_by_two_objects_stays_shared() -> None:
    config = Holder(size=3)
    a, b = copy_inputs((Holder(config=config), Holder(config=config)))
    assert a.config is b.config
    assert a.config is not config


def test_a_tensor_held_by_an_object_and_a_container_stays_one_tensor() -> None:
    distribution = grad_tracked_categorical()
    copied, logits = copy_inputs([distribution, distribution.logits])
    assert copied.logits is logits


def test_containers_keep_their_types() -> None:
    ordered = collections.OrderedDict(a=torch.ones(1))
    snapshot = copy_inputs((Pair(torch.ones(1), 2), Output(torch.ones(1)), ordered))
    assert [type(item) for item in snapshot] == [Pair, Output, collections.OrderedDict]
    assert snapshot[2]["a"] is not ordered["a"]


def test_functions_and_local_classes_are_kept_as_they_are() -> None:
    class Local:
        pass

    function = lambda: None  # noqa: E731
    holder = Holder(kind=Local, function=function, instance=Local())
    snapshot = copy_inputs(holder)
    assert snapshot.kind is Local
    assert snapshot.function is function
    assert type(snapshot.instance) is Local
    assert snapshot.instance is not holder.instance


def test_unpicklable_contents_fall_back_without_error() -> None:
    generator = numbers()
    holder = Holder(generator=generator, weights=torch.ones(2))
    snapshot = copy_inputs({"holder": holder})["holder"]
    assert snapshot is not holder
    assert snapshot.generator is generator
    assert snapshot.weights is not holder.weights


def test_torch_function_modes_do_not_see_the_copying() -> None:
    class Recording(torch.overrides.TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[Any] = []

        def __torch_function__(
            self, func: Any, types: Any, args: Any = (), kwargs: Any = None
        ) -> Any:
            self.calls.append(func)
            return func(*args, **(kwargs or {}))

    inputs = (torch.ones(2), grad_tracked_categorical(), torch.nn.Linear(2, 2))
    with Recording() as mode:
        copy_inputs(inputs)
    assert mode.calls == []


def test_a_tensor_subclass_stays_its_subclass_with_its_attributes() -> None:
    class Tagged(torch.Tensor):
        pass

    tagged = torch.ones(2).as_subclass(Tagged)
    tagged.tag = "boxes"
    snapshot = copy_inputs(tagged)
    assert type(snapshot) is Tagged
    assert snapshot.tag == "boxes"
    assert snapshot.data_ptr() != tagged.data_ptr()
