import torch
from acme_models.adapted import adapted_lm
from acme_models.denoiser import TinyDenoiser
from acme_models.tiny_lm import TinyLM, TinyLMConfig
from transformers import GPT2Config, GPT2LMHeadModel


def test_tiny_lm():
    assert TinyLM(TinyLMConfig())(torch.tensor([[1, 2, 3]])).shape == (1, 3, 32)


def test_denoiser():
    assert TinyDenoiser()(torch.ones(1, 3, 4, 4)).shape == (1, 3, 4, 4)


def test_adapter():
    assert adapted_lm()(torch.tensor([[4, 5]])).shape == (1, 2, 32)


def test_gpt2_used_directly():
    config = GPT2Config(
        n_layer=1, n_head=2, n_embd=8, vocab_size=50, n_positions=16, bos_token_id=0, eos_token_id=0
    )
    out = GPT2LMHeadModel(config).eval()(torch.tensor([[1, 2, 3]]))
    assert out.logits.shape == (1, 3, 50)
