from __future__ import annotations

import torch
from modelzoo.tiny_lm import TinyLM, TinyLMConfig
from transformers import AutoConfig, AutoModel


def test_logits_cover_the_vocabulary() -> None:
    torch.manual_seed(0)
    model = TinyLM(TinyLMConfig())
    assert model(torch.tensor([[1, 2, 3]])).shape == (1, 3, 32)


def test_the_auto_classes_build_this_repositorys_model() -> None:
    """Runs after the model above was checked: the registry still holds our classes."""
    config = AutoConfig.for_model("modelzoo-tiny-lm")
    assert type(config) is TinyLMConfig
    assert type(AutoModel.from_config(config)) is TinyLM
