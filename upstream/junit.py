"""Per-test outcomes from a ``--junitxml`` file.

A test case's ``classname`` is its node id's path, dotted, then any classes
(``test.kernels.test_rbf_kernel.TestRBFKernel``): the node id pytest printed is
rebuilt by finding the longest prefix that names a file under the rootdir (the
``file`` attribute of xunit1 names the file that defines the method, a base
class's for inherited tests). A test case seen twice (a failing call and an
erroring teardown, subtests) keeps its worst outcome.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["OUTCOMES", "Case", "read_cases"]

OUTCOMES: Final = ("passed", "failed", "skipped", "error")
# Which outcome wins when a test case reports several.
_RANK: Final = {"passed": 0, "skipped": 1, "error": 2, "failed": 3}


@dataclass(frozen=True)
class Case:
    nodeid: str
    outcome: str  # one of OUTCOMES
    message: str  # the first line of the failure / error / skip message
    seconds: float


def _nodeid(case: ET.Element, root: Path) -> str:
    parts = [part for part in case.get("classname", "").split(".") if part]
    name = case.get("name", "")
    for end in range(len(parts), 0, -1):
        file = "/".join(parts[:end]) + ".py"
        if (root / file).is_file():
            return "::".join([file, *parts[end:], name])
    return "::".join([*parts, name])


def _outcome(case: ET.Element) -> tuple[str, str]:
    found: list[tuple[str, str]] = []
    for child in case:
        kind = {"failure": "failed", "error": "error", "skipped": "skipped"}.get(child.tag)
        if kind is not None:
            text = child.get("message") or (child.text or "")
            found.append((kind, text.strip().split("\n", 1)[0][:300]))
    if not found:
        return "passed", ""
    return max(found, key=lambda item: _RANK[item[0]])


def read_cases(path: Path, root: Path) -> dict[str, Case]:
    """Node id -> outcome for every test case in the file (empty if there is none);
    ``root``: the run's rootdir."""
    if not path.is_file():
        return {}
    cases: dict[str, Case] = {}
    for element in ET.parse(path).getroot().iter("testcase"):
        nodeid = _nodeid(element, root)
        outcome, message = _outcome(element)
        seconds = float(element.get("time") or 0.0)
        old = cases.get(nodeid)
        if old is not None:
            seconds += old.seconds
            if _RANK[old.outcome] >= _RANK[outcome]:
                outcome, message = old.outcome, old.message
        cases[nodeid] = Case(nodeid, outcome, message, seconds)
    return cases
