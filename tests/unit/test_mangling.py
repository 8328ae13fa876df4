"""Mangle parents: the ``<torch_package_N>`` names PackageImporters serve modules under."""

from __future__ import annotations

import re

import pytest

import torchpkg
from torchpkg.mangling import PackageMangler, demangle, get_mangle_prefix, is_mangled

MANGLE_PARENT = re.compile(r"<torch_package_\d+>")


# --- is_mangled -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "<torch_package_0>",
        "<torch_package_0>.foo",
        "<torch_package_12>.foo.bar",
        "<torch_package_3>.foo/bar.py",
    ],
)
def test_names_with_a_leading_mangle_parent_are_mangled(name: str) -> None:
    assert is_mangled(name)


@pytest.mark.parametrize(
    "name",
    [
        "foo",
        "foo.bar",
        "foo/bar.py",
        "torch_package_importer",
        "torch_package_0.foo",
        "<torch_package_>.foo",
        "<torch_package_x>.foo",
        "foo.<torch_package_0>.bar",
        "",
    ],
)
def test_names_without_a_leading_mangle_parent_are_not_mangled(name: str) -> None:
    assert not is_mangled(name)


# --- demangle -------------------------------------------------------------------------


def test_demangle_strips_the_mangle_parent_of_a_module_name() -> None:
    assert demangle("<torch_package_0>.foo.bar") == "foo.bar"


def test_demangle_strips_the_mangle_parent_of_a_file_name() -> None:
    assert demangle("<torch_package_7>.foo/bar.py") == "foo/bar.py"


def test_demangle_of_a_bare_mangle_parent_is_empty() -> None:
    assert demangle("<torch_package_0>") == ""


@pytest.mark.parametrize("name", ["foo.bar", "torch_package_importer", "foo/bar.py", ""])
def test_demangle_returns_unmangled_names_as_given(name: str) -> None:
    assert demangle(name) == name


def test_demangle_strips_only_the_leading_mangle_parent() -> None:
    assert demangle("<torch_package_1>.<torch_package_2>.foo") == "<torch_package_2>.foo"


def test_demangle_takes_everything_before_the_first_dot_as_the_parent() -> None:
    """As torch.package reads names that no importer makes."""
    assert demangle("<torch_package_0>foo.bar") == "bar"
    assert demangle("<torch_package_0>foo") == ""


# --- get_mangle_prefix ----------------------------------------------------------------


def test_get_mangle_prefix_returns_the_mangle_parent() -> None:
    assert get_mangle_prefix("<torch_package_42>.foo.bar") == "<torch_package_42>"


def test_get_mangle_prefix_is_everything_before_the_first_dot_of_a_mangled_name() -> None:
    assert get_mangle_prefix("<torch_package_0>foo.bar") == "<torch_package_0>foo"


def test_get_mangle_prefix_of_an_unmangled_name_is_the_name() -> None:
    assert get_mangle_prefix("foo.bar") == "foo.bar"


def test_top_level_package_reexports_the_mangling_helpers() -> None:
    assert torchpkg.is_mangled is is_mangled
    assert torchpkg.demangle is demangle
    assert torchpkg.get_mangle_prefix is get_mangle_prefix


# --- PackageMangler -------------------------------------------------------------------


def test_mangler_parent_is_a_torch_package_mangle_parent() -> None:
    assert MANGLE_PARENT.fullmatch(PackageMangler().parent_name())


def test_each_mangler_has_its_own_parent() -> None:
    parents = {PackageMangler().parent_name() for _ in range(100)}
    assert len(parents) == 100


def test_mangler_puts_its_parent_before_a_module_name() -> None:
    mangler = PackageMangler()
    assert mangler.mangle("foo.bar") == f"{mangler.parent_name()}.foo.bar"


def test_mangler_puts_its_parent_before_a_file_name() -> None:
    mangler = PackageMangler()
    assert mangler.mangle("foo/bar.py") == f"{mangler.parent_name()}.foo/bar.py"


def test_mangled_names_are_recognised_by_the_module_helpers() -> None:
    mangler = PackageMangler()
    mangled = mangler.mangle("foo.bar")
    assert is_mangled(mangled)
    assert demangle(mangled) == "foo.bar"
    assert get_mangle_prefix(mangled) == mangler.parent_name()


def test_mangler_demangle_undoes_mangle() -> None:
    mangler = PackageMangler()
    assert mangler.demangle(mangler.mangle("foo.bar")) == "foo.bar"


def test_mangler_demangle_leaves_another_manglers_names_alone() -> None:
    mine, other = PackageMangler(), PackageMangler()
    foreign = other.mangle("foo.bar")
    assert mine.demangle(foreign) == foreign


def test_mangler_demangle_leaves_unmangled_names_alone() -> None:
    assert PackageMangler().demangle("foo.bar") == "foo.bar"


def test_mangler_refuses_to_mangle_an_empty_name() -> None:
    with pytest.raises(ValueError, match="empty"):
        PackageMangler().mangle("")


def test_an_empty_name_is_an_assertion_error_too_as_torch_package_raises() -> None:
    with pytest.raises(AssertionError):
        PackageMangler().mangle("")
    assert issubclass(torchpkg.MangleError, torchpkg.TorchpkgError)


@pytest.mark.parametrize("value", [None, 3, b"foo", ["foo"]])
def test_mangler_refuses_what_is_not_a_str_with_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="str"):
        PackageMangler().mangle(value)  # type: ignore[arg-type]
