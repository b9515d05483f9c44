"""Build the images kemu needs on the local Docker engine, offline.

This machine reaches no container registry, so nothing is pulled: kemu/base is a Debian
bookworm root filesystem made once with debootstrap and `docker import`ed (the tarball is
cached, so a rebuild after `docker system prune` takes seconds), the other images build
`FROM ${BASE}` (or FROM scratch), and Python wheels come from a wheelhouse that the host's
pip fills. With a registry at hand, `base="python:3.11-slim"` builds on that instead.

Each image is rebuilt only when its inputs changed: the label `io.kemu.context-hash`
(see kemu.images.context) is compared with the hash of the current inputs, which include
the id of the base image, so a new base rebuilds what stands on it. Build contexts are
assembled in a temporary directory from exactly the files an image needs.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kemu.images.context import DEFAULT_IGNORE, context_hash
from kemu.images.engine import DockerEngine, Engine
from kemu.images.errors import ImageError

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

LABEL_IMAGE = "io.kemu.image"
LABEL_HASH = "io.kemu.context-hash"
DEFAULT_BASE = "kemu/base:bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# How many lines of a failed build's output are shown before the one-line error.
_TAIL = 15


@dataclass(frozen=True)
class BuildEnv:
    """Where sources come from and where slow-to-make inputs are cached."""

    root: Path  # a kemu source checkout: images/, kemu/, pyproject.toml
    cache: Path  # the base tarball, the wheelhouse, the build lock
    mirror: str = DEFAULT_MIRROR

    @property
    def images(self) -> Path:
        return self.root / "images"


Inputs = Callable[[BuildEnv], dict[str, Path]]
Prepare = Callable[[BuildEnv, Path, Progress], None]


def _no_inputs(env: BuildEnv) -> dict[str, Path]:
    return {}


def _no_prepare(env: BuildEnv, context: Path, progress: Progress) -> None:
    pass


@dataclass(frozen=True)
class ImageSpec:
    """One image: its tags (the first is the one built), source directory and extras.

    `inputs` names the files besides `images/<source>/` that go into the context hash;
    `prepare` puts whatever else the Dockerfile COPYs into the assembled context.
    """

    name: str
    tags: tuple[str, ...]
    source: str
    build_args: Mapping[str, str] = field(default_factory=dict)
    from_base: bool = True
    inputs: Inputs = _no_inputs
    prepare: Prepare = _no_prepare

    @property
    def ref(self) -> str:
        return self.tags[0]


# --- the images ---------------------------------------------------------------------------


def _compile_pause(env: BuildEnv, context: Path, progress: Progress) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise ImageError("gcc is not installed (needed for kemu/pause): "
                         "apt-get install gcc libc6-dev")
    cmd = [gcc, "-static", "-Os", "-s", "-Wall", "-Wextra", "-o", str(context / "pause"),
           str(context / "pause.c")]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        first = next((ln for ln in res.stderr.splitlines() if "error" in ln), res.stderr.strip())
        hint = " (is libc6-dev installed?)" if "crt1.o" in res.stderr or ".h:" in first else ""
        raise ImageError(f"compiling pause.c failed: {first.strip()}{hint}")


def _busybox() -> Path:
    for candidate in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if candidate.is_file():
            return candidate
    raise ImageError("busybox is not installed (needed for kemu/tools): "
                     "run scripts/ensure-docker.sh or apt-get install busybox-static")


def _tools_inputs(env: BuildEnv) -> dict[str, Path]:
    return {"busybox": _busybox()}


def _tools_prepare(env: BuildEnv, context: Path, progress: Progress) -> None:
    shutil.copy2(_busybox(), context / "busybox")


def _kemu_sources(env: BuildEnv) -> dict[str, Path]:
    """What kemu's wheel is made from: the package and the metadata setuptools reads."""
    names = {"pyproject": "pyproject.toml", "readme": "README.md", "package": "kemu"}
    return {key: env.root / name for key, name in names.items() if (env.root / name).exists()}


def _kemu_prepare(env: BuildEnv, context: Path, progress: Progress) -> None:
    wheels = context / "wheels"
    wheels.mkdir()
    fill_wheelhouse(env, wheels, progress)


def kemu_version(root: Path) -> str:
    """The version in pyproject.toml of the checkout at `root`."""
    try:
        with (root / "pyproject.toml").open("rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as e:
        raise ImageError(f"cannot read kemu's version from {root / 'pyproject.toml'}: {e}") from e


NODE_IMAGES = ("kemu/pause:3.9", "kemu/kemu:latest", "kemu/tools:1", "kemu/bootcamp:v1",
               "kemu/bootcamp:v2")
"""What a node of a `kemu up` cluster pulls before its first pod: the pause image, the
kube-dns pods' image, and the images README's walkthrough and tutorials run."""


def image_specs(root: Path) -> list[ImageSpec]:
    """Every image `kemu images build` makes, in build order (kemu/base is apart)."""
    version = kemu_version(root)
    return [
        ImageSpec("pause", ("kemu/pause:3.9",), "pause", from_base=False,
                  prepare=_compile_pause),
        ImageSpec("tools", ("kemu/tools:1",), "tools", inputs=_tools_inputs,
                  prepare=_tools_prepare),
        ImageSpec("bootcamp", ("kemu/bootcamp:v1", "kemu/bootcamp:1"), "bootcamp",
                  build_args={"VERSION": "1"}),
        ImageSpec("bootcamp", ("kemu/bootcamp:v2", "kemu/bootcamp:2"), "bootcamp",
                  build_args={"VERSION": "2"}),
        ImageSpec("kemu", (f"kemu/kemu:{version}", "kemu/kemu:latest"), "kemu",
                  inputs=_kemu_sources, prepare=_kemu_prepare),
    ]


# --- the environment ----------------------------------------------------------------------


def source_root() -> Path:
    """The kemu checkout whose images/ to build: KEMU_SOURCE_DIR, else this package's."""
    env = os.environ.get("KEMU_SOURCE_DIR")
    root = Path(env) if env else Path(__file__).resolve().parents[2]
    if not (root / "images").is_dir() or not (root / "pyproject.toml").is_file():
        raise ImageError(f"no kemu source checkout at {root} (images/ and pyproject.toml); "
                         "run from a checkout or set KEMU_SOURCE_DIR")
    return root


def cache_dir() -> Path:
    """KEMU_CACHE_DIR, else /var/cache/kemu for root, else ~/.cache/kemu."""
    env = os.environ.get("KEMU_CACHE_DIR")
    if env:
        path = Path(env)
    elif os.geteuid() == 0:
        path = Path("/var/cache/kemu")
    else:
        path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kemu"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ImageError(f"cannot create the cache directory {path}: {e.strerror}") from e
    return path


@contextlib.contextmanager
def _build_lock(cache: Path, progress: Progress) -> Iterator[None]:
    """One build at a time per machine: parallel test workers share the engine and cache."""
    with (cache / "build.lock").open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("waiting for another `kemu images build` to finish")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --- wheelhouse ---------------------------------------------------------------------------


def _pip(args: list[str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    log.debug("running %s", " ".join(cmd))
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _pip_error(res: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in (res.stderr + res.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors or lines or ["pip failed"])[0]


def fill_wheelhouse(env: BuildEnv, out: Path, progress: Progress) -> None:
    """Put kemu's wheel and all its dependencies' wheels into `out`.

    kemu's wheel is built from a copy of the checkout (so pip leaves no build/ or
    egg-info in a shared work tree). Dependencies come from the wheelhouse in the cache
    when it has them all, so a rebuild is offline; otherwise from the index, and the
    wheelhouse keeps them for next time. The wheels must fit the image's Python, 3.11.
    """
    if sys.version_info[:2] != (3, 11):
        raise ImageError(f"the wheelhouse needs Python 3.11 (the image's, Debian bookworm's); "
                         f"this is {sys.version.split()[0]}")
    house = env.cache / "wheelhouse"
    house.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kemu-src-") as tmp:
        src = Path(tmp) / "kemu"
        src.mkdir()
        for path in _kemu_sources(env).values():
            if path.is_dir():
                shutil.copytree(path, src / path.name,
                                ignore=shutil.ignore_patterns(*DEFAULT_IGNORE))
            else:
                shutil.copy2(path, src / path.name)
        common = ["wheel", "--quiet", "--wheel-dir", str(out), "--find-links", str(house)]
        res = _pip([*common, "--no-index", str(src)])
        if res.returncode != 0:
            progress("wheelhouse: fetching kemu's dependencies with pip")
            # The build requirements too, so that the next build runs with --no-index.
            res = _pip(["wheel", "--quiet", "--wheel-dir", str(house), "setuptools>=68", "wheel"])
            if res.returncode == 0:
                res = _pip([*common, str(src)])
            if res.returncode != 0:
                raise ImageError(f"pip could not make the wheels for kemu/kemu: {_pip_error(res)}")
    for wheel in out.glob("*.whl"):
        if not wheel.name.startswith("kemu-") and not (house / wheel.name).exists():
            shutil.copy2(wheel, house / wheel.name)


# --- kemu/base ----------------------------------------------------------------------------


def _base_hash(env: BuildEnv) -> str:
    return context_hash({"base": env.images / "base"})


def make_rootfs(env: BuildEnv, tar: Path, progress: Progress) -> None:
    """Run images/base/mkrootfs.sh (debootstrap) into `tar`; its output goes to a log."""
    if os.geteuid() != 0:
        raise ImageError("making kemu/base needs root (debootstrap); run as root or pass "
                         "--base IMAGE")
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        raise ImageError("debootstrap is not installed: run scripts/ensure-docker.sh "
                         "or apt-get install debootstrap")
    logfile = tar.with_suffix(".log")
    progress(f"kemu/base: debootstrap bookworm from {env.mirror} (about a minute; "
             f"log: {logfile})")
    with logfile.open("w") as out:
        res = subprocess.run(["bash", str(env.images / "base" / "mkrootfs.sh"), str(tar),
                              env.mirror], stdout=out, stderr=subprocess.STDOUT, check=False)
    if res.returncode != 0:
        lines = logfile.read_text(errors="replace").splitlines()
        errors = [ln for ln in lines if ln.startswith("E:")]
        reason = (errors or [ln for ln in lines if ln.strip()] or ["no output"])[-1].strip()
        if "Release" in reason or "resolve" in reason.lower():
            reason += f" (no network to {env.mirror}?)"
        raise ImageError(f"debootstrap failed: {reason}; log: {logfile}")


def ensure_base(engine: Engine, env: BuildEnv, *, force: bool, progress: Progress) -> str:
    """Make kemu/base:bookworm exist and match images/base/; return its image id.

    The debootstrap tarball is cached (with its hash beside it): importing it again after
    `docker system prune` takes seconds. `force` re-imports it; to run debootstrap anew,
    delete the tarball.
    """
    digest = _base_hash(env)
    existing = engine.inspect(DEFAULT_BASE)
    if existing is not None and existing.labels.get(LABEL_HASH) == digest and not force:
        progress(f"up to date: {DEFAULT_BASE}")
        return existing.id
    tar = env.cache / "base-bookworm.tar"
    stamp = env.cache / "base-bookworm.tar.hash"
    cached = tar.exists() and stamp.exists() and stamp.read_text().strip() == digest
    started = time.monotonic()
    if not cached:
        tar.unlink(missing_ok=True)
        make_rootfs(env, tar, progress)
        stamp.write_text(digest + "\n")
    else:
        progress(f"kemu/base: importing the cached root filesystem {tar}")
    changes = [
        f'LABEL {LABEL_IMAGE}="1" {LABEL_HASH}="{digest}"',
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["/bin/bash"]',
    ]
    image_id = engine.import_tar(tar, ref=DEFAULT_BASE, changes=changes)
    if existing is not None and existing.id != image_id:
        engine.remove_if_unused(existing.id)
    progress(f"built {DEFAULT_BASE} ({image_id[7:19]}, {time.monotonic() - started:.1f}s)")
    return image_id


def _resolve_base(engine: Engine, base: str, progress: Progress) -> str:
    info = engine.inspect(base)
    if info is None:
        progress(f"pulling {base}")
        engine.pull(base)
        info = engine.inspect(base)
        if info is None:
            raise ImageError(f"base image {base} is not in the engine after pulling it")
    return info.id


# --- building -----------------------------------------------------------------------------


def select(specs: list[ImageSpec], names: list[str] | None) -> tuple[bool, list[ImageSpec]]:
    """Pick the images that `names` asks for (a short name or any tag); all when empty.

    Returns whether kemu/base itself was asked for, and the other images. An unknown name
    is an error that lists the known ones.
    """
    if not names:
        return True, list(specs)
    want_base = False
    chosen: list[ImageSpec] = []
    for name in names:
        if name in ("base", DEFAULT_BASE):
            want_base = True
            continue
        matches = [s for s in specs if name == s.name or name in s.tags]
        if not matches:
            known = sorted({"base", *(s.name for s in specs)})
            raise ImageError(f"unknown image {name!r}; known: {', '.join(known)}")
        chosen.extend(s for s in matches if s not in chosen)
    return want_base, [s for s in specs if s in chosen]


def spec_hash(env: BuildEnv, spec: ImageSpec, *, base: str, base_id: str) -> str:
    """The context hash of `spec` standing on the image `base` whose id is `base_id`."""
    sources = {"context": env.images / spec.source, **spec.inputs(env)}
    args = dict(spec.build_args)
    extra: dict[str, str] = {}
    if spec.from_base:
        args["BASE"] = base
        extra["base-id"] = base_id
    return context_hash(sources, build_args=args, extra=extra)


def build_one(engine: Engine, env: BuildEnv, spec: ImageSpec, *, base: str, base_id: str,
              force: bool, progress: Progress) -> bool:
    """Build `spec` unless the engine has it with the same context hash; tag all its tags.

    Returns whether it was built.
    """
    digest = spec_hash(env, spec, base=base, base_id=base_id)
    existing = engine.inspect(spec.ref)
    if existing is not None and existing.labels.get(LABEL_HASH) == digest and not force:
        for ref in spec.tags[1:]:
            if ref not in existing.tags:
                engine.tag(existing.id, ref)
        progress(f"up to date: {', '.join(spec.tags)}")
        return False

    started = time.monotonic()
    started_at = time.time() - 1  # engine timestamps have whole seconds
    progress(f"building {', '.join(spec.tags)}")
    tail: list[str] = []

    def log_line(line: str) -> None:
        log.debug("%s: %s", spec.ref, line)
        tail.append(line)
        del tail[:-_TAIL]

    with tempfile.TemporaryDirectory(prefix=f"kemu-image-{spec.name}-") as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(env.images / spec.source, context,
                        ignore=shutil.ignore_patterns(*DEFAULT_IGNORE))
        spec.prepare(env, context, progress)
        args = dict(spec.build_args)
        if spec.from_base:
            args["BASE"] = base
        try:
            image_id = engine.build(context, tag=spec.ref, build_args=args,
                                    labels={LABEL_IMAGE: "1", LABEL_HASH: digest},
                                    nocache=force, log_line=log_line)
        except ImageError:
            for line in tail:
                progress(f"  | {line}")
            raise
    for ref in spec.tags[1:]:
        engine.tag(image_id, ref)
    if existing is not None and existing.id != image_id:
        # The image this one replaces would linger as <none>, one per source change.
        engine.remove_if_unused(existing.id)
    # So would the last image of each builder stage (it inherits the base's labels).
    engine.remove_dangling(label=LABEL_IMAGE, since=started_at)
    progress(f"built {', '.join(spec.tags)} ({image_id[7:19]}, "
             f"{time.monotonic() - started:.1f}s)")
    return True


def build_images(*, names: list[str] | None = None, force: bool = False,
                 base: str | None = None, progress: Progress = print,
                 engine: Engine | None = None, env: BuildEnv | None = None) -> list[str]:
    """Build (or find up to date) the images `names` asks for, all by default.

    `base` is the image the others build FROM: kemu/base:bookworm (made here with
    debootstrap when missing) unless another is given, such as python:3.11-slim where a
    registry is reachable. `force` rebuilds without Docker's layer cache even when the
    context hash matches. Returns every image ref built or found. Raises ImageError, with
    a one-line message, on any failure.
    """
    env = env or BuildEnv(root=source_root(), cache=cache_dir(),
                          mirror=os.environ.get("KEMU_DEBIAN_MIRROR", DEFAULT_MIRROR))
    want_base, specs = select(image_specs(env.root), names)
    engine = engine or DockerEngine.connect()
    refs: list[str] = []
    with _build_lock(env.cache, progress):
        base_ref = base or DEFAULT_BASE
        base_id = ""
        if base is None and (want_base or any(s.from_base for s in specs)):
            base_id = ensure_base(engine, env, force=force and want_base, progress=progress)
            refs.append(DEFAULT_BASE)
        elif base is not None and any(s.from_base for s in specs):
            base_id = _resolve_base(engine, base, progress)
        for spec in specs:
            build_one(engine, env, spec, base=base_ref, base_id=base_id, force=force,
                      progress=progress)
            refs.extend(spec.tags)
    return refs
