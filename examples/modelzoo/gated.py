"""A gated MLP whose activation is chosen by name when it is built.

Broken on purpose: the chosen activation is stored as a lambda, and lambdas
cannot be pickled, so the model cannot be packaged at all.
"""

from __future__ import annotations

import torch
from torch import nn


class GatedMLP(nn.Module):
    def __init__(self, width: int = 8, activation: str = "swish") -> None:
        super().__init__()
        self.proj = nn.Linear(width, 2 * width)
        if activation == "swish":
            self.activation = lambda x: x * torch.sigmoid(x)
        else:
            self.activation = torch.tanh

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * self.activation(gate)
