"""Which images a build makes, against a fake engine: up to date means untouched, a changed
input, a new base or --force means a rebuild, and aliases always end up tagged."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from kemu.images.build import (
    LABEL_HASH,
    LABEL_IMAGE,
    BuildEnv,
    ImageSpec,
    build_one,
    image_specs,
    kemu_version,
    select,
)
from kemu.images.engine import ImageInfo
from kemu.images.errors import ImageError

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class FakeEngine:
    """Records builds and tags; images are ImageInfo values keyed by every tag."""

    images: dict[str, ImageInfo] = field(default_factory=dict)
    built: list[tuple[str, dict[str, str], bool, list[str]]] = field(default_factory=list)
    tagged: list[tuple[str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)

    def inspect(self, ref: str) -> ImageInfo | None:
        return self.images.get(ref)

    def build(self, context: Path, *, tag: str, build_args: Mapping[str, str],
              labels: Mapping[str, str], nocache: bool,
              log_line: Callable[[str], None]) -> str:
        files = sorted(p.relative_to(context).as_posix() for p in context.rglob("*")
                       if p.is_file())
        self.built.append((tag, dict(build_args), nocache, files))
        image_id = f"sha256:{len(self.built):064x}"
        self.images[tag] = ImageInfo(id=image_id, tags=(tag,), labels=dict(labels))
        return image_id

    def tag(self, image_id: str, ref: str) -> None:
        self.tagged.append((image_id, ref))
        source = next(i for i in self.images.values() if i.id == image_id)
        updated = replace(source, tags=(*source.tags, ref))
        for key, info in list(self.images.items()):
            if info.id == image_id:
                self.images[key] = updated
        self.images[ref] = updated

    def import_tar(self, tar: Path, *, ref: str, changes: Sequence[str]) -> str:
        raise AssertionError("no imports in these tests")

    def pull(self, ref: str) -> None:
        raise AssertionError("no pulls in these tests")

    def list(self, *, label: str) -> list[ImageInfo]:
        return list(self.images.values())

    def remove_dangling(self, *, label: str, since: float) -> int:
        self.pruned.append(label)
        return 0

    def remove_if_unused(self, image_id: str) -> bool:
        if any(i.id == image_id for i in self.images.values()):
            return False
        self.removed.append(image_id)
        return True


@pytest.fixture
def env(tmp_path: Path) -> BuildEnv:
    """A checkout with the real bootcamp sources (which need nothing prepared)."""
    root = tmp_path / "src"
    shutil.copytree(ROOT / "images" / "bootcamp", root / "images" / "bootcamp")
    (root / "pyproject.toml").write_text('[project]\nname = "kemu"\nversion = "9.9"\n')
    return BuildEnv(root=root, cache=tmp_path / "cache")


def _bootcamp(version: str) -> ImageSpec:
    return ImageSpec("bootcamp", (f"kemu/bootcamp:v{version}", f"kemu/bootcamp:{version}"),
                     "bootcamp", build_args={"VERSION": version})


def _build(engine: FakeEngine, env: BuildEnv, spec: ImageSpec, *, base_id: str = "sha256:b",
           force: bool = False) -> bool:
    lines: list[str] = []
    return build_one(engine, env, spec, base="kemu/base:bookworm", base_id=base_id,
                     force=force, progress=lines.append)


def test_first_build_labels_tags_and_passes_the_base(env: BuildEnv) -> None:
    engine = FakeEngine()
    assert _build(engine, env, _bootcamp("1"))
    [(tag, args, nocache, files)] = engine.built
    assert tag == "kemu/bootcamp:v1"
    assert args == {"VERSION": "1", "BASE": "kemu/base:bookworm"}
    assert not nocache
    assert files == ["Dockerfile", "server.py"]
    info = engine.images["kemu/bootcamp:v1"]
    assert info.labels[LABEL_IMAGE] == "1"
    assert len(info.labels[LABEL_HASH]) == 64
    assert engine.images["kemu/bootcamp:1"].id == info.id
    assert engine.pruned == [LABEL_IMAGE]  # builder stages leave no <none> images


def test_second_build_is_skipped(env: BuildEnv) -> None:
    engine = FakeEngine()
    _build(engine, env, _bootcamp("1"))
    assert not _build(engine, env, _bootcamp("1"))
    assert len(engine.built) == 1


@pytest.mark.parametrize("change", [
    pytest.param(lambda e: (e.images / "bootcamp" / "server.py").write_text("# v3\n"),
                 id="source-edited"),
    pytest.param(lambda e: (e.images / "bootcamp" / "extra.txt").write_text("x"),
                 id="file-added"),
])
def test_changed_context_rebuilds(env: BuildEnv, change: Callable[[BuildEnv], object]) -> None:
    engine = FakeEngine()
    _build(engine, env, _bootcamp("1"))
    change(env)
    first = engine.images["kemu/bootcamp:v1"].id
    assert _build(engine, env, _bootcamp("1"))
    assert len(engine.built) == 2
    assert engine.removed == [first]  # the replaced image does not linger as <none>


def test_new_base_image_rebuilds(env: BuildEnv) -> None:
    engine = FakeEngine()
    _build(engine, env, _bootcamp("1"), base_id="sha256:old")
    assert _build(engine, env, _bootcamp("1"), base_id="sha256:new")


def test_version_argument_makes_a_different_image(env: BuildEnv) -> None:
    engine = FakeEngine()
    _build(engine, env, _bootcamp("1"))
    assert _build(engine, env, _bootcamp("2"))
    assert (engine.images["kemu/bootcamp:v1"].labels[LABEL_HASH]
            != engine.images["kemu/bootcamp:v2"].labels[LABEL_HASH])


def test_force_rebuilds_without_cache(env: BuildEnv) -> None:
    engine = FakeEngine()
    _build(engine, env, _bootcamp("1"))
    assert _build(engine, env, _bootcamp("1"), force=True)
    assert engine.built[-1][2] is True


def test_up_to_date_image_gets_a_lost_alias_back(env: BuildEnv) -> None:
    engine = FakeEngine()
    _build(engine, env, _bootcamp("1"))
    del engine.images["kemu/bootcamp:1"]
    primary = engine.images["kemu/bootcamp:v1"]
    engine.images["kemu/bootcamp:v1"] = replace(primary, tags=("kemu/bootcamp:v1",))
    engine.tagged.clear()
    assert not _build(engine, env, _bootcamp("1"))
    assert engine.tagged == [(primary.id, "kemu/bootcamp:1")]


@pytest.mark.parametrize(("names", "want_base", "tags"), [
    pytest.param(None, True, None, id="all"),
    pytest.param(["pause"], False, ["kemu/pause:3.9"], id="short-name"),
    pytest.param(["bootcamp"], False,
                 ["kemu/bootcamp:v1", "kemu/bootcamp:1", "kemu/bootcamp:v2", "kemu/bootcamp:2"],
                 id="both-bootcamps"),
    pytest.param(["kemu/bootcamp:v2"], False, ["kemu/bootcamp:v2", "kemu/bootcamp:2"],
                 id="by-ref"),
    pytest.param(["base", "tools"], True, ["kemu/tools:1"], id="base-too"),
    pytest.param(["kemu"], False, [f"kemu/kemu:{kemu_version(ROOT)}", "kemu/kemu:latest"],
                 id="kemu"),
])
def test_select(names: list[str] | None, want_base: bool, tags: list[str] | None) -> None:
    specs = image_specs(ROOT)
    got_base, chosen = select(specs, names)
    assert got_base is want_base
    expected = [t for s in specs for t in s.tags] if tags is None else tags
    assert [t for s in chosen for t in s.tags] == expected


def test_select_unknown_name_lists_the_known() -> None:
    with pytest.raises(ImageError, match="unknown image 'nginx'; known: base, bootcamp, kemu"):
        select(image_specs(ROOT), ["nginx"])
