"""A classifier with dropout: random in training mode, which is how it is tested.

Healthy: a roundtrip replays the RNG state from before the call, so the clone
drops the same units as the original did.
"""

from __future__ import annotations

import torch
from torch import nn


class DropoutClassifier(nn.Module):
    def __init__(self, width: int = 16, classes: int = 4, p: float = 0.3) -> None:
        super().__init__()
        self.hidden = nn.Linear(width, width)
        self.dropout = nn.Dropout(p)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(torch.relu(self.hidden(x))))
