"""Bazel/Buck-style glob patterns over separated names.

A :class:`GlobGroup` decides which module names (separator ``"."``) or archive
paths (separator ``"/"``) an action or a filter applies to.  A candidate is split
into segments by the separator, and each pattern segment is one of:

* a literal (``foo``), which matches that segment exactly;
* a segment with wildcards (``foo*baz*``): ``*`` matches any run of characters,
  the empty run included, that does not contain the separator;
* a double wildcard (``**``), which matches zero or more whole, non-empty
  segments: ``torch.**`` matches ``torch`` and ``torch.nn.functional``.

Matching follows ``torch.package``'s ``GlobGroup`` exactly, including its edge
cases around empty segments (``a.**`` does not match ``a.``, ``**`` does not
match ``""``), so archive filters select the same records in both libraries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeAlias

__all__ = ["GlobGroup", "GlobPattern"]

GlobPattern: TypeAlias = str | Iterable[str]

_DOUBLE_STAR = "**"


class GlobGroup:
    """A set of include patterns minus a set of exclude patterns.

    A candidate matches when it matches at least one include pattern and no
    exclude pattern.  A ``str`` is a single pattern; any other iterable is
    several.  Patterns are compiled once here, because :meth:`matches` runs for
    every module an exporter sees and every record a filter looks at.

    >>> GlobGroup("torch.**", exclude="torch.testing.**").matches("torch.nn")
    True
    """

    __slots__ = ("_exclude", "_exclude_re", "_include", "_include_re", "_separator")

    def __init__(
        self, include: GlobPattern, *, exclude: GlobPattern = (), separator: str = "."
    ) -> None:
        if not separator:
            raise ValueError("GlobGroup separator must be a non-empty string")
        self._include = _as_patterns(include)
        self._exclude = _as_patterns(exclude)
        self._separator = separator
        self._include_re = _compile_any(self._include, separator)
        self._exclude_re = _compile_any(self._exclude, separator)

    @property
    def include(self) -> tuple[str, ...]:
        """The include patterns, in the order given."""
        return self._include

    @property
    def exclude(self) -> tuple[str, ...]:
        """The exclude patterns, in the order given."""
        return self._exclude

    @property
    def separator(self) -> str:
        """The string that splits a candidate into segments."""
        return self._separator

    def matches(self, candidate: str) -> bool:
        """Return whether ``candidate`` matches an include and no exclude pattern."""
        if self._include_re is None or self._include_re.fullmatch(candidate) is None:
            return False
        return self._exclude_re is None or self._exclude_re.fullmatch(candidate) is None

    def __repr__(self) -> str:
        return (
            f"GlobGroup(include={list(self._include)!r}, "
            f"exclude={list(self._exclude)!r}, separator={self._separator!r})"
        )

    __str__ = __repr__


def _as_patterns(patterns: GlobPattern) -> tuple[str, ...]:
    # A str is itself an iterable of str; treat it as one pattern, not characters.
    if isinstance(patterns, str):
        return (patterns,)
    return tuple(patterns)


def _compile_any(patterns: tuple[str, ...], separator: str) -> re.Pattern[str] | None:
    """Compile ``patterns`` into one alternation, or ``None`` when there are none."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{_pattern_regex(p, separator)})" for p in patterns), re.DOTALL)


def _pattern_regex(pattern: str, separator: str) -> str:
    """Translate one glob pattern into a regex source that must match a whole candidate."""
    sep = re.escape(separator)
    # One character that does not start a separator.
    char = f"[^{sep}]" if len(separator) == 1 else f"(?:(?!{sep}).)"
    nonempty_segment = f"{char}+"

    # Adjacent `**` segments match exactly what one does; collapsing them means a
    # `**` is always alone, first, or after a segment that already emitted itself.
    collapsed: list[str] = []
    for segment in pattern.split(separator):
        if _DOUBLE_STAR in segment and segment != _DOUBLE_STAR:
            raise ValueError(
                f"'**' can only appear as an entire path segment, got {segment!r} in {pattern!r}"
            )
        if not (segment == _DOUBLE_STAR and collapsed[-1:] == [_DOUBLE_STAR]):
            collapsed.append(segment)
    if collapsed == [_DOUBLE_STAR]:
        return f"{nonempty_segment}(?:{sep}{nonempty_segment})*"

    parts: list[str] = []
    # Whether the next literal segment must be preceded by a separator; a leading
    # `**` carries the separator after each segment it consumes instead.
    need_sep = False
    for segment in collapsed:
        if segment == _DOUBLE_STAR:
            if need_sep:
                parts.append(f"(?:{sep}{nonempty_segment})*")
            else:
                parts.append(f"(?:{nonempty_segment}{sep})*")
                continue
        else:
            if need_sep:
                parts.append(sep)
            parts.append(f"{char}*".join(re.escape(piece) for piece in segment.split("*")))
        need_sep = True
    return "".join(parts)
