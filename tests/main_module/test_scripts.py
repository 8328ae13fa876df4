"""Classes and functions defined in a script's ``__main__`` are packaged from their source.

Each program runs as ``__main__`` in a fresh interpreter and exports an object;
another fresh interpreter, in another directory and with the script deleted,
loads it (see conftest.py).
"""

from __future__ import annotations

import zipfile

from _main_programs import Main


def test_a_class_defined_in_a_script_loads_where_the_script_is_gone(main: Main) -> None:
    archive = main.export(
        """
        class Counter:
            def __init__(self, start):
                self.count = start

            def step(self):
                self.count += STEP
                return self.count

        STEP = 2
        """,
        "Counter(1)",
    )
    assert main.load(archive, "obj.step()") == "3"


def test_a_class_defined_with_python_dash_c_loads_elsewhere(main: Main) -> None:
    archive = main.export(
        """
        class Greeter:
            def greet(self):
                return "hello"
        """,
        "Greeter()",
        how="-c",
    )
    assert main.load(archive, "obj.greet()") == "hello"


def test_pickles_name_the_packaged_module_instead_of_main(main: Main) -> None:
    archive = main.export("class Point:\n    pass\n", "Point()")
    assert main.load(archive, "type(obj).__module__").endswith(">.__torchpkg_main__")
    with zipfile.ZipFile(archive) as package:
        assert b"__main__" not in package.read("main/main/obj.pkl")


def test_the_module_holds_what_the_definitions_use_in_an_order_that_runs(main: Main) -> None:
    archive = main.export(
        """
        import json
        import os.path as osp
        from functools import lru_cache as cache


        def unused():
            return 0


        LIMITS = {"low": (1, 2.5), "names": ["a", None]}


        class Shape(Base := object):
            pass


        @cache
        def describe(shape):
            return json.dumps([type(shape).__name__, LIMITS["low"], osp.sep])


        class Square(Shape):
            def text(self):
                return describe(self)
        """,
        "Square()",
    )
    with zipfile.ZipFile(archive) as package:
        source = package.read("main/__torchpkg_main__.py").decode()
    assert source == (
        '"""What the objects of this package need from __main__ (written by torchpkg)."""\n'
        "\n\n"
        "import json\n"
        "import posixpath as osp\n"
        "from functools import lru_cache as cache\n"
        "LIMITS = {'low': (1, 2.5), 'names': ['a', None]}\n"
        "\n\n"
        "class Shape(Base := object):\n    pass\n"
        "\n\n"
        "@cache\ndef describe(shape):\n"
        '    return json.dumps([type(shape).__name__, LIMITS["low"], osp.sep])\n'
        "\n\n"
        "class Square(Shape):\n    def text(self):\n        return describe(self)\n"
    )
    assert main.load(archive, "obj.text()") == '["Square", [1, 2.5], "/"]'


def test_a_class_is_defined_after_what_its_statement_needs_whatever_order_it_was_met_in(
    main: Main,
) -> None:
    archive = main.export(
        """
        class Tagged:
            def tag(self):
                return Late.TAG  # used when called: no order needed


        class Late(Tagged):  # needs Tagged as it runs
            TAG = "late"
        """,
        "Late()",
    )
    assert main.load(archive, "obj.tag()") == "late"


def test_dataclasses_nested_classes_super_and_aliases_keep_working(main: Main) -> None:
    archive = main.export(
        """
        from __future__ import annotations

        import dataclasses


        class Base:
            def name(self):
                return "base"


        class Outer(Base):
            @dataclasses.dataclass
            class Config:
                size: int = 3

            def name(self):
                return "outer of " + super().name()


        Settings = Outer.Config
        Alias = Outer


        def build():
            return Alias(), Settings()
        """,
        "build",
    )
    expression = "[obj()[0].name(), obj()[1].size, __import__('dataclasses').fields(obj()[1])]"
    loaded = main.load(archive, expression)
    assert loaded.startswith("['outer of base', 3, (Field(name='size',type='int',")


def test_a_lambda_assigned_at_module_level_is_packaged_from_its_assignment(main: Main) -> None:
    archive = main.export(
        """
        double = lambda x: 2 * x


        class Model:
            def run(self, x):
                return double(x)
        """,
        "Model()",
    )
    assert main.load(archive, "obj.run(21)") == "42"


def test_a_class_made_by_type_is_an_error_naming_it(main: Main) -> None:
    problems = main.problems(
        """
        def run(self):
            return 1


        Made = type("Made", (), {"run": run})
        """,
        "Made()",
    )
    assert problems == [
        [
            "MAIN_WITHOUT_SOURCE",
            "__main__.Made",
            f"no class statement in {main.directory / 'script.py'} defines it: was it made at "
            "run time (type(), exec())?",
        ]
    ]


def test_a_function_made_by_eval_is_an_error_naming_it(main: Main) -> None:
    problems = main.problems(
        """
        made = eval("lambda x: x")


        class Model:
            def run(self, x):
                return made(x)
        """,
        "Model()",
    )
    assert problems == [
        [
            "MAIN_WITHOUT_SOURCE",
            "__main__.made",
            "no source for it: was it made by exec() or eval()?",
        ]
    ]


def test_a_global_that_is_neither_source_nor_literal_is_an_error_naming_it(main: Main) -> None:
    problems = main.problems(
        """
        import threading

        LOCK = threading.Lock()


        class Model:
            def run(self):
                with LOCK:
                    return 1
        """,
        "Model()",
    )
    assert problems == [
        [
            "MAIN_GLOBAL_WITHOUT_SOURCE",
            "__main__.LOCK",
            "a lock that __main__.Model uses: only imports, literal constants and the classes "
            "and functions defined in __main__ are packaged from source",
        ]
    ]


def test_a_script_edited_after_it_ran_is_an_error_not_other_code(main: Main) -> None:
    problems = main.problems(
        """
        class Model:
            def run(self):
                return 1


        with open(__file__) as _file:
            _text = _file.read()
        with open(__file__, "w") as _file:
            _file.write(_text.replace("return 1", "return 2"))
        """,
        "Model()",
    )
    assert problems == [
        [
            "MAIN_WITHOUT_SOURCE",
            "__main__.Model",
            f"its source in {main.directory / 'script.py'} (line 2) is not what is running: "
            "the file changed after it ran",
        ]
    ]


def test_a_function_another_module_put_on_a_class_is_not_taken_for_its_code(
    main: Main,
) -> None:
    """As Python 3.13's dataclasses put their own __replace__ on every dataclass."""
    archive = main.export(
        """
        import copy


        class Settings:
            size = 3


        Settings.clone = copy.copy
        """,
        "Settings()",
    )
    assert main.load(archive, "obj.size") == "3"


def test_module_dunders_are_the_packaged_modules_own(main: Main) -> None:
    archive = main.export(
        """
        class Model:
            def where(self):
                return __name__
        """,
        "Model()",
    )
    assert main.load(archive, "obj.where()").endswith(">.__torchpkg_main__")


def test_each_pickle_adds_what_it_needs_to_the_one_packaged_module(main: Main) -> None:
    archive = main.directory / "two.pt"
    main.run(
        """
        import sys
        from torchpkg import PackageExporter


        class First:
            pass


        class Second:
            pass


        with PackageExporter(sys.argv[1]) as exporter:
            exporter.save_pickle("main", "first.pkl", First())
            exporter.save_pickle("main", "second.pkl", Second())
        """,
        "script",
        str(archive),
    )
    assert main.load(archive, "type(obj).__name__", "first.pkl") == "First"
    assert main.load(archive, "type(obj).__name__", "second.pkl") == "Second"


def test_a_class_of_a_script_that_runpy_ran_is_packaged_from_that_script(main: Main) -> None:
    (main.directory / "example.py").write_text(
        "class Model:\n    def run(self):\n        return 1\n"
    )
    archive = main.export(
        """
        import runpy

        example = runpy.run_path("example.py", run_name="__main__")  # __main__ is ours again
        """,
        "example['Model']()",
    )
    assert main.load(archive, "obj.run()") == "1"
