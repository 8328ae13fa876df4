"""Classes defined in IPython cells (a notebook's ``__main__``) are packaged from the cells."""

from __future__ import annotations

import pytest

from _main_programs import Main

pytest.importorskip("IPython")


def test_classes_defined_in_notebook_cells_load_without_the_notebook(main: Main) -> None:
    archive = main.export(
        """
        from dataclasses import dataclass
        # cell
        @dataclass
        class Config:  # no methods: found in IPython's history of cells
            factor: int = 3
        # cell
        class Scaler:
            def __init__(self):
                self.config = Config()

            def scale(self, x):
                return x * self.config.factor
        """,
        "Scaler()",
        how="ipython",
    )
    assert main.load(archive, "obj.scale(2)") == "6"


def test_a_cell_run_again_with_other_code_packages_the_code_that_made_the_object(
    main: Main,
) -> None:
    archive = main.export(
        """
        class Model:
            def run(self):
                return "first"
        # cell
        model = Model()
        # cell
        class Model:
            def run(self):
                return "second"
        """,
        "Model()",
        how="ipython",
    )
    assert main.load(archive, "obj.run()") == "second"


def test_an_object_whose_class_cell_ran_again_afterwards_is_an_error_naming_it(
    main: Main,
) -> None:
    problems = main.problems(
        """
        class Model:
            pass
        # cell
        model = Model()
        # cell
        class Model:
            pass
        """,
        "model",
        how="ipython",
    )
    assert problems == [
        [
            "MAIN_WITHOUT_SOURCE",
            "__main__.Model",
            "Model is now another object: it was defined again after this one",
        ]
    ]
