"""Unit tests of torchpkg.policy: actions, ordered rules, implicit externs."""

from __future__ import annotations

import pytest

from torchpkg.policy import Action, Policy, Rule, is_implicitly_extern


def test_actions_are_the_four_exporter_verbs() -> None:
    assert [action.value for action in Action] == ["intern", "extern", "mock", "deny"]


def test_add_returns_the_rule_it_appends() -> None:
    policy = Policy()
    rule = policy.add(Action.MOCK, "a.**", exclude="a.b", allow_empty=False)
    assert isinstance(rule, Rule)
    assert policy.rules == [rule]
    assert rule.action is Action.MOCK
    assert rule.patterns.include == ("a.**",)
    assert rule.patterns.exclude == ("a.b",)
    assert rule.allow_empty is False
    assert rule.matched is False


def test_rules_keep_the_order_they_were_added_in() -> None:
    policy = Policy()
    first = policy.add(Action.EXTERN, "a")
    second = policy.add(Action.INTERN, "b")
    assert policy.rules == [first, second]


def test_match_returns_the_first_matching_rule_even_when_a_later_one_is_more_specific() -> None:
    policy = Policy()
    broad = policy.add(Action.INTERN, "pkg.**")
    policy.add(Action.EXTERN, "pkg.models")
    assert policy.match("pkg.models") is broad


def test_match_marks_only_the_rule_it_returns_as_matched() -> None:
    policy = Policy()
    broad = policy.add(Action.INTERN, "pkg.**")
    specific = policy.add(Action.EXTERN, "pkg.models")
    policy.match("pkg.models")
    assert broad.matched is True
    assert specific.matched is False


def test_match_returns_none_and_marks_nothing_when_no_rule_matches() -> None:
    policy = Policy()
    rule = policy.add(Action.INTERN, "pkg.**")
    assert policy.match("other") is None
    assert rule.matched is False


def test_an_excluded_module_falls_through_to_the_next_rule() -> None:
    policy = Policy()
    policy.add(Action.INTERN, "pkg.**", exclude="pkg.vendor.**")
    vendor = policy.add(Action.EXTERN, "pkg.vendor.**")
    assert policy.match("pkg.vendor.lib") is vendor


def test_a_rule_with_several_include_patterns_matches_any_of_them() -> None:
    policy = Policy()
    rule = policy.add(Action.MOCK, ["alpha", "beta.*"])
    assert policy.match("alpha") is rule
    assert policy.match("beta.gamma") is rule
    assert policy.match("beta.gamma.delta") is None


def test_unmatched_required_lists_allow_empty_false_rules_that_matched_nothing() -> None:
    policy = Policy()
    required = policy.add(Action.EXTERN, "needed.**", allow_empty=False)
    policy.add(Action.EXTERN, "optional.**", allow_empty=True)
    assert policy.unmatched_required() == [required]


def test_a_required_rule_stops_being_unmatched_once_it_matches() -> None:
    policy = Policy()
    policy.add(Action.EXTERN, "needed.**", allow_empty=False)
    policy.match("needed.sub")
    assert policy.unmatched_required() == []


def test_a_required_rule_shadowed_by_an_earlier_rule_stays_unmatched() -> None:
    policy = Policy()
    policy.add(Action.INTERN, "pkg.**")
    shadowed = policy.add(Action.EXTERN, "pkg.models", allow_empty=False)
    policy.match("pkg.models")
    assert policy.unmatched_required() == [shadowed]


def test_describe_names_the_action_and_its_patterns() -> None:
    policy = Policy()
    plain = policy.add(Action.INTERN, "pkg.**")
    excluding = policy.add(Action.DENY, ["a", "b"], exclude="a.x")
    assert plain.describe() == "intern(['pkg.**'])"
    assert excluding.describe() == "deny(['a', 'b'], exclude=['a.x'])"


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("torch", True),
        ("torch.nn", True),
        ("torch.nn.functional", True),
        ("os", True),
        ("os.path", True),
        ("json.decoder", True),
        ("sys", False),
        ("io", False),
        ("numpy", False),
        ("torchvision", False),
        ("iox", False),
    ],
)
def test_is_implicitly_extern_covers_torch_and_the_standard_library_but_sys_and_io(
    module: str, expected: bool
) -> None:
    assert is_implicitly_extern(module) is expected
