"""The real suites' slices under the gate: it fails only the true positives listed.

For each third-party suite that ``python -m upstream fetch`` (or ``make upstream``)
has fetched, run its slice (``upstream.suites``) three times, as ``python -m
upstream run --slice`` does: plain, under ``--torchpkg-roundtrip`` and under
``--torchpkg-roundtrip=report``. The plain run must pass everything it runs; the
gate must fail exactly the slice's listed true positives, each for its listed
kind (another failure is a false positive until shown otherwise, a missing one a
lost check); report mode must change no outcome. Skipped where the suite is not
fetched. Select with ``-k upstream``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from upstream.runner import run_suite
from upstream.suites import SUITES, Suite
from upstream.summary import summarize
from upstream.text import render


@pytest.mark.parametrize("suite", SUITES, ids=[suite.name for suite in SUITES])
def test_upstream_slice(suite: Suite, tmp_path: Path) -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    pytest.importorskip(suite.name)
    if not suite.fetched():
        pytest.skip(f"{suite.requirement} is not fetched (python -m upstream fetch)")

    summary = summarize(run_suite(suite, tmp_path, slice_only=True, timeout=600))
    runs = summary["runs"]
    text = render(summary)

    plain = runs["plain"]["outcomes"]
    assert plain["passed"] > 0, f"the plain run ran nothing:\n{text}"
    assert plain["failed"] == plain["error"] == 0, f"the plain run did not pass:\n{text}"
    # The gate fails exactly the slice's listed true positives, each for its reason;
    # report mode changes no outcome.
    expected = {(nodeid, kind) for nodeid, kind, _ in suite.true_positives}
    gated = {(change["nodeid"], change["kind"]) for change in runs["gate"]["changes"]}
    assert gated == expected, f"the gate changed other outcomes than expected:\n{text}"
    changes = runs["report"]["changes"]
    assert not changes, f"{len(changes)} outcomes changed in report mode:\n{text}"
