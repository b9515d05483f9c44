"""Content hashes of image build inputs, so that an image is rebuilt only when they change.

Docker's own layer cache is not enough here: it is lost with `docker system prune`, it
cannot see inputs that are made outside the build (the pause binary, the wheelhouse), and
even a fully cached build costs a round trip per step. Instead every kemu image carries the
label `io.kemu.context-hash`: a hash of what went into it (the files of its source
directory and any extra input files, its build arguments, and the id of the image it is
built FROM). A build whose hash equals the label of the existing image is skipped.

The hash covers each file's path relative to its root, whether it is executable, and its
bytes; it ignores timestamps, owners and the order in which the directory lists files, so
a fresh checkout hashes the same as an old one.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from fnmatch import fnmatch
from pathlib import Path

# Bump when the meaning of the hash (or how images are assembled from their inputs)
# changes, so that every image is rebuilt once.
HASH_VERSION = "1"

# Never part of a build input: editor and interpreter droppings.
DEFAULT_IGNORE: tuple[str, ...] = (
    "__pycache__",
    "*.pyc",
    "*.pyo",
    ".*.swp",
    "*~",
    ".DS_Store",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "*.egg-info",
)

_CHUNK = 1 << 20


def _ignored(name: str, ignore: Iterable[str]) -> bool:
    return any(fnmatch(name, pattern) for pattern in ignore)


def iter_files(root: Path, *, ignore: Iterable[str] = DEFAULT_IGNORE) -> Iterator[Path]:
    """Yield the files (and symlinks) under `root` in a stable order, relative to `root`.

    A name matching one of the `ignore` patterns is skipped, and so is everything under a
    directory that matches. `root` may itself be a file: it is then yielded as its name.
    """
    patterns = tuple(ignore)
    if not root.is_dir():
        yield Path(root.name)
        return
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        # os.walk lists a symlink to a directory among dirnames without descending into
        # it; such a link is an entry of its own, as it would be in a Docker context.
        links = [d for d in dirnames if (here / d).is_symlink()]
        dirnames[:] = sorted(d for d in dirnames if d not in links and not _ignored(d, patterns))
        for name in sorted([*filenames, *links]):
            if not _ignored(name, patterns):
                yield (here / name).relative_to(root)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def hash_tree(root: Path, *, ignore: Iterable[str] = DEFAULT_IGNORE) -> str:
    """sha256 over the paths, executable bits and contents of the files under `root`.

    Raises FileNotFoundError when `root` does not exist.
    """
    if not root.exists():
        raise FileNotFoundError(root)
    base = root if root.is_dir() else root.parent
    h = hashlib.sha256()
    for rel in iter_files(root, ignore=ignore):
        full = base / rel if root.is_dir() else root
        st = full.lstat()
        if stat.S_ISLNK(st.st_mode):
            kind, digest = "l", os.readlink(full)
        else:
            kind = "x" if st.st_mode & 0o111 else "f"
            digest = _file_digest(full)
        # NUL separators: no path or digest can contain one, so entries cannot run together.
        h.update(f"{rel.as_posix()}\0{kind}\0{digest}\0".encode())
    return h.hexdigest()


def context_hash(
    sources: Mapping[str, Path],
    *,
    build_args: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
    ignore: Iterable[str] = DEFAULT_IGNORE,
) -> str:
    """The `io.kemu.context-hash` of an image.

    `sources` names each input tree or file (the name keeps two inputs with the same
    files apart); `build_args` are the Docker build arguments; `extra` holds anything else
    the image depends on, such as the id of its base image. The result is a 64-digit hex
    string that changes when any of these does, and only then.
    """
    patterns = tuple(ignore)
    h = hashlib.sha256(f"kemu-context-v{HASH_VERSION}\0".encode())
    for name in sorted(sources):
        h.update(f"src\0{name}\0{hash_tree(sources[name], ignore=patterns)}\0".encode())
    for key, value in sorted((build_args or {}).items()):
        h.update(f"arg\0{key}\0{value}\0".encode())
    for key, value in sorted((extra or {}).items()):
        h.update(f"extra\0{key}\0{value}\0".encode())
    return h.hexdigest()
