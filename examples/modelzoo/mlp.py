"""An MLP configured by a dataclass (with postponed annotations, which
torch.package cannot load: its bug #74909)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import Residual


@dataclass
class MLPConfig:
    width: int = 16
    depth: int = 3
    classes: int = 4


class MLP(nn.Module):
    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        blocks = [
            Residual(nn.Sequential(nn.Linear(config.width, config.width), nn.GELU()))
            for _ in range(config.depth)
        ]
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(config.width, config.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
