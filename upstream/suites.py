"""The suites: which library, which pinned sdist, which tests; where they live here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["REPO", "SUITES", "WORKDIR", "Suite", "select"]

# The repository root (this package sits at its top level).
REPO: Final = Path(__file__).resolve().parent.parent
# Downloads, extracted sources and run artefacts (git-ignored).
WORKDIR: Final = REPO / ".upstream"


@dataclass(frozen=True)
class Suite:
    """A library whose own tests run under the gate."""

    name: str  # the distribution (and import) name
    version: str
    tests: tuple[str, ...]  # test paths, relative to the extracted sdist
    slice: tuple[str, ...]  # a few files / node ids that run in well under a minute
    # Tests of the slice the gate rightly fails: node id -> the diagnostic kind and why.
    true_positives: tuple[tuple[str, str, str], ...] = ()

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def folder(self) -> Path:
        """The extracted sdist: the runs' working directory and pytest rootdir."""
        return WORKDIR / f"{self.name}-{self.version}"

    def fetched(self) -> bool:
        return self.folder.is_dir()

    def paths(self, slice_only: bool) -> tuple[str, ...]:
        return self.slice if slice_only else self.tests


SUITES: Final = (
    Suite(
        name="zuko",
        version="1.6.0",
        tests=("tests/",),
        slice=(
            "tests/test_nn.py::test_Linear",
            "tests/test_nn.py::test_MLP",
            "tests/test_nn.py::test_MaskedMLP[batch0-True]",
            "tests/test_nn.py::test_MonotonicMLP[batch0]",
            "tests/test_utils.py",
            "tests/test_mixtures.py::test_mixtures",
            "tests/test_mixtures.py::test_gmm_tied_covariance",
            "tests/test_mixtures.py::test_gmm_shapes[kmeans-True-full-2-5-3-batch0]",
            "tests/test_flows.py::test_flows[MAF]",
            "tests/test_flows.py::test_flows[NSF]",
            "tests/test_bayesian.py::test_bayesian_flows[False-GF]",
        ),
    ),
    Suite(
        name="gpytorch",
        version="1.15.2",
        tests=("test/examples", "test/likelihoods", "test/means", "test/kernels"),
        slice=(
            "test/means",
            "test/kernels/test_rbf_kernel.py",
            "test/kernels/test_scale_kernel.py",
            "test/likelihoods/test_gaussian_likelihood.py::TestGaussianLikelihood::test_nonbatch",
            "test/examples/test_simple_gp_regression.py::TestSimpleGPRegression::test_prior",
        ),
        true_positives=(
            (
                "test/likelihoods/test_gaussian_likelihood.py::TestGaussianLikelihood::"
                "test_nonbatch",
                "run-error",
                "the likelihood, packaged with gpytorch interned, checks isinstance against "
                "its own copy of MultivariateNormal and rejects the caller's",
            ),
            (
                "test/examples/test_simple_gp_regression.py::TestSimpleGPRegression::test_prior",
                "packaging-error",
                "register_prior puts a local closure in _load_state_dict_pre_hooks: the "
                "model cannot be pickled (torch.package and torch.save fail too)",
            ),
        ),
    ),
)


def select(names: list[str] | None) -> list[Suite]:
    """The suites named (all when ``names`` is empty); an unknown name is an error."""
    if not names:
        return list(SUITES)
    known = {suite.name: suite for suite in SUITES}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"unknown suite(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[name] for name in names]
