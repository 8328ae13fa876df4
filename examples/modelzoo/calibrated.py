"""A classifier that calibrates its logits with temperature scaling.

Broken on purpose: ``forward`` calls into ``modelzoo.calibration``, which the
repository mocks when packaging; the packaged model's call reaches the stub.
"""

from __future__ import annotations

import torch
from torch import nn

from modelzoo import calibration


class CalibratedClassifier(nn.Module):
    def __init__(self, width: int = 16, classes: int = 4, temperature: float = 1.5) -> None:
        super().__init__()
        self.head = nn.Linear(width, classes)
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return calibration.temperature_scale(self.head(x), self.temperature)
