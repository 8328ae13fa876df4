"""The mangling helpers give torch.package's answers, edge cases included.

Every name is run through ``torch.package._mangling`` and ``torchpkg.mangling``;
the results, or the types of the errors raised, must agree (torchpkg may raise
a subclass of torch.package's exception).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("torch")

from torch.package import _mangling as theirs

from torchpkg import mangling as ours

NAMES = [
    "",
    ".",
    "foo",
    "foo.bar",
    "foo/bar.py",
    "torch_package_importer",
    "<torch_package_0>",
    "<torch_package_0>.",
    "<torch_package_0>.foo",
    "<torch_package_12>.foo.bar",
    "<torch_package_3>.foo/bar.py",
    "<torch_package_0>foo",  # no dot after the parent: torch.package reads it all as parent
    "<torch_package_0>foo.bar",
    "<torch_package_1>.<torch_package_2>.foo",
    "<torch_package_>.foo",
    "<torch_package_x>.foo",
    "foo.<torch_package_0>.bar",
    " <torch_package_0>.foo",
]
NOT_NAMES: list[Any] = [None, 3, b"<torch_package_0>.foo", ["foo"]]
FUNCTIONS = ["is_mangled", "demangle", "get_mangle_prefix"]


def _outcome(call: Callable[[], Any]) -> Any:
    """What a call returns, or the type of exception it raises."""
    try:
        return call()
    except Exception as error:
        return type(error)


def _agree(their_outcome: Any, our_outcome: Any) -> bool:
    if isinstance(their_outcome, type) and issubclass(their_outcome, Exception):
        return isinstance(our_outcome, type) and issubclass(our_outcome, their_outcome)
    return bool(our_outcome == their_outcome)


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("name", NAMES)
def test_helpers_give_the_same_answer_for_each_name(function: str, name: str) -> None:
    expected = _outcome(lambda: getattr(theirs, function)(name))
    assert _outcome(lambda: getattr(ours, function)(name)) == expected


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("value", NOT_NAMES, ids=repr)
def test_helpers_raise_the_same_error_for_what_is_not_a_name(function: str, value: Any) -> None:
    expected = _outcome(lambda: getattr(theirs, function)(value))
    assert _agree(expected, _outcome(lambda: getattr(ours, function)(value)))


@pytest.mark.parametrize("name", [*NAMES, *NOT_NAMES], ids=repr)
def test_mangler_mangles_each_name_alike(name: Any) -> None:
    """Same outcome once each mangler's own parent is taken out."""
    their_mangler, our_mangler = theirs.PackageMangler(), ours.PackageMangler()

    def mangled(mangler: Any) -> Any:
        outcome = _outcome(lambda: mangler.mangle(name))
        return (
            outcome.replace(mangler.parent_name(), "<parent>")
            if isinstance(outcome, str)
            else outcome
        )

    assert _agree(mangled(their_mangler), mangled(our_mangler))


def test_mangling_an_empty_name_raises_assertion_error_like_torch_package() -> None:
    with pytest.raises(AssertionError):
        theirs.PackageMangler().mangle("")
    with pytest.raises(AssertionError, match="empty"):
        ours.PackageMangler().mangle("")


def test_mangling_an_empty_name_is_also_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        ours.PackageMangler().mangle("")


@pytest.mark.parametrize("name", NAMES)
def test_mangler_demangles_its_own_and_foreign_names_alike(name: str) -> None:
    """Names of the mangler's own parent, another mangler's and unmangled ones."""
    their_mangler, our_mangler = theirs.PackageMangler(), ours.PackageMangler()
    for their_name, our_name in [
        (their_mangler.parent_name() + "." + name, our_mangler.parent_name() + "." + name),
        (their_mangler.parent_name() + name, our_mangler.parent_name() + name),
        (name, name),
    ]:
        expected = their_mangler.demangle(their_name).replace(their_mangler.parent_name(), "<p>")
        assert our_mangler.demangle(our_name).replace(our_mangler.parent_name(), "<p>") == expected


def test_a_mangled_name_round_trips_through_both_demanglers() -> None:
    their_mangled = theirs.PackageMangler().mangle("foo.bar")
    our_mangled = ours.PackageMangler().mangle("foo.bar")
    for demangle in (theirs.demangle, ours.demangle):
        assert demangle(their_mangled) == demangle(our_mangled) == "foo.bar"
