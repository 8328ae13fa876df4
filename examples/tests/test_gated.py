from __future__ import annotations

import torch
from modelzoo.gated import GatedMLP


def test_gate_keeps_the_width() -> None:
    model = GatedMLP(width=8)
    assert model(torch.randn(4, 8)).shape == (4, 8)
