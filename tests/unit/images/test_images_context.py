"""Context hashes change exactly when an image's inputs do: content, names, the executable
bit, build arguments, the base image; never for timestamps or interpreter droppings."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from kemu.images.context import context_hash, hash_tree, iter_files


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


FILES = {"Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "alpha\n", "sub/b.py": "print(1)\n"}


def test_same_files_in_different_places_hash_the_same(tmp_path: Path) -> None:
    one = _tree(tmp_path / "one", FILES)
    two = _tree(tmp_path / "two", dict(reversed(list(FILES.items()))))
    assert hash_tree(one) == hash_tree(two)
    assert len(hash_tree(one)) == 64


@pytest.mark.parametrize("change", [
    pytest.param(lambda r: (r / "a").write_text("beta\n"), id="content"),
    pytest.param(lambda r: (r / "a").rename(r / "c"), id="rename"),
    pytest.param(lambda r: (r / "new").write_text(""), id="new-empty-file"),
    pytest.param(lambda r: (r / "sub" / "b.py").unlink(), id="removed-file"),
    pytest.param(lambda r: (r / "a").chmod(0o755), id="executable-bit"),
    pytest.param(lambda r: (r / "sub" / "b.py").rename(r / "b.py"), id="moved-to-parent"),
])
def test_a_change_to_the_inputs_changes_the_hash(
    tmp_path: Path, change: Callable[[Path], object],
) -> None:
    root = _tree(tmp_path / "ctx", FILES)
    before = hash_tree(root)
    change(root)
    assert hash_tree(root) != before


@pytest.mark.parametrize("change", [
    pytest.param(lambda r: os.utime(r / "a", (1, 1)), id="mtime"),
    pytest.param(lambda r: (r / "a").chmod(0o600), id="non-exec-mode"),
    pytest.param(lambda r: _tree(r, {"sub/__pycache__/b.cpython-311.pyc": "x"}), id="pycache"),
    pytest.param(lambda r: _tree(r, {"stray.pyc": "x"}), id="pyc"),
    pytest.param(lambda r: _tree(r, {"Dockerfile~": "x"}), id="editor-backup"),
    pytest.param(lambda r: _tree(r, {"kemu.egg-info/PKG-INFO": "x"}), id="egg-info"),
])
def test_irrelevant_changes_keep_the_hash(
    tmp_path: Path, change: Callable[[Path], object],
) -> None:
    root = _tree(tmp_path / "ctx", FILES)
    before = hash_tree(root)
    change(root)
    assert hash_tree(root) == before


def test_names_cannot_run_into_contents(tmp_path: Path) -> None:
    one = _tree(tmp_path / "one", {"ab": "c"})
    two = _tree(tmp_path / "two", {"a": "bc"})
    assert hash_tree(one) != hash_tree(two)


def test_symlinks_hash_their_target_not_the_file(tmp_path: Path) -> None:
    root = _tree(tmp_path / "ctx", FILES)
    (root / "link").symlink_to("a")
    (root / "dirlink").symlink_to("sub")
    assert [p.as_posix() for p in iter_files(root)] == ["Dockerfile", "a", "dirlink", "link",
                                                        "sub/b.py"]
    before = hash_tree(root)
    (root / "a").write_text("changed\n")
    after_content = hash_tree(root)
    (root / "link").unlink()
    (root / "link").symlink_to("sub/b.py")
    assert len({before, after_content, hash_tree(root)}) == 3


def test_a_single_file_hashes_by_name_and_content(tmp_path: Path) -> None:
    f = tmp_path / "busybox"
    f.write_bytes(b"\x7fELF")
    g = tmp_path / "other" / "busybox"
    g.parent.mkdir()
    g.write_bytes(b"\x7fELF")
    assert hash_tree(f) == hash_tree(g)
    g.write_bytes(b"\x7fELF2")
    assert hash_tree(f) != hash_tree(g)


def test_missing_input_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        hash_tree(tmp_path / "nope")


def test_context_hash_covers_build_args_extra_and_source_names(tmp_path: Path) -> None:
    root = _tree(tmp_path / "ctx", FILES)
    base = context_hash({"context": root}, build_args={"VERSION": "1", "BASE": "b"},
                        extra={"base-id": "sha256:1"})
    same = context_hash({"context": root}, build_args={"BASE": "b", "VERSION": "1"},
                        extra={"base-id": "sha256:1"})
    assert base == same
    assert base != context_hash({"context": root}, build_args={"VERSION": "2", "BASE": "b"},
                                extra={"base-id": "sha256:1"})
    assert base != context_hash({"context": root}, build_args={"VERSION": "1", "BASE": "b"},
                                extra={"base-id": "sha256:2"})
    assert base != context_hash({"other": root}, build_args={"VERSION": "1", "BASE": "b"},
                                extra={"base-id": "sha256:1"})
    # An argument is not the same input as an extra of the same name and value.
    assert (context_hash({"context": root}, build_args={"k": "v"})
            != context_hash({"context": root}, extra={"k": "v"}))
