"""A model repository built on transformers, diffusers and peft, gated with one flag.

``acme_models`` has a custom ``PreTrainedModel`` registered with the Auto
classes, a diffusers ``ModelMixin`` and a PEFT adapter on its own model; its
tests also call a transformers GPT-2 directly. ``pytest --torchpkg-roundtrip``
with no ini keys must pass every model, and a test that runs afterwards must
see transformers' registries as they are without the plugin.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from pytest_torchpkg.plugin import REPORT_OPTION, ROUNDTRIP_OPTION

XDIST = ("-p", "xdist", "-n", "2")

ACME = {
    "acme_models/__init__": "",
    "acme_models/tiny_lm": """
        import torch
        from torch import nn
        from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel


        class TinyLMConfig(PretrainedConfig):
            model_type = "acme-tiny-lm"

            def __init__(self, vocab_size=32, hidden_size=8, **kwargs):
                self.vocab_size = vocab_size
                self.hidden_size = hidden_size
                super().__init__(**kwargs)


        class TinyLM(PreTrainedModel):
            config_class = TinyLMConfig

            def __init__(self, config):
                super().__init__(config)
                self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
                self.mix = nn.Linear(config.hidden_size, config.hidden_size)
                self.head = nn.Linear(config.hidden_size, config.vocab_size)
                self.post_init()

            def forward(self, input_ids):
                return self.head(torch.tanh(self.mix(self.embed(input_ids))))


        AutoConfig.register("acme-tiny-lm", TinyLMConfig)
        AutoModel.register(TinyLMConfig, TinyLM)
    """,
    "acme_models/denoiser": """
        from diffusers import ConfigMixin, ModelMixin
        from diffusers.configuration_utils import register_to_config
        from torch import nn


        class TinyDenoiser(ModelMixin, ConfigMixin):
            @register_to_config
            def __init__(self, channels: int = 3):
                super().__init__()
                self.conv = nn.Conv2d(channels, channels, 3, padding=1)

            def forward(self, x):
                return x - self.conv(x)
    """,
    "acme_models/adapted": """
        from peft import LoraConfig, get_peft_model

        from acme_models.tiny_lm import TinyLM, TinyLMConfig


        def adapted_lm():
            return get_peft_model(TinyLM(TinyLMConfig()), LoraConfig(r=2, target_modules=["mix"]))
    """,
    "tests/test_models": """
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel

        from acme_models.adapted import adapted_lm
        from acme_models.denoiser import TinyDenoiser
        from acme_models.tiny_lm import TinyLM, TinyLMConfig


        def test_tiny_lm():
            assert TinyLM(TinyLMConfig())(torch.tensor([[1, 2, 3]])).shape == (1, 3, 32)


        def test_denoiser():
            assert TinyDenoiser()(torch.ones(1, 3, 4, 4)).shape == (1, 3, 4, 4)


        def test_adapter():
            assert adapted_lm()(torch.tensor([[4, 5]])).shape == (1, 2, 32)


        def test_gpt2_used_directly():
            config = GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=50, n_positions=16,
                                bos_token_id=0, eos_token_id=0)
            out = GPT2LMHeadModel(config).eval()(torch.tensor([[1, 2, 3]]))
            assert out.logits.shape == (1, 3, 50)
    """,
    "tests/test_zz_after": """
        from transformers import AutoConfig, AutoModel

        from acme_models.tiny_lm import TinyLM, TinyLMConfig


        def test_the_auto_registry_holds_the_repositorys_classes():
            config = AutoConfig.for_model("acme-tiny-lm")
            assert type(config) is TinyLMConfig
            assert type(AutoModel.from_config(config)) is TinyLM
    """,
}
MODELS = {
    "acme_models.tiny_lm.TinyLM",
    "acme_models.denoiser.TinyDenoiser",
    "peft.peft_model.PeftModel",
    "transformers.models.gpt2.modeling_gpt2.GPT2LMHeadModel",
}

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture
def acme(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(**ACME)
    pytester.makeini("[pytest]\npythonpath = .\n")
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
    result.assert_outcomes(passed=5)
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
    result.assert_outcomes(passed=1, deselected=4)
    [test] = json.loads(acme.path.joinpath("report.json").read_text())["tests"]
    kinds = [diagnostic["kind"] for diagnostic in test["models"][0]["diagnostics"]]
    assert kinds == ["import-side-effect"]


def test_in_process_clones_would_change_the_later_test(acme: pytest.Pytester) -> None:
    """Why clones run in a worker: loaded here, the package re-registers its classes."""
    acme.makeini("[pytest]\npythonpath = .\ntorchpkg_isolation = in-process\n")
    result = acme.runpytest_subprocess(ROUNDTRIP_OPTION)
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["FAILED tests/test_zz_after.py::*"])
