"""What safe loading allows, judged by name: the one judgement the loader and the scan share."""

from __future__ import annotations

import pytest

from torchpkg.security import Allowlist, Basis, Risk, Verdict
from torchpkg.security._bindings import top_level_bindings
from torchpkg.security._names import TORCH_VALUES
from torchpkg.security._rules import Binding, Contents, judge

PACKAGED = {"pkg", "pkg.model", "pkg.util"}
SOURCES = {
    "pkg.model": "class Model:\n    class Inner:\n        pass\n\nMade = type('Made', (), {})\n",
    "pkg.util": "import os\nfrom collections import OrderedDict as Table\nrun = os.system\n",
}


def bound(module: str, name: str) -> tuple[Binding, tuple[str, str] | None]:
    bindings = top_level_bindings(SOURCES.get(module, ""), module, module == "pkg")
    return bindings.get(name, (Binding.UNBOUND, None))


CONTENTS = Contents(
    lambda module: module in PACKAGED, lambda module: module.startswith("mylib"), bound
)
NO_SOURCES = Contents(CONTENTS.is_packaged, CONTENTS.is_extern)
DEFAULT = Allowlist()


def verdict(full: str, allow: Allowlist = DEFAULT, contents: Contents = CONTENTS) -> Verdict:
    module, _, name = full.rpartition(".")
    return judge(module, name, contents, allow)


def test_class_defined_in_the_package_is_safe() -> None:
    found = verdict("pkg.model.Model")
    assert (found.risk, found.allowed, found.basis) == (Risk.SAFE, True, Basis.PACKAGE)


def test_nested_class_defined_in_the_package_is_safe() -> None:
    found = judge("pkg.model", "Model.Inner", CONTENTS, DEFAULT)
    assert (found.risk, found.allowed) == (Risk.SAFE, True)


def test_tensor_rebuilder_is_safe_without_importing_torch() -> None:
    found = verdict("torch._utils._rebuild_tensor_v2")
    assert (found.risk, found.allowed, found.basis) == (Risk.SAFE, True, Basis.TENSOR)


@pytest.mark.parametrize(
    "full", ["collections.OrderedDict", "builtins.set", "torch.float16", "torch.FloatStorage"]
)
def test_curated_builtins_and_torch_types_are_safe(full: str) -> None:
    assert verdict(full).basis is Basis.CURATED
    assert verdict(full).allowed


def test_torch_module_classes_are_allowed_only_as_classes() -> None:
    found = verdict("torch.nn.modules.linear.Linear")
    assert found.allowed
    assert found.classes_only


def test_torch_function_outside_the_curated_set_is_refused() -> None:
    found = verdict("torch.nn.functional.relu")
    assert (found.risk, found.allowed) == (Risk.REVIEW, False)


def test_extern_global_is_refused_until_allow_lists_it() -> None:
    assert not verdict("mylib.layers.Dense").allowed
    assert verdict("mylib.layers.Dense").basis is Basis.EXTERN
    listed = verdict("mylib.layers.Dense", Allowlist(("mylib.layers.Dense",)))
    assert (listed.risk, listed.allowed, listed.basis) == (Risk.REVIEW, True, Basis.ALLOWED)


def test_single_star_pattern_allows_one_level_and_double_star_any_depth() -> None:
    assert verdict("mylib.Dense", Allowlist(("mylib.*",))).allowed
    assert not verdict("mylib.layers.Dense", Allowlist(("mylib.*",))).allowed
    assert verdict("mylib.layers.Dense", Allowlist(("mylib.**",))).allowed


def test_global_of_a_module_neither_packaged_nor_extern_is_refused_saying_so() -> None:
    found = verdict("elsewhere.Thing")
    assert found.basis is Basis.MISSING
    assert "neither in the package nor one of its extern modules" in found.reason


@pytest.mark.parametrize(
    "full",
    [
        "os.system",
        "posix.system",
        "subprocess.Popen",
        "builtins.eval",
        "builtins.exec",
        "builtins.getattr",
        "builtins.__import__",
        "importlib.import_module",
        "pickle.loads",
        "torch.load",
    ],
)
def test_known_dangerous_globals_are_flagged_and_refused(full: str) -> None:
    found = verdict(full)
    assert (found.risk, found.allowed, found.basis) == (Risk.DANGEROUS, False, Basis.DANGEROUS)


def test_a_dangerous_global_listed_in_allow_is_allowed_but_stays_dangerous() -> None:
    found = verdict("os.system", Allowlist(("os.system",)))
    assert (found.risk, found.allowed) == (Risk.DANGEROUS, True)


def test_name_off_the_dangerous_list_is_still_refused_it_is_an_allowlist() -> None:
    found = verdict("ipaddress.ip_address")
    assert not found.allowed


def test_python_2_names_are_judged_as_the_unpickler_maps_them() -> None:
    found = judge("__builtin__", "eval", CONTENTS, DEFAULT)
    assert found.risk is Risk.DANGEROUS


@pytest.mark.parametrize(("module", "name"), [("os system", "x"), ("", "x"), ("a", "b..c")])
def test_names_no_pickler_writes_are_refused(module: str, name: str) -> None:
    found = judge(module, name, CONTENTS, DEFAULT)
    assert (found.allowed, found.basis) == (False, Basis.INVALID)


def test_name_imported_into_a_packaged_module_is_judged_as_what_it_imports() -> None:
    assert verdict("pkg.util.run").risk is Risk.DANGEROUS  # run = os.system
    assert verdict("pkg.util.Table").basis is Basis.CURATED  # collections.OrderedDict
    assert "imported into pkg.util from os" in verdict("pkg.util.run").reason


def test_reaching_through_a_packaged_modules_import_is_judged_as_the_target() -> None:
    found = judge("pkg.util", "os.system", CONTENTS, DEFAULT)
    assert (found.risk, found.allowed) == (Risk.DANGEROUS, False)


def test_packaged_submodule_named_as_an_attribute_is_refused_as_a_module_object() -> None:
    found = verdict("pkg.util")
    assert (found.risk, found.allowed) == (Risk.DANGEROUS, False)
    assert "module object" in found.reason


def test_assigned_packaged_name_is_allowed_for_review_with_the_loader_checking_it() -> None:
    found = verdict("pkg.model.Made")
    assert (found.risk, found.allowed, found.basis) == (Risk.REVIEW, True, Basis.PACKAGE)


def test_without_sources_every_packaged_name_is_trusted_by_name() -> None:
    assert verdict("pkg.util.run", contents=NO_SOURCES).allowed


def test_allowlist_reports_every_bad_pattern_at_once() -> None:
    with pytest.raises(ValueError, match=r"allow= takes patterns") as info:
        Allowlist(("ok.*", "a**b", ""))
    assert "a**b" in str(info.value)
    assert "'' is not a dotted name pattern" in str(info.value)


def test_allowlist_of_a_str_is_one_pattern() -> None:
    assert Allowlist.of("mylib.**").patterns == ("mylib.**",)


def test_curated_torch_values_cover_every_dtype_layout_format_and_storage_of_torch() -> None:
    torch = pytest.importorskip("torch")
    kinds = (torch.dtype, torch.layout, torch.memory_format, torch.qscheme)
    named = {
        name
        for name, value in vars(torch).items()
        if isinstance(value, kinds) or (isinstance(value, type) and name.endswith("Storage"))
    }
    assert named - {"Storage"} <= TORCH_VALUES
