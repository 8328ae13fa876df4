"""A model repository built on transformers, diffusers and peft, gated with one flag.

``acme_models`` has a custom ``PreTrainedModel`` registered with the Auto
classes, a diffusers ``ModelMixin`` and a PEFT adapter on its own model; its
tests also call a transformers GPT-2 directly. ``pytest --torchpkg-roundtrip``
with no ini keys must pass every model, and a test that runs afterwards must
see transformers' registries as they are without the plugin.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_torchpkg.plugin import REPORT_OPTION, ROUNDTRIP_OPTION

XDIST = ("-p", "xdist", "-n", "2")

# The repository, as files (``make bench`` times the gate on the same one).
ACME_REPO = Path(__file__).parent / "acme_repo"
MODELS = {
    "acme_models.tiny_lm.TinyLM",
    "acme_models.denoiser.TinyDenoiser",
    "peft.peft_model.PeftModel",
    "transformers.models.gpt2.modeling_gpt2.GPT2LMHeadModel",
}


@pytest.fixture
def acme(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(ACME_REPO, pytester.path, dirs_exist_ok=True)
    return pytester


@pytest.fixture(params=["in-process", "xdist"])
def run_acme(
    request: pytest.FixtureRequest, acme: pytest.Pytester
) -> Callable[..., pytest.RunResult]:
    extra = XDIST if request.param == "xdist" else ()

    def run(*args: str) -> pytest.RunResult:
        return acme.runpytest_subprocess(*args, *extra)

    return run


def test_every_model_of_the_repository_passes_with_no_configuration(
    acme: pytest.Pytester, run_acme: Callable[..., pytest.RunResult]
) -> None:
    result = run_acme(ROUNDTRIP_OPTION, f"{REPORT_OPTION}=report.json")
    result.assert_outcomes(passed=6)
    report = json.loads(acme.path.joinpath("report.json").read_text())
    models = {model["model"]: model for test in report["tests"] for model in test["models"]}
    assert set(models) == MODELS
    assert all(model["verdict"] == "passed" for model in models.values())
    assert "acme_models.tiny_lm" in models["acme_models.tiny_lm.TinyLM"]["interned"]
    assert set(models["peft.peft_model.PeftModel"]["distributions"]) >= {"peft", "transformers"}


def test_the_registry_side_effect_of_the_clones_import_is_reported(acme: pytest.Pytester) -> None:
    result = acme.runpytest_subprocess(
        ROUNDTRIP_OPTION, f"{REPORT_OPTION}=report.json", "-k", "tiny_lm"
    )
    result.assert_outcomes(passed=1, deselected=5)
    [test] = json.loads(acme.path.joinpath("report.json").read_text())["tests"]
    kinds = [diagnostic["kind"] for diagnostic in test["models"][0]["diagnostics"]]
    assert kinds == ["import-side-effect"]


def test_in_process_clones_would_change_the_later_test(acme: pytest.Pytester) -> None:
    """Why clones run in a worker: loaded here, the package re-registers its classes."""
    result = acme.runpytest_subprocess(ROUNDTRIP_OPTION, "-o", "torchpkg_isolation=in-process")
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(
        ["FAILED tests/test_zz_after.py::test_the_auto_registry_holds_the_repositorys_classes*"]
    )
