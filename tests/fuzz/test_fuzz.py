"""Fuzzing the reader, safe loading and the pickle scan with mutated inputs (Hypothesis).

Each target is fed mutants of small valid packages or pickles (the hostile corpus's
included) and must either succeed or raise one of torchpkg's typed errors, within a
time limit, and never run a payload. Runs are derandomized and short; fuzz/run.py
runs the same targets for hours.
"""

from __future__ import annotations

import random
import traceback
from pathlib import Path

import pytest
from _fuzz import EXPECTED, TARGETS, Outcome, Target, payload_marks, run_input
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchpkg.security import UnsafePickleError

LOADERS = ("load_archive", "load_pickle")
# Findings of fuzz/run.py, kept as regression inputs (tests/corpus/test_fuzz_findings.py
# has the ones made minimal by hand).
KEPT = sorted((Path(__file__).parent.parent / "corpus" / "fuzz").glob("*.bin"))


def describe(target: Target, data: bytes, outcome: Outcome) -> str:
    if outcome.ran_payload:
        return f"{target.name} ran a payload for input {data!r}"
    if outcome.printed:
        return f"{target.name} made the interpreter print {outcome.printed} for input {data!r}"
    assert outcome.error is not None
    trace = "".join(traceback.format_exception(outcome.error))
    return f"{target.name} raised {type(outcome.error).__name__} for input {data!r}:\n{trace}"


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_benign_seeds_run_without_error(name: str) -> None:
    """Mutants must start from inputs the target accepts, or they test nothing."""
    target = TARGETS[name]
    for seed in target.benign():
        outcome = run_input(target, seed)
        assert outcome.error is None, describe(target, seed, outcome)


@pytest.mark.parametrize("name", LOADERS)
def test_hostile_seeds_are_refused_by_safe_loading(name: str) -> None:
    target = TARGETS[name]
    for seed in target.hostile():
        outcome = run_input(target, seed)
        assert isinstance(outcome.error, UnsafePickleError), describe(target, seed, outcome)
        assert not outcome.ran_payload


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


def run_mutant(name: str, seed_index: int, rng: random.Random) -> None:
    target = TARGETS[name]
    seeds = target.seeds()
    data = target.mutate(rng, seeds[seed_index % len(seeds)], seeds)
    outcome = run_input(target, data)
    assert not outcome.finding, describe(target, data, outcome)
    assert outcome.error is None or isinstance(outcome.error, EXPECTED)


@pytest.mark.parametrize("name", sorted(set(TARGETS) - {"inspect_cli"}))
@fuzz_settings(200)
@given(seed_index=st.integers(min_value=0), rng=st.randoms(use_true_random=False))
def test_mutants_raise_only_typed_errors_and_run_no_payload(
    name: str, seed_index: int, rng: random.Random
) -> None:
    run_mutant(name, seed_index, rng)


@fuzz_settings(30)  # ten commands per input
@given(seed_index=st.integers(min_value=0), rng=st.randoms(use_true_random=False))
def test_inspect_commands_on_mutants_end_with_their_exit_codes(
    seed_index: int, rng: random.Random
) -> None:
    run_mutant("inspect_cli", seed_index, rng)


@pytest.mark.parametrize("path", KEPT, ids=[path.stem for path in KEPT])
def test_kept_input_gives_only_a_typed_error_and_runs_no_payload(path: Path) -> None:
    target = next(target for name, target in TARGETS.items() if path.name.startswith(name))
    before = payload_marks()
    outcome = run_input(target, path.read_bytes())
    assert not outcome.finding, describe(target, path.read_bytes(), outcome)
    assert payload_marks() == before
