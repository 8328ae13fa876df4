"""torch models defined in a script's ``__main__`` survive packaging: same outputs elsewhere."""

from __future__ import annotations

import pytest

from _main_programs import Main

pytest.importorskip("torch")

MLP = """
import sys
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class Config:
    width: int = 8


def activation(x):
    return F.gelu(x) * 0.5


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.body = nn.Linear(4, config.width)
        self.head = nn.Linear(config.width, 2)

    def forward(self, x):
        return self.head(activation(self.body(x)))


torch.manual_seed(0)
model = MLP(Config())
"""


def test_a_model_defined_in_a_script_gives_the_same_outputs_in_a_fresh_interpreter(
    main: Main,
) -> None:
    save_output = "torch.save(model(torch.linspace(-1, 1, 12).reshape(3, 4)), sys.argv[1] + '.out')"
    archive = main.export(MLP + save_output, "model")
    same = main.load(
        archive,
        "__import__('torch').equal(obj(__import__('torch').linspace(-1, 1, 12).reshape(3, 4)), "
        f"__import__('torch').load({str(archive) + '.out'!r}))",
    )
    assert same == "True"


def test_the_roundtrip_checks_a_model_defined_in_a_script(main: Main) -> None:
    check = "from torchpkg.roundtrip import roundtrip\nprint(roundtrip(model, torch.ones(2, 4)))"
    result = main.run(MLP + check)
    assert result.startswith("RoundtripResult(model='__main__.MLP', verdict=<Verdict.PASSED")


@pytest.mark.parametrize("isolation", ["process", "in-process"])
def test_inputs_and_outputs_of_classes_defined_in_the_script_cross_to_the_clone_and_back(
    main: Main, isolation: str
) -> None:
    result = main.run(
        f"""
        from dataclasses import dataclass

        import torch
        from torch import nn
        from torchpkg.roundtrip import roundtrip


        @dataclass
        class Batch:  # only the inputs use it: the worker gets it from its source
            x: torch.Tensor


        @dataclass
        class Prediction:
            y: torch.Tensor


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(3, 2)

            def forward(self, batch):
                return Prediction(self.fc(batch.x))


        result = roundtrip(Net(), Batch(torch.ones(4, 3)), isolation={isolation!r})
        print(result.verdict.name, result.diagnostics)
        """
    )
    assert result == "PASSED ()"
