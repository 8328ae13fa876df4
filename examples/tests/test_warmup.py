from __future__ import annotations

import torch
from modelzoo.warmup import WarmupMLP


def test_outputs_grow_during_warmup() -> None:
    model = WarmupMLP(width=8)
    x = torch.randn(4, 8)
    first = model(x).abs().sum()
    second = model(x).abs().sum()
    assert second > first
