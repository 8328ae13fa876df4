"""A small language model built on Hugging Face transformers, as model repositories write them.

Its config and model register themselves with transformers' Auto classes when
this module is imported. The gate interns this module and externs
transformers (an installed distribution), with no configuration; the clone
runs in a worker process, so its import registers the packaged classes there
and never in the test session.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel


class TinyLMConfig(PretrainedConfig):
    model_type = "modelzoo-tiny-lm"

    def __init__(self, vocab_size: int = 32, hidden_size: int = 16, **kwargs: Any) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        super().__init__(**kwargs)


class TinyLM(PreTrainedModel):
    config_class = TinyLMConfig

    def __init__(self, config: TinyLMConfig) -> None:
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.mix = nn.Linear(config.hidden_size, config.hidden_size)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.mix(self.embed(input_ids))))


AutoConfig.register(TinyLMConfig.model_type, TinyLMConfig)
AutoModel.register(TinyLMConfig, TinyLM)
