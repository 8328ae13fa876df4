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
