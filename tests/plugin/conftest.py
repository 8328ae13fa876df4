"""Plugin tests run pytest inside pytest (pytester), each twice: in-process and under xdist.

``run_pytest(*args)`` runs the pytester directory's tests with the plugin
loaded as users get it, by its pytest11 entry point; the ``xdist`` variant
adds ``-p xdist -n 2``, so results must travel from the workers on the
reports. ``zoo`` writes small models next to the tests, each showing one
behaviour under packaging.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_torchpkg.plugin import ISOLATION_ENV

XDIST = ("-p", "xdist", "-n", "2")

RunPytest = Callable[..., pytest.RunResult]


@pytest.fixture(params=[(), XDIST], ids=["in-process", "xdist"])
def xdist_args(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[str, ...]:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    args: tuple[str, ...] = request.param
    return args


@pytest.fixture
def run_pytest(
    pytester: pytest.Pytester, xdist_args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> RunPytest:
    # Where clones run is tested in tests/unit/test_roundtrip_worker.py and tests/real;
    # here it would cost a worker process per run for nothing the plugin's wiring shows.
    monkeypatch.setenv(ISOLATION_ENV, "in-process")

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest(*xdist_args, *args)

    return run


@pytest.fixture
def run_pytest_subprocess(
    pytester: pytest.Pytester, xdist_args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> RunPytest:
    """``run_pytest`` in a subprocess, for tests whose models reach torch.compile, the
    optimizers or tracing: those import modules whose torch operator registrations
    cannot run twice, and an inline run drops what it imported from sys.modules."""
    monkeypatch.setenv(ISOLATION_ENV, "in-process")

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess(*xdist_args, *args)

    return run


ZOO = {
    "zoo": '''
        """Models that only need torch."""
        import threading

        import torch
        from torch import nn

        built = 0
        SCALE = 1.0


        class ScaledByGlobal(nn.Module):
            """Reads a module global that a test may set around the call."""

            def forward(self, x):
                return x * SCALE


        class Doubler(nn.Module):
            """Survives packaging."""

            def forward(self, x):
                return 2 * x


        class Scaled(nn.Module):
            """Takes a keyword-only input."""

            def forward(self, x, *, scale):
                return x * scale


        class Encoder(nn.Module):
            """Calls submodules of its own: only the encoder is a root call."""

            def __init__(self):
                super().__init__()
                self.layers = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3))

            def forward(self, x):
                return self.layers(x)


        class Counter(nn.Module):
            """Counts the models built in a module global that forward reads: the clone is
            unpickled, not built, and its copy of the global stays at zero."""

            def __init__(self):
                super().__init__()
                global built
                built += 1

            def forward(self, x):
                return x * built


        class Noisy(nn.Module):
            """Dropout in training mode: random, unless the RNG state is replayed."""

            def __init__(self):
                super().__init__()
                self.dropout = nn.Dropout(0.5)

            def forward(self, x):
                return self.dropout(x)


        class PackageAware(nn.Module):
            """Adds 1e-6 when it runs from a package: a difference a tolerance accepts."""

            def forward(self, x):
                packaged = type(self).__module__.startswith("<torch_package")
                return x + (1e-6 if packaged else 0.0)


        class WithLambda(nn.Module):
            def __init__(self):
                super().__init__()
                self.activation = lambda x: x.clamp(min=0)

            def forward(self, x):
                return self.activation(x)


        class WithLock(nn.Module):
            def __init__(self):
                super().__init__()
                self.lock = threading.Lock()

            def forward(self, x):
                with self.lock:
                    return x + 1


        class Picky(nn.Module):
            """Refuses empty inputs."""

            def forward(self, x):
                if x.numel() == 0:
                    raise ValueError("empty input")
                return x
    ''',
    "zoohelpers": '''
        """A pure-Python dependency outside the models' own package."""


        def shift(x):
            return x + 1


        def log(message):
            return message
    ''',
    "zooextra": '''
        """Models that depend on zoohelpers, which a package has to extern, mock or intern."""
        from torch import nn

        import zoohelpers


        class NeedsHelpers(nn.Module):
            """Uses zoohelpers only outside forward (in training code)."""

            def forward(self, x):
                return x + 1

            def training_step(self, x):
                return zoohelpers.log(self(x))


        class ShiftsWithHelpers(nn.Module):
            """Calls zoohelpers in forward: mocking zoohelpers breaks the clone."""

            def forward(self, x):
                return zoohelpers.shift(x)
    ''',
    "zoobatches": '''
        """A model that type-checks its input against a class of its own package."""
        from dataclasses import dataclass

        from torch import nn


        @dataclass
        class Batch:
            x: object


        class Router(nn.Module):
            def forward(self, batch):
                if not isinstance(batch, Batch):
                    raise TypeError(f"expected a Batch, got {type(batch).__name__}")
                return batch.x * 2
    ''',
    "zoodata/__init__": '''
        """A package that reads a data file next to its source when imported.

        Inside a package ``__file__`` is mangled, so the file is not found there.
        """
        from pathlib import Path

        from torch import nn

        WORDS = (Path(__file__).parent / "words.txt").read_text().split()


        class Vocabulary(nn.Module):
            def forward(self, x):
                return x * len(WORDS)
    ''',
}


@pytest.fixture
def zoo(pytester: pytest.Pytester) -> None:
    """Write the zoo's modules (see ``ZOO``) next to the tests pytester will run."""
    pytester.makepyfile(**ZOO)
    pytester.path.joinpath("zoodata", "words.txt").write_text("alpha beta gamma\n")
