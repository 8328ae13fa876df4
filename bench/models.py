"""Sources of the benchmark's models, generated into the session's scratch folder.

The models live in generated packages (not in ``bench``) so that both package
tools intern exactly the model code and extern torch, and so that every round
of the code workload can use a package neither tool has seen.
"""

from __future__ import annotations

import importlib
import textwrap

from torch import nn

from bench.core import Session

__all__ = ["code_package_files", "load_code_model", "make_large", "make_many", "model_bytes"]

_TENSOR_MODELS = '''\
"""Models of the benchmark's tensor workloads (generated)."""

import torch
from torch import nn


class Large(nn.Module):
    """``layers`` bias-free square Linear layers: few, big tensors."""

    def __init__(self, layers: int, dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class Block(nn.Module):
    """Five parameters and five buffers of ``numel`` floats each."""

    def __init__(self, numel: int) -> None:
        super().__init__()
        for i in range(5):
            self.register_parameter(f"weight{i}", nn.Parameter(torch.rand(numel)))
            self.register_buffer(f"stat{i}", torch.rand(numel))


class Many(nn.Module):
    """``blocks`` Blocks: many small tensors."""

    def __init__(self, blocks: int, numel: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(numel) for _ in range(blocks))
'''


def _tensor_models(session: Session) -> str:
    name = session.write_package("bench_models", {"__init__.py": _TENSOR_MODELS})
    importlib.import_module(name)
    return name


def make_large(session: Session, layers: int, dim: int) -> nn.Module:
    module = importlib.import_module(_tensor_models(session))
    model: nn.Module = module.Large(layers, dim)
    return model


def make_many(session: Session, blocks: int, numel: int) -> nn.Module:
    module = importlib.import_module(_tensor_models(session))
    model: nn.Module = module.Many(blocks, numel)
    return model


def model_bytes(model: nn.Module) -> int:
    return sum(t.nbytes for t in model.state_dict().values())


def _siblings(index: int) -> list[int]:
    """A few earlier modules that module ``index`` imports (no cycles, a deep graph)."""
    return sorted({j for j in (index - 1, index - 2, index // 2, index // 3) if 0 <= j < index})


def _module_source(index: int, functions: int) -> str:
    siblings = _siblings(index)
    lines = [
        f'"""Module {index} of a generated package: the code workload of the benchmarks."""',
        "",
        "from __future__ import annotations",
        "",
        "import math",
        "from collections.abc import Sequence",
        "",
        "import torch",
        "from torch import nn",
        "",
    ]
    if siblings:
        lines.append(f"from . import {', '.join(f'm{j:02d}' for j in siblings)}")
        lines.append(f"from .m{siblings[0]:02d} import helper as first_helper")
        lines.append("")
    lines += [
        f"SCALE = {index + 1}",
        "",
        "",
        "def helper(x: torch.Tensor) -> torch.Tensor:",
        "    return x * SCALE",
        "",
    ]
    for k in range(functions):
        sibling = f"m{siblings[k % len(siblings)]:02d}.helper(y)" if siblings else "helper(y)"
        lines += textwrap.dedent(
            f'''

            def f{k}(x: torch.Tensor, depth: int = 2) -> torch.Tensor:
                """Function {k}: a few lines of arithmetic."""
                y = helper(x) + {k}
                for step in range(depth):
                    if step % 2:
                        y = torch.tanh(y) * math.sqrt({k} + 1)
                    else:
                        y = {sibling} - step
                return y


            class Shape{k}:
                """A small plain class."""

                def __init__(self, sizes: Sequence[int] = ({k}, {k + 1})) -> None:
                    self.sizes = list(sizes)

                def area(self) -> int:
                    return math.prod(self.sizes)

                def __repr__(self) -> str:
                    return f"Shape{k}({{self.sizes}})"
            '''
        ).splitlines()
    lines += textwrap.dedent(
        """


        class Block(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.linear = nn.Linear(4, 4)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return f0(self.linear(x))
        """
    ).splitlines()
    return "\n".join(lines) + "\n"


def code_package_files(modules: int, functions: int) -> dict[str, str]:
    """A package of ``modules`` modules and ``model.py``, whose Net holds a Block of each."""
    files = {"__init__.py": '"""A generated package (benchmarks)."""\n'}
    for index in range(modules):
        files[f"m{index:02d}.py"] = _module_source(index, functions)
    names = [f"m{index:02d}" for index in range(modules)]
    blocks = "".join(f"                {name}.Block(),\n" for name in names)
    files["model.py"] = (
        '"""The model: one Block from every module of the package."""\n\n'
        "from torch import nn\n\n"
        + "".join(f"from . import {name}\n" for name in names)
        + "\n\nclass Net(nn.Module):\n"
        "    def __init__(self) -> None:\n"
        "        super().__init__()\n"
        "        self.blocks = nn.ModuleList(\n"
        "            [\n" + blocks + "            ]\n"
        "        )\n"
    )
    return files


def load_code_model(session: Session, modules: int, functions: int) -> tuple[str, nn.Module]:
    """A fresh package (a name no tool has seen) and its model."""
    package = session.write_package("bench_code", code_package_files(modules, functions))
    model: nn.Module = importlib.import_module(f"{package}.model").Net()
    return package, model
