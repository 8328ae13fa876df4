"""GlobGroup: Bazel/Buck glob patterns over module names and archive paths."""

from __future__ import annotations

import pytest

from torchpkg.glob import GlobGroup


def test_literal_pattern_matches_exactly() -> None:
    group = GlobGroup("torch.nn")
    assert group.matches("torch.nn")
    assert not group.matches("torch.nnx")
    assert not group.matches("torch.nn.functional")
    assert not group.matches("torch")


def test_literal_segments_are_not_regexes() -> None:
    assert not GlobGroup("a+b.c").matches("aab.c")
    assert GlobGroup("a+b.c").matches("a+b.c")


def test_star_matches_within_one_segment() -> None:
    group = GlobGroup("torch.*")
    assert group.matches("torch.nn")
    assert group.matches("torch.functional")


def test_star_does_not_match_zero_segments() -> None:
    assert not GlobGroup("torch.*").matches("torch")


def test_star_does_not_cross_the_separator() -> None:
    assert not GlobGroup("torch.*").matches("torch.nn.functional")


def test_star_matches_the_empty_string() -> None:
    assert GlobGroup("torch*").matches("torch")
    assert GlobGroup("a.*.b").matches("a..b")


def test_several_stars_in_one_segment() -> None:
    group = GlobGroup("foo*baz*")
    assert group.matches("foobaz")
    assert group.matches("foo_bar_baz_qux")
    assert not group.matches("foo.baz")
    assert not group.matches("fobaz")


def test_double_star_matches_zero_segments() -> None:
    assert GlobGroup("torch.**").matches("torch")


def test_double_star_matches_many_segments() -> None:
    group = GlobGroup("torch.**")
    assert group.matches("torch.nn")
    assert group.matches("torch.nn.functional")
    assert not group.matches("torchvision")


def test_leading_double_star_matches_any_prefix() -> None:
    group = GlobGroup("**.utils")
    assert group.matches("utils")
    assert group.matches("a.b.utils")
    assert not group.matches("a.b.utils.x")
    assert not group.matches("myutils")


def test_inner_double_star_matches_zero_or_more_segments() -> None:
    group = GlobGroup("a.**.z")
    assert group.matches("a.z")
    assert group.matches("a.b.c.z")
    assert not group.matches("a.b.c")


def test_lone_double_star_matches_everything_without_empty_segments() -> None:
    group = GlobGroup("**")
    assert group.matches("a")
    assert group.matches("a.b.c")


def test_double_star_does_not_match_empty_segments() -> None:
    # As in torch.package: `**` consumes whole, non-empty segments only.
    assert not GlobGroup("**").matches("")
    assert not GlobGroup("a.**").matches("a.")
    assert not GlobGroup("**.b").matches(".b")
    assert not GlobGroup("a.**.b").matches("a..b")


def test_adjacent_double_stars_match_like_one() -> None:
    assert GlobGroup("**.**").matches("a")
    assert GlobGroup("a.**.**.b").matches("a.b")
    assert GlobGroup("a.**.**.b").matches("a.x.y.b")


def test_star_segment_then_double_star() -> None:
    group = GlobGroup("torch*.**")
    assert group.matches("torch")
    assert group.matches("torchvision")
    assert group.matches("torchvision.models")
    assert not group.matches("tor")


@pytest.mark.parametrize("pattern", ["a**", "**b", "a.**b.c", "***", "x.*.**y"])
def test_double_star_inside_a_segment_raises(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"'\*\*' can only appear as an entire path segment"):
        GlobGroup(pattern)


def test_double_star_inside_an_exclude_segment_raises() -> None:
    with pytest.raises(ValueError, match="entire path segment"):
        GlobGroup("**", exclude="a**")


def test_empty_separator_raises() -> None:
    with pytest.raises(ValueError, match="separator"):
        GlobGroup("a", separator="")


def test_str_include_is_one_pattern() -> None:
    group = GlobGroup("ab")
    assert group.include == ("ab",)
    assert not group.matches("a")


def test_iterable_include_is_several_patterns() -> None:
    group = GlobGroup(["torchvision.models.**", "torchvision.utils.**"])
    assert group.include == ("torchvision.models.**", "torchvision.utils.**")
    assert group.matches("torchvision.models.resnet")
    assert group.matches("torchvision.utils")
    assert not group.matches("torchvision.ops")


def test_generator_include_is_consumed_once() -> None:
    group = GlobGroup(p for p in ["a", "b"])
    assert group.matches("a")
    assert group.matches("b")


def test_empty_include_matches_nothing() -> None:
    assert not GlobGroup([]).matches("a")


def test_exclude_removes_matches() -> None:
    group = GlobGroup("**", exclude=["torchvision.**"])
    assert group.matches("numpy")
    assert not group.matches("torchvision")
    assert not group.matches("torchvision.models")


def test_str_exclude_is_one_pattern() -> None:
    group = GlobGroup("torch.**", exclude="torch.testing.**")
    assert group.exclude == ("torch.testing.**",)
    assert group.matches("torch.nn")
    assert not group.matches("torch.testing._internal")


def test_slash_separator_for_archive_paths() -> None:
    group = GlobGroup("**/*.py", separator="/")
    assert group.matches("setup.py")
    assert group.matches("pkg/sub/mod.py")
    assert not group.matches("pkg/data.pkl")


def test_dot_is_literal_with_slash_separator() -> None:
    group = GlobGroup("models/*", separator="/")
    assert group.matches("models/model_1.pkl")
    assert not group.matches("models/sub/x.pkl")
    assert not GlobGroup("a.b", separator="/").matches("a/b")


def test_include_and_exclude_with_slash_separator() -> None:
    group = GlobGroup(["**/utils.py", "**/*.pkl"], exclude="**/*.storage", separator="/")
    assert group.matches("torchvision/models/utils.py")
    assert group.matches("models/model_1.pkl")
    assert not group.matches(".data/94304870911616.storage")
    assert not group.matches("torchvision/models/resnet.py")


def test_multi_character_separator() -> None:
    group = GlobGroup("a::*", separator="::")
    assert group.matches("a::b:c")
    assert not group.matches("a::b::c")
    assert not group.matches("a:b")


def test_attributes_reflect_the_arguments() -> None:
    group = GlobGroup(["a", "b"], exclude=("c",), separator="/")
    assert (group.include, group.exclude, group.separator) == (("a", "b"), ("c",), "/")


def test_attributes_are_read_only() -> None:
    group = GlobGroup("a")
    with pytest.raises(AttributeError):
        group.include = ("b",)  # type: ignore[misc]


def test_repr_shows_patterns_and_separator() -> None:
    assert (
        repr(GlobGroup("torch.**")) == "GlobGroup(include=['torch.**'], exclude=[], separator='.')"
    )


def test_str_is_the_repr() -> None:
    group = GlobGroup(["a/**"], exclude="a/b", separator="/")
    assert (
        str(group) == repr(group) == "GlobGroup(include=['a/**'], exclude=['a/b'], separator='/')"
    )
