"""A test that runs an example script (``runpy``, as ``__main__``) has the script's models checked.

The script's classes say ``__main__``, which after ``run_path`` is pytest's
again: they are packaged from the script's source (README, "Models defined in
a script or a notebook").
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_torchpkg.plugin import ROUNDTRIP_OPTION

pytest.importorskip("torch")

RunPytest = Callable[..., pytest.RunResult]

TRAIN_SCRIPT = """
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(x).tanh()


    if __name__ == "__main__":
        Net()(torch.ones(2, 3))
"""

RUNS_THE_SCRIPT = """
    import runpy
    from pathlib import Path

    import torch


    def test_the_training_script_runs():
        runpy.run_path(str(Path(__file__).with_name("train.py")), run_name="__main__")
"""


def test_a_model_defined_by_a_script_a_test_runs_is_checked_and_survives(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(train=TRAIN_SCRIPT, test_example=RUNS_THE_SCRIPT)
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["1 models checked: 1 passed, 0 failed"])
