"""Unit tests of torchpkg._source_scan: the imports found in a module's source."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import sys
import textwrap

import pytest

from torchpkg._source_scan import ImportRef, scan_imports


def scan(source: str, module_name: str = "pkg.mod", *, is_package: bool = False) -> list[ImportRef]:
    return scan_imports(textwrap.dedent(source), module_name, is_package)


def found(refs: list[ImportRef]) -> list[tuple[str, tuple[str, ...]]]:
    return [(ref.module, ref.names) for ref in refs]


# -- import statements ---------------------------------------------------------------


def test_import_statement_gives_the_full_dotted_module_and_no_names() -> None:
    refs = scan("import a.b.c as d\n")

    assert refs == [ImportRef("a.b.c", (), lineno=1, optional=False, dynamic=False)]


def test_import_of_several_modules_gives_one_ref_each_in_order() -> None:
    assert found(scan("import os, json as j, a.b\n")) == [("os", ()), ("json", ()), ("a.b", ())]


def test_from_import_gives_the_module_and_the_imported_names() -> None:
    refs = scan("from a.b import c, d as e\n")

    assert refs == [ImportRef("a.b", ("c", "d"), lineno=1, optional=False, dynamic=False)]


def test_from_import_star_leaves_the_star_out_of_the_names() -> None:
    assert found(scan("from a.b import *\n")) == [("a.b", ())]


def test_lineno_is_the_line_of_each_statement() -> None:
    refs = scan(
        """\
        import a

        x = 1
        from b import c
        """
    )

    assert [(ref.module, ref.lineno) for ref in refs] == [("a", 1), ("b", 4)]


def test_imports_in_function_and_class_bodies_are_found_in_source_order() -> None:
    refs = scan(
        """\
        import first

        class C:
            import in_class

            def method(self):
                from in_method import x

        def f():
            def g():
                import nested_deep
            import in_function

        import last
        """
    )

    assert [ref.module for ref in refs] == [
        "first",
        "in_class",
        "in_method",
        "nested_deep",
        "in_function",
        "last",
    ]


def test_decorators_are_scanned_before_the_body_they_decorate() -> None:
    refs = scan(
        """\
        import importlib

        @importlib.import_module("deco_of_class").register
        class C:
            import class_body

        @importlib.import_module("deco_of_function").register
        def f():
            import function_body
        """
    )

    assert [ref.module for ref in refs] == [
        "importlib",
        "deco_of_class",
        "class_body",
        "deco_of_function",
        "function_body",
    ]


def test_duplicate_imports_are_kept() -> None:
    refs = scan(
        """\
        import a
        def f():
            import a
        """
    )

    assert [(ref.module, ref.lineno) for ref in refs] == [("a", 1), ("a", 3)]


def test_import_refs_are_frozen_and_hashable_so_callers_can_dedupe() -> None:
    refs = scan("import a\nimport a\n")

    assert len(refs) == 2
    assert len({dataclasses.replace(ref, lineno=0) for ref in refs}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        refs[0].module = "b"  # type: ignore[misc]


# -- relative imports ----------------------------------------------------------------


def test_relative_import_in_package_resolves_against_the_package_itself() -> None:
    refs = scan(
        """\
        from . import x
        from .m import y
        from .. import z
        """,
        "p.q",
        is_package=True,
    )

    assert found(refs) == [("p.q", ("x",)), ("p.q.m", ("y",)), ("p", ("z",))]


def test_relative_import_in_plain_module_resolves_against_its_parent_package() -> None:
    refs = scan(
        """\
        from . import x
        from .sibling import y
        from .. import z
        from ..s.t import u
        """,
        "p.q.r",
    )

    assert found(refs) == [
        ("p.q", ("x",)),
        ("p.q.sibling", ("y",)),
        ("p", ("z",)),
        ("p.s.t", ("u",)),
    ]


def test_relative_import_in_top_level_package_resolves_to_the_package() -> None:
    assert found(scan("from .m import y\n", "p", is_package=True)) == [("p.m", ("y",))]


@pytest.mark.parametrize(
    ("source", "module_name", "is_package"),
    [
        ("from . import x", "top", False),
        ("from .. import x", "p", True),
        ("from ... import x", "p.q.r", False),
        ("from ...m import x", "p.q", True),
    ],
)
def test_relative_import_beyond_the_top_level_package_raises_naming_module_and_line(
    source: str, module_name: str, is_package: bool
) -> None:
    with pytest.raises(ValueError, match=r"mod\.py:3: .*beyond the top-level package") as info:
        scan_imports(f"import ok\n\n{source}\n", module_name, is_package, filename="mod.py")

    assert repr(module_name) in str(info.value)


# -- TYPE_CHECKING -------------------------------------------------------------------


@pytest.mark.parametrize(
    "guard",
    [
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:",
        "TYPE_CHECKING = False\nif TYPE_CHECKING:",
        "import typing\nif typing.TYPE_CHECKING:",
        "import typing as t\nif t.TYPE_CHECKING:",
        "from typing import TYPE_CHECKING as TC\nif TC:",
        "import typing_extensions as te\nif te.TYPE_CHECKING:",
    ],
)
def test_imports_under_type_checking_are_skipped(guard: str) -> None:
    refs = scan_imports(f"{guard}\n    import never_at_runtime\nimport after\n", "m", False)

    modules = [ref.module for ref in refs]
    assert "never_at_runtime" not in modules
    assert modules[-1] == "after"


def test_else_branch_of_type_checking_block_is_scanned() -> None:
    refs = scan(
        """\
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import for_checkers
        elif sys.platform == "win32":
            import on_windows
        else:
            import at_runtime
        """
    )

    assert [ref.module for ref in refs] == ["typing", "on_windows", "at_runtime"]


def test_not_type_checking_scans_the_body_and_skips_the_else_branch() -> None:
    refs = scan(
        """\
        from typing import TYPE_CHECKING
        if not TYPE_CHECKING:
            import at_runtime
        else:
            import for_checkers
        """
    )

    assert [ref.module for ref in refs] == ["typing", "at_runtime"]


def test_ordinary_if_scans_both_branches() -> None:
    refs = scan(
        """\
        if sys.version_info >= (3, 11):
            import tomllib
        else:
            import tomli
        """
    )

    assert [ref.module for ref in refs] == ["tomllib", "tomli"]


def test_type_checking_attribute_of_an_unrelated_object_is_not_skipped() -> None:
    refs = scan(
        """\
        if config.TYPE_CHECKING:
            import runs_when_config_says_so
        """
    )

    assert [ref.module for ref in refs] == ["runs_when_config_says_so"]


# -- optional imports ----------------------------------------------------------------


@pytest.mark.parametrize(
    "handler",
    [
        "except ImportError:",
        "except ModuleNotFoundError:",
        "except Exception as exc:",
        "except BaseException:",
        "except:",
        "except (ValueError, ImportError):",
        "except builtins.ImportError:",
        "except KeyError:\n    pass\nexcept ImportError:",
    ],
)
def test_import_in_try_whose_handler_catches_import_errors_is_optional(handler: str) -> None:
    refs = scan_imports(f"try:\n    import fast_lib\n{handler}\n    pass\n", "m", False)

    assert [(ref.module, ref.optional) for ref in refs] == [("fast_lib", True)]


@pytest.mark.parametrize(
    "handler", ["except KeyError:\n    pass", "except (OSError, ValueError):\n    pass", "finally:"]
)
def test_import_in_try_whose_handlers_do_not_catch_import_errors_is_required(handler: str) -> None:
    refs = scan_imports(f"try:\n    import needed\n{handler}\n    pass\n", "m", False)

    assert [(ref.module, ref.optional) for ref in refs] == [("needed", False)]


def test_imports_in_handler_else_and_finally_are_not_optional() -> None:
    refs = scan(
        """\
        try:
            import fast_lib
        except ImportError:
            import slow_fallback
        else:
            import after_success
        finally:
            import always
        """
    )

    assert [(ref.module, ref.optional) for ref in refs] == [
        ("fast_lib", True),
        ("slow_fallback", False),
        ("after_success", False),
        ("always", False),
    ]


def test_import_in_inner_try_of_a_guarded_try_is_optional() -> None:
    refs = scan(
        """\
        try:
            try:
                import inner
            except KeyError:
                import inner_handler
        except ImportError:
            pass
        """
    )

    assert [(ref.module, ref.optional) for ref in refs] == [
        ("inner", True),
        ("inner_handler", True),
    ]


def test_function_body_defined_in_guarded_try_is_not_optional() -> None:
    # The try only guards the `def`; the body runs later, outside it.
    refs = scan(
        """\
        import importlib
        try:
            @importlib.import_module("decorator_mod").wrap
            def f(default=importlib.import_module("default_mod")):
                import in_body
            g = lambda: importlib.import_module("in_lambda")
        except ImportError:
            pass
        """
    )

    assert [(ref.module, ref.optional) for ref in refs] == [
        ("importlib", False),
        ("decorator_mod", True),
        ("default_mod", True),
        ("in_body", False),
        ("in_lambda", False),
    ]


def test_try_inside_a_function_body_still_makes_its_imports_optional() -> None:
    refs = scan(
        """\
        def f():
            try:
                import fast_lib
            except ImportError:
                pass
        """
    )

    assert [(ref.module, ref.optional) for ref in refs] == [("fast_lib", True)]


def test_class_body_in_guarded_try_is_optional() -> None:
    refs = scan(
        """\
        try:
            class C:
                import in_class
        except ImportError:
            pass
        """
    )

    assert [(ref.module, ref.optional) for ref in refs] == [("in_class", True)]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="except* is Python 3.11+ syntax")
def test_import_in_try_star_catching_import_error_is_optional() -> None:
    refs = scan(
        """\
        try:
            import fast_lib
        except* ImportError:
            import fallback
        """
    )

    assert [(ref.module, ref.optional) for ref in refs] == [
        ("fast_lib", True),
        ("fallback", False),
    ]


# -- dynamic imports -----------------------------------------------------------------


def test_importlib_import_module_with_constant_name_is_a_dynamic_import() -> None:
    refs = scan(
        """\
        import importlib
        mod = importlib.import_module("x.y")
        """
    )

    assert refs[1:] == [ImportRef("x.y", (), lineno=2, optional=False, dynamic=True)]


@pytest.mark.parametrize(
    "binding",
    [
        "from importlib import import_module\nimport_module",
        "from importlib import import_module as load\nload",
        "import importlib as il\nil.import_module",
        "import importlib.util\nimportlib.import_module",
    ],
)
def test_import_module_is_recognised_through_its_bindings(binding: str) -> None:
    refs = scan_imports(f'{binding}("plugin.impl")\n', "m", False)

    assert [(ref.module, ref.dynamic) for ref in refs][-1] == ("plugin.impl", True)


@pytest.mark.parametrize("call", ['import_module("x")', 'other.import_module("x")'])
def test_import_module_not_bound_to_importlib_is_not_a_dynamic_import(call: str) -> None:
    assert scan_imports(f"{call}\n", "m", False) == []


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ('importlib.import_module(".m", "pkg")', "pkg.m"),
        ('importlib.import_module(".m", package="pkg")', "pkg.m"),
        ('importlib.import_module(name=".m", package="pkg")', "pkg.m"),
        ('importlib.import_module("..m", "a.b")', "a.m"),
        ('importlib.import_module(".", "a.b")', "a.b"),
    ],
)
def test_relative_import_module_resolves_against_its_package_argument(
    call: str, expected: str
) -> None:
    refs = scan_imports(f"import importlib\n{call}\n", "elsewhere.mod", False)

    assert refs[1].module == expected


@pytest.mark.parametrize(
    ("module_name", "is_package", "expected"),
    [("p.q.r", False, "p.q.m"), ("p.q", True, "p.q.m")],
)
def test_import_module_relative_to_dunder_package_resolves_against_the_modules_package(
    module_name: str, is_package: bool, expected: str
) -> None:
    refs = scan_imports(
        'import importlib\nimportlib.import_module(".m", __package__)\n', module_name, is_package
    )

    assert refs[1].module == expected


def test_import_module_relative_to_dunder_name_resolves_against_the_module_itself() -> None:
    refs = scan('import importlib\nimportlib.import_module(".m", __name__)\n', "p.q.r")

    assert refs[1].module == "p.q.r.m"


def test_import_module_relative_beyond_the_top_level_package_raises() -> None:
    with pytest.raises(ValueError, match="beyond the top-level package"):
        scan('import importlib\nimportlib.import_module("...m", "a.b")\n')


def test_dunder_import_with_constant_name_is_a_dynamic_import() -> None:
    refs = scan('__import__("x.y")\n')

    assert refs == [ImportRef("x.y", (), lineno=1, optional=False, dynamic=True)]


@pytest.mark.parametrize(
    "call",
    [
        '__import__("x", globals(), locals(), ["a", "b"], 0)',
        '__import__("x", fromlist=("a", "b"))',
        '__import__("x", None, None, ["a", "*", "b"])',
    ],
)
def test_dunder_import_fromlist_gives_the_names(call: str) -> None:
    assert found(scan(f"{call}\n")) == [("x", ("a", "b"))]


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ('__import__("m", globals(), locals(), ["a"], 1)', ("p.q.m", ("a",))),
        ('__import__("", globals(), locals(), ["a"], level=2)', ("p", ("a",))),
    ],
)
def test_dunder_import_with_level_resolves_relatively(
    call: str, expected: tuple[str, tuple[str, ...]]
) -> None:
    assert found(scan(f"{call}\n", "p.q.r")) == [expected]


@pytest.mark.parametrize(
    "call",
    [
        "importlib.import_module(name)",
        'importlib.import_module("x" + suffix)',
        "importlib.import_module(*args)",
        "importlib.import_module(**kwargs)",
        'importlib.import_module(".m")',
        'importlib.import_module(".m", pkg)',
        'importlib.import_module(".m", "")',
        "__import__(name)",
        '__import__(f"x{n}")',
        '__import__("x", level=depth)',
        '__import__("")',
    ],
)
def test_dynamic_imports_with_arguments_unknown_before_runtime_are_ignored(call: str) -> None:
    refs = scan_imports(f"import importlib\n{call}\n", "p.q", False)

    assert [ref.module for ref in refs] == ["importlib"]


def test_dynamic_import_nested_inside_another_call_is_found() -> None:
    refs = scan(
        """\
        import importlib
        cls = getattr(importlib.import_module("models.bert"), "Bert")
        """
    )

    assert found(refs[1:]) == [("models.bert", ())]


def test_dynamic_import_in_guarded_try_is_optional() -> None:
    refs = scan(
        """\
        try:
            __import__("accelerated")
        except ImportError:
            pass
        """
    )

    assert [(ref.module, ref.optional, ref.dynamic) for ref in refs] == [
        ("accelerated", True, True)
    ]


# -- source text ---------------------------------------------------------------------


def test_invalid_source_raises_syntax_error_naming_the_file() -> None:
    with pytest.raises(SyntaxError) as info:
        scan_imports("import a\ndef broken(:\n", "m", False, filename="broken.py")

    assert info.value.filename == "broken.py"
    assert info.value.lineno == 2


def test_bytes_source_is_decoded_with_its_coding_cookie() -> None:
    source = "# -*- coding: latin-1 -*-\nname = 'café'\nimport après\n".encode("latin-1")

    assert found(scan_imports(source, "m", False)) == [("après", ())]


@pytest.mark.parametrize(
    "source",
    [b"import a\n\n\nx = '\xff'\n", b"# coding: no-such-codec\nimport a\n", b"import a\0\n"],
)
def test_unreadable_bytes_raise_syntax_error_naming_the_file(source: bytes) -> None:
    with pytest.raises(SyntaxError) as info:
        scan_imports(source, "m", False, filename="bad.py")

    assert info.value.filename == "bad.py"


# -- the interpreter's state -----------------------------------------------------------


@pytest.mark.parametrize("source", ["import a\n", "import (\n"], ids=["parses", "syntax-error"])
def test_a_scan_leaves_garbage_collection_on_when_it_was_on(source: str) -> None:
    """Collection is off while a tree is built (a tree holds no cycles), and only then."""
    assert gc.isenabled()
    with contextlib.suppress(SyntaxError):
        scan(source)
    assert gc.isenabled()


def test_a_scan_leaves_garbage_collection_off_when_it_was_off() -> None:
    gc.disable()
    try:
        scan("import a\n")
        assert not gc.isenabled()
    finally:
        gc.enable()
