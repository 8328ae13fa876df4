"""Tiny third-party models and the inputs a test would call them with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from diffusers import UNet2DModel
from peft import LoraConfig, get_peft_model
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    T5Config,
    T5ForConditionalGeneration,
    ViTConfig,
    ViTModel,
)

Case = tuple[torch.nn.Module, tuple[Any, ...], dict[str, Any]]


def _ids() -> torch.Tensor:
    return torch.randint(0, 100, (1, 6))


def _gpt2() -> GPT2LMHeadModel:
    config = GPT2Config(
        n_layer=2,
        n_head=2,
        n_embd=16,
        vocab_size=100,
        n_positions=32,
        bos_token_id=0,
        eos_token_id=0,
    )
    return GPT2LMHeadModel(config)


def gpt2() -> Case:
    return _gpt2().eval(), (_ids(),), {}


def bert() -> Case:
    config = BertConfig(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        vocab_size=100,
    )
    return BertModel(config).eval(), (_ids(),), {}


def t5() -> Case:
    config = T5Config(
        d_model=16,
        d_ff=32,
        num_layers=2,
        num_heads=2,
        d_kv=8,
        vocab_size=100,
        decoder_start_token_id=0,
    )
    ids = _ids()
    return T5ForConditionalGeneration(config).eval(), (ids,), {"decoder_input_ids": ids}


def vit() -> Case:
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
    )
    return ViTModel(config).eval(), (torch.randn(1, 3, 32, 32),), {}


def lora_gpt2() -> Case:
    adapter = LoraConfig(r=4, target_modules=["c_attn"], fan_in_fan_out=True)
    return get_peft_model(_gpt2(), adapter).eval(), (_ids(),), {}


def unet() -> Case:
    model = UNet2DModel(
        sample_size=8,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )
    return model.eval(), (torch.randn(1, 3, 8, 8), 3), {}


THIRD_PARTY: dict[str, Callable[[], Case]] = {
    "gpt2": gpt2,
    "bert": bert,
    "t5": t5,
    "vit": vit,
    "lora-gpt2": lora_gpt2,
    "unet2d": unet,
}
