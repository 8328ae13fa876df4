"""Post-hoc calibration of classifier outputs.

In a real code base this module pulls in heavy fitting libraries, so the
repository's test configuration mocks it when packaging (``torchpkg_mock`` in
``examples/pytest.ini``), on the belief that only training code uses it.
"""

from __future__ import annotations

import torch


def temperature_scale(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return logits / temperature
