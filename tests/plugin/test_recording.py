"""Which module calls a test's roundtrip replays: root calls of the call phase, first inputs."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from pytest_torchpkg.plugin import REPORT_OPTION, ROUNDTRIP_OPTION

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("zoo")

RunPytest = Callable[..., pytest.RunResult]


def checked_models(run_pytest: RunPytest, pytester: pytest.Pytester) -> list[str]:
    """Run with roundtrips on; the class names of the models checked, one per check."""
    result = run_pytest(ROUNDTRIP_OPTION, f"{REPORT_OPTION}=report.json")
    result.assert_outcomes(passed=1)
    report = json.loads(pytester.path.joinpath("report.json").read_text())
    return [model["model"] for test in report["tests"] for model in test["models"]]


def test_only_the_outermost_module_of_a_call_is_checked(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import torch
        from zoo import Encoder


        def test_encodes():
            assert Encoder()(torch.ones(2, 3)).shape == (2, 3)
        """
    )
    assert checked_models(run_pytest, pytester) == ["zoo.Encoder"]


def test_a_module_called_directly_by_the_test_is_a_root_too(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import torch
        from zoo import Doubler


        def test_first_stage():
            pipeline = torch.nn.Sequential(Doubler(), Doubler())
            pipeline(torch.ones(1, 3))
            assert pipeline[0](torch.ones(1, 3)).shape == (1, 3)
        """
    )
    assert checked_models(run_pytest, pytester) == [
        "torch.nn.modules.container.Sequential",
        "zoo.Doubler",
    ]


def test_torch_modules_called_alone_are_not_checked(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """Their package would hold nothing of the repository: it says nothing about it."""
    pytester.makepyfile(
        """
        import torch
        from zoo import Encoder


        def test_first_layer():
            encoder = Encoder()
            encoder(torch.ones(1, 3))
            assert encoder.layers[0](torch.ones(1, 3)).shape == (1, 3)
        """
    )
    assert checked_models(run_pytest, pytester) == ["zoo.Encoder"]


def test_each_module_instance_is_checked_once(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import torch
        from zoo import Doubler


        def test_two_doublers():
            first, second = Doubler(), Doubler()
            for _ in range(3):
                first(torch.ones(1))
            second(torch.ones(1))
        """
    )
    assert checked_models(run_pytest, pytester) == ["zoo.Doubler", "zoo.Doubler"]


def test_the_first_call_is_the_one_replayed(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import torch
        from zoo import Counter


        def test_counts():
            counter = Counter()
            counter(torch.ones(3))
            counter(torch.ones(5))
        """
    )
    result = run_pytest(ROUNDTRIP_OPTION)
    result.stdout.fnmatch_lines(["*output: 3 of 3 elements differ*"])


def test_inputs_are_copied_before_the_test_changes_them_in_place(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    """Zeroed inputs would give zero outputs on both sides and hide the mismatch."""
    pytester.makepyfile(
        """
        import torch
        from zoo import Counter


        def test_counts_then_reuses_the_buffer():
            x = torch.ones(3)
            Counter()(x)
            x.zero_()
        """
    )
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*output-mismatch*"])


def test_keyword_inputs_are_replayed(run_pytest: RunPytest, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import torch
        from zoo import Scaled


        def test_scales():
            assert Scaled()(torch.ones(2), scale=3.0).tolist() == [3.0, 3.0]
        """
    )
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["1 models checked: 1 passed, 0 failed"])


def test_dropout_in_training_mode_survives_because_the_rng_state_is_replayed(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import torch
        from zoo import Noisy


        def test_drops_units():
            model = Noisy().train()
            x = torch.ones(1000)
            assert not torch.equal(model(x), model(x))
        """
    )
    result = run_pytest(ROUNDTRIP_OPTION)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["1 models checked: 1 passed, 0 failed"])


def test_a_call_that_raises_is_not_recorded(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import pytest
        import torch
        from zoo import Picky


        def test_rejects_empty_inputs():
            with pytest.raises(ValueError, match="empty"):
                Picky()(torch.ones(0))
        """
    )
    assert checked_models(run_pytest, pytester) == []


def test_calls_made_by_fixtures_are_not_recorded(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import pytest
        import torch
        from zoo import Counter


        @pytest.fixture
        def warmed_up():
            counter = Counter()
            counter(torch.ones(1))
            yield counter
            counter(torch.ones(1))


        def test_uses_a_warmed_up_model(warmed_up):
            assert warmed_up is not None
        """
    )
    assert checked_models(run_pytest, pytester) == []


def test_models_loaded_from_a_package_are_not_checked(
    run_pytest: RunPytest, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        import io

        import torch
        from torchpkg import PackageExporter, PackageImporter
        from zoo import Doubler


        def test_packaged_doubler():
            buffer = io.BytesIO()
            with PackageExporter(buffer) as exporter:
                exporter.intern("zoo")
                exporter.save_pickle("model", "model.pkl", Doubler())
            buffer.seek(0)
            with PackageImporter(buffer) as importer:
                clone = importer.load_pickle("model", "model.pkl")
                assert clone(torch.ones(1)).item() == 2
        """
    )
    assert checked_models(run_pytest, pytester) == []
