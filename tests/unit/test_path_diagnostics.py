"""What the traces say: a divergent path only where the two runs forked, and every
path a diagnostic shows relative to the repository.

Torch-free: the traces are written by hand.
"""

from __future__ import annotations

import os

from torchpkg.roundtrip._diagnostics import Diagnostic, DiagnosticKind, relative_paths
from torchpkg.roundtrip._trace import Traced, divergence_diagnostic, leak_diagnostics

ROOT = os.path.join(os.sep, "home", "dev", "repo")


def original(*lines: tuple[str, int]) -> Traced:
    """The test's call, its lines keyed by the records of the package's files."""
    return Traced(outside_lines=list(lines))


def clone(*lines: tuple[str, int]) -> Traced:
    return Traced(lines=list(lines))


# --- divergent-path: true or silent ------------------------------------------------------


def test_an_isinstance_fork_is_a_divergent_path() -> None:
    found = divergence_diagnostic(
        original(("zoo/model.py", 20), ("zoo/model.py", 21)),
        clone(("zoo/model.py", 20), ("zoo/model.py", 22)),
    )
    assert found is not None
    assert found.kind is DiagnosticKind.DIVERGENT_PATH
    assert found.location == "zoo/model.py:21"


def test_an_original_that_ran_a_subset_of_the_clones_lines_is_no_fork() -> None:
    """A warm functools.cache in the original: it skipped the body the clone ran."""
    cached = original(("zoo/model.py", 10), ("zoo/model.py", 11))
    fresh = clone(*[("zoo/model.py", line) for line in (10, 11, 5, 6, 7)])
    assert divergence_diagnostic(cached, fresh) is None


def test_a_clone_that_ran_a_subset_of_the_originals_lines_is_no_fork() -> None:
    assert (
        divergence_diagnostic(
            original(("zoo/model.py", 10), ("zoo/model.py", 11)), clone(("zoo/model.py", 10))
        )
        is None
    )


def test_a_forward_patched_for_the_call_is_no_fork() -> None:
    """The original ran the test's replacement, the clone the model's forward: the files
    they have in common hold no line that only the original ran."""
    patched = original(("zoo/model.py", 8), ("tests/test_model.py", 30))
    real = clone(("zoo/model.py", 8), ("zoo/model.py", 12), ("zoo/layers.py", 3))
    assert divergence_diagnostic(patched, real) is None


def test_lines_in_files_only_one_run_went_through_are_no_fork() -> None:
    assert (
        divergence_diagnostic(
            original(("zoo/model.py", 1), ("zoo/a.py", 2)),
            clone(("zoo/model.py", 1), ("zoo/b.py", 2)),
        )
        is None
    )


def test_a_fork_of_one_line_each_says_1_line() -> None:
    found = divergence_diagnostic(
        original(("zoo/model.py", 20), ("zoo/model.py", 21)),
        clone(("zoo/model.py", 20), ("zoo/model.py", 22)),
    )
    assert found is not None
    assert "(1 line only the original ran, 1 line only the clone)" in found.message


def test_a_fork_of_several_lines_counts_them_in_the_plural() -> None:
    found = divergence_diagnostic(
        original(*[("zoo/model.py", line) for line in (1, 2, 3)]),
        clone(*[("zoo/model.py", line) for line in (1, 5, 6, 7)]),
    )
    assert found is not None
    assert "(2 lines only the original ran, 3 lines only the clone)" in found.message


# --- paths relative to the repository ----------------------------------------------------


def test_a_leak_names_a_repository_file_and_its_call_site_relative_to_the_root() -> None:
    traced = Traced(outside={f"{ROOT}/zoo/helpers.py": (f"{ROOT}/zoo/model.py", 10)})
    [leak] = leak_diagnostics(traced, (ROOT,))
    assert leak.message.startswith("while the clone ran, zoo/helpers.py ran from its file")
    assert "(first called from zoo/model.py:10)" in leak.message
    assert leak.location == "zoo/model.py:10"


def test_a_leak_outside_the_roots_keeps_its_path() -> None:
    elsewhere = os.path.join(os.sep, "opt", "shared", "helpers.py")
    traced = Traced(outside={elsewhere: ("zoo/model.py", 10)})
    [leak] = leak_diagnostics(traced, (ROOT,))
    assert f"while the clone ran, {elsewhere} ran" in leak.message


def test_a_divergent_path_in_a_file_found_under_the_root_is_shown_relative() -> None:
    path = f"{ROOT}/zoo/model.py"
    found = divergence_diagnostic(
        original((path, 20), (path, 21)), clone((path, 20), (path, 22)), (ROOT,)
    )
    assert found is not None
    assert found.location == "zoo/model.py:21"
    assert "the original ran zoo/model.py:21 and" in found.message


def test_every_path_under_the_root_in_any_diagnostic_is_made_relative() -> None:
    diagnostic = Diagnostic(
        DiagnosticKind.RUN_ERROR,
        f'the clone raised ValueError\n  File "{ROOT}/tests/test_model.py", line 3',
        f"see {ROOT}/zoo/model.py",
        f"{ROOT}/zoo/model.py:7",
    )
    [shown] = relative_paths([diagnostic], (ROOT,))
    assert shown.message == 'the clone raised ValueError\n  File "tests/test_model.py", line 3'
    assert shown.next_step == "see zoo/model.py"
    assert shown.location == "zoo/model.py:7"


def test_a_path_that_only_ends_like_the_root_is_left_alone() -> None:
    other = os.path.join(os.sep, "mnt") + ROOT + "/zoo/model.py"
    diagnostic = Diagnostic(DiagnosticKind.RUN_ERROR, f"at {other}", "", None)
    [shown] = relative_paths([diagnostic], (ROOT,))
    assert shown.message == f"at {other}"
