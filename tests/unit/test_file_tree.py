"""Directory / directory_from_records: the tree behind file_structure()."""

from __future__ import annotations

from torchpkg.file_tree import Directory, directory_from_records, select_records

RECORDS = [
    "models/model_1.pkl",
    ".data/version",
    "torchvision/models/utils.py",
    "torchvision/models/resnet.py",
    ".data/94304870911616.storage",
    ".data/extern_modules",
    "byteorder",
]


def test_renders_the_documented_tree() -> None:
    assert str(directory_from_records("my_package.pt", RECORDS)) == (
        "─── my_package.pt\n"
        "    ├── .data\n"
        "    │   ├── 94304870911616.storage\n"
        "    │   ├── extern_modules\n"
        "    │   └── version\n"
        "    ├── models\n"
        "    │   └── model_1.pkl\n"
        "    ├── torchvision\n"
        "    │   └── models\n"
        "    │       ├── resnet.py\n"
        "    │       └── utils.py\n"
        "    └── byteorder\n"
    )


def test_directories_come_before_files() -> None:
    tree = directory_from_records("x", ["z", "y/q", "a", "b/c"])
    assert str(tree) == (
        "─── x\n    ├── b\n    │   └── c\n    ├── y\n    │   └── q\n    ├── a\n    └── z\n"
    )


def test_names_sort_in_code_point_order() -> None:
    tree = directory_from_records("x", ["a", "_u", "Aa"])
    assert str(tree) == "─── x\n    ├── Aa\n    ├── _u\n    └── a\n"


def test_empty_tree_renders_only_its_name() -> None:
    assert str(directory_from_records("x", [])) == "─── x\n"


def test_file_node_renders_only_its_name() -> None:
    tree = directory_from_records("x", ["a/b.txt"])
    assert str(tree.children["a"].children["b.txt"]) == "─── b.txt\n"


def test_subdirectory_renders_as_its_own_tree() -> None:
    tree = directory_from_records("x", ["a/b/c.txt", "a/d.txt"])
    assert str(tree.children["a"]) == "─── a\n    ├── b\n    │   └── c.txt\n    └── d.txt\n"


def test_nodes_know_their_name_and_kind() -> None:
    tree = directory_from_records("x", ["a/b.txt"])
    directory, file = tree.children["a"], tree.children["a"].children["b.txt"]
    assert (tree.name, tree.is_dir) == ("x", True)
    assert (directory.name, directory.is_dir) == ("a", True)
    assert (file.name, file.is_dir, file.children) == ("b.txt", False, {})


def test_duplicate_records_appear_once() -> None:
    tree = directory_from_records("x", ["a/b", "a/b"])
    assert list(tree.children["a"].children) == ["b"]


def test_record_that_prefixes_another_is_a_directory_whatever_the_order() -> None:
    for records in (["a", "a/b"], ["a/b", "a"]):
        tree = directory_from_records("x", records)
        assert tree.children["a"].is_dir
        assert tree.has_file("a/b")


def test_empty_segments_become_empty_names() -> None:
    # torch.package writes save_text("", "top.txt", ...) as "/top.txt".
    tree = directory_from_records("x", ["/top.txt"], include="*/top.txt")
    assert str(tree) == "─── x\n    └── \n        └── top.txt\n"


def test_has_file_finds_nested_files() -> None:
    assert directory_from_records("x", RECORDS).has_file("torchvision/models/utils.py")


def test_has_file_finds_top_level_files() -> None:
    assert directory_from_records("x", RECORDS).has_file("byteorder")


def test_has_file_is_true_for_directories() -> None:
    tree = directory_from_records("x", RECORDS)
    assert tree.has_file("torchvision")
    assert tree.has_file("torchvision/models")


def test_has_file_is_false_for_missing_paths() -> None:
    tree = directory_from_records("x", RECORDS)
    assert not tree.has_file("torchvision/models/vgg.py")
    assert not tree.has_file("byteorder/x")


def test_has_file_is_relative_to_the_node() -> None:
    tree = directory_from_records("x", RECORDS)
    assert tree.children["torchvision"].has_file("models/resnet.py")


def test_default_include_keeps_every_record() -> None:
    tree = directory_from_records("x", RECORDS)
    assert all(tree.has_file(record) for record in RECORDS)


def test_include_keeps_only_matching_records() -> None:
    tree = directory_from_records("x", RECORDS, include="torchvision/**")
    assert list(tree.children) == ["torchvision"]
    assert tree.has_file("torchvision/models/resnet.py")


def test_include_takes_several_patterns() -> None:
    tree = directory_from_records("x", RECORDS, include=["**/utils.py", "**/*.pkl"])
    assert str(tree) == (
        "─── x\n"
        "    ├── models\n"
        "    │   └── model_1.pkl\n"
        "    └── torchvision\n"
        "        └── models\n"
        "            └── utils.py\n"
    )


def test_exclude_drops_matching_records() -> None:
    tree = directory_from_records("x", RECORDS, exclude="**/*.storage")
    assert not tree.has_file(".data/94304870911616.storage")
    assert tree.has_file(".data/version")


def test_include_and_exclude_combine() -> None:
    tree = directory_from_records("x", RECORDS, include=".data/**", exclude=[".data/v*"])
    assert list(tree.children[".data"].children) == ["94304870911616.storage", "extern_modules"]


def test_filters_use_the_slash_separator() -> None:
    tree = directory_from_records("x", RECORDS, include="*")
    assert list(tree.children) == ["byteorder"]


def test_directory_can_be_built_by_hand() -> None:
    root = Directory("root", is_dir=True)
    root.children["f"] = Directory("f", is_dir=False)
    assert root.has_file("f")
    assert str(root) == "─── root\n    └── f\n"


PRIVATE = [".data/version", ".data/torchpkg/environment.json", ".data/torchpkg/manifest.json"]


def test_torchpkgs_own_records_are_left_out_by_default() -> None:
    assert select_records(PRIVATE) == [".data/version"]
    assert not directory_from_records("p", PRIVATE).has_file(".data/torchpkg")


def test_torchpkgs_own_records_are_selected_when_asked_for() -> None:
    assert select_records(PRIVATE, include_private=True) == PRIVATE
    tree = directory_from_records("p", PRIVATE, include_private=True)
    assert tree.has_file(".data/torchpkg/manifest.json")


def test_asking_for_private_records_still_applies_the_globs() -> None:
    selected = select_records(PRIVATE, exclude="**/manifest.json", include_private=True)
    assert selected == PRIVATE[:2]


def test_a_record_that_only_starts_like_the_private_folder_is_not_private() -> None:
    assert select_records([".data/torchpkg.txt"]) == [".data/torchpkg.txt"]
