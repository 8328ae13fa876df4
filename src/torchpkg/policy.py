"""What to do with each module: ordered pattern rules, first match wins."""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from torchpkg.errors import DISALLOWED_STDLIB
from torchpkg.glob import GlobGroup, GlobPattern

__all__ = ["Action", "Policy", "Rule", "is_implicitly_extern"]


class Action(enum.Enum):
    """The four things a module can become in an archive."""

    INTERN = "intern"  # its source goes into the archive
    EXTERN = "extern"  # the loading environment provides it
    MOCK = "mock"  # a stub goes into the archive; any use of it raises
    DENY = "deny"  # depending on it is an error


@dataclass
class Rule:
    """One ``intern``/``extern``/``mock``/``deny`` call."""

    action: Action
    patterns: GlobGroup
    allow_empty: bool
    matched: bool = field(default=False)
    # The patterns as the call gave them, in torch.package's words (its EmptyMatchError).
    given: str = ""

    def describe(self) -> str:
        exclude = f", exclude={list(self.patterns.exclude)}" if self.patterns.exclude else ""
        return f"{self.action.value}({list(self.patterns.include)}{exclude})"


def is_implicitly_extern(module: str) -> bool:
    """torch, torchpkg and the standard library (but ``sys`` and ``io``) need no rule.

    torchpkg is there for what it pickles itself (exported programs): the loading
    side has it, as it has torch.
    """
    top = module.partition(".")[0]
    return top in ("torch", "torchpkg") or (
        top in sys.stdlib_module_names and top not in DISALLOWED_STDLIB
    )


class Policy:
    """The exporter's rules, in the order they were given."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        # Decides modules that no rule matches (e.g. by provenance); None: they are errors.
        self.fallback: Callable[[str], Action | None] | None = None

    def add(
        self,
        action: Action,
        include: GlobPattern,
        exclude: GlobPattern = (),
        allow_empty: bool = True,
    ) -> Rule:
        given = f"GlobGroup(include={include}, exclude={exclude})"
        rule = Rule(action, GlobGroup(include, exclude=exclude), allow_empty, given=given)
        self.rules.append(rule)
        return rule

    def match(self, module: str) -> Rule | None:
        """The first rule that matches ``module``, marked as matched."""
        for rule in self.rules:
            if rule.patterns.matches(module):
                rule.matched = True
                return rule
        return None

    def decide(self, module: str) -> tuple[Action | None, Rule | None]:
        """The action for ``module`` and the rule that chose it (None: the fallback did)."""
        rule = self.match(module)
        if rule is not None:
            return rule.action, rule
        return (self.fallback(module) if self.fallback is not None else None), None

    def unmatched_required(self) -> list[Rule]:
        return [rule for rule in self.rules if not rule.allow_empty and not rule.matched]
