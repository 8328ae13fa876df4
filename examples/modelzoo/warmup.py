"""An MLP whose output ramps up over its first calls (a warm-up schedule).

Broken on purpose: the step count lives in a module global, not on the model.
A package re-imports this module, so a packaged copy of a warmed-up model
counts from zero again and computes something else (torchpkg reports the
global that changed).
"""

from __future__ import annotations

import torch
from torch import nn

WARMUP_STEPS = 100
step = 0


class WarmupMLP(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        global step
        step += 1
        return self.body(x) * min(1.0, step / WARMUP_STEPS)
