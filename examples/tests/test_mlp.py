from __future__ import annotations

import torch
from modelzoo.mlp import MLP, MLPConfig


def test_logits_have_one_column_per_class() -> None:
    model = MLP(MLPConfig(width=16, classes=4))
    assert model(torch.randn(5, 16)).shape == (5, 4)


def test_every_parameter_gets_a_gradient() -> None:
    model = MLP(MLPConfig())
    model(torch.randn(3, 16)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
