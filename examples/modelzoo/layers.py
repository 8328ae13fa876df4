"""Building blocks shared by the models."""

from __future__ import annotations

import torch
from torch import nn


class Residual(nn.Module):
    """x + f(x), with a learnable gate."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.gate = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gate * self.inner(x)
