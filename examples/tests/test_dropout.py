from __future__ import annotations

import torch
from modelzoo.dropout import DropoutClassifier


def test_dropout_makes_training_outputs_random() -> None:
    model = DropoutClassifier().train()
    x = torch.randn(8, 16)
    assert not torch.equal(model(x), model(x))


def test_evaluation_outputs_are_deterministic() -> None:
    model = DropoutClassifier().eval()
    x = torch.randn(8, 16)
    assert torch.equal(model(x), model(x))
