"""The container engine as kemu.images needs it, behind a small Protocol.

Only this module touches the Docker SDK (which ships without type hints): it turns the
SDK's dicts and exceptions into typed values and ImageError, so the build logic is typed
and can be exercised against a fake engine.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]

from kemu.images.errors import ImageError

log = logging.getLogger(__name__)

# Builds and imports can be silent for minutes (pip installing, a big layer committing).
_API_TIMEOUT = 900


@dataclass(frozen=True)
class ImageInfo:
    """What kemu needs to know about an image in the engine."""

    id: str
    tags: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    size: int = 0
    created: str = ""


class Engine(Protocol):
    """Image operations on a container engine."""

    def inspect(self, ref: str) -> ImageInfo | None:
        """The image `ref` names, or None when the engine has no such image."""

    def build(self, context: Path, *, tag: str, build_args: Mapping[str, str],
              labels: Mapping[str, str], nocache: bool,
              log_line: Callable[[str], None]) -> str:
        """Build `context` (holding a Dockerfile) as `tag`; return the image id."""

    def tag(self, image_id: str, ref: str) -> None:
        """Point `ref` (repository:tag) at `image_id`."""

    def import_tar(self, tar: Path, *, ref: str, changes: Sequence[str]) -> str:
        """`docker import` a root filesystem tar as `ref`; return the image id."""

    def pull(self, ref: str) -> None:
        """Pull `ref` from its registry."""

    def list(self, *, label: str) -> list[ImageInfo]:
        """The images that carry `label` (KEY or KEY=VALUE)."""

    def remove_if_unused(self, image_id: str) -> bool:
        """Remove `image_id` if no tag, container or child image uses it; say if it did."""

    def remove_dangling(self, *, label: str, since: float) -> int:
        """Remove untagged images with `label` made at or after `since` (epoch seconds)."""


def _split_ref(ref: str) -> tuple[str, str]:
    repo, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return repo, tag


class DockerEngine:
    """Engine on a Docker daemon through the docker SDK's low-level API client."""

    def __init__(self, api: Any) -> None:
        self._api = api

    @classmethod
    def connect(cls) -> DockerEngine:
        """Connect as the docker CLI would (DOCKER_HOST or the local socket) and ping."""
        try:
            client = docker.from_env(version="auto", timeout=_API_TIMEOUT)
            client.ping()
        except docker.errors.DockerException as e:
            raise ImageError(f"cannot reach the Docker engine ({_short(e)}); "
                             "start it with scripts/ensure-docker.sh") from e
        return cls(client.api)

    def inspect(self, ref: str) -> ImageInfo | None:
        try:
            data = self._api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.DockerException as e:
            raise ImageError(f"cannot inspect image {ref}: {_short(e)}") from e
        return _info(data)

    def build(self, context: Path, *, tag: str, build_args: Mapping[str, str],
              labels: Mapping[str, str], nocache: bool,
              log_line: Callable[[str], None]) -> str:
        image_id = ""
        try:
            stream = self._api.build(path=str(context), tag=tag, buildargs=dict(build_args),
                                     labels=dict(labels), nocache=nocache, rm=True,
                                     forcerm=True, pull=False, decode=True)
            for chunk in stream:
                if "error" in chunk:
                    detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                    raise ImageError(f"build of {tag} failed: {str(detail).strip()}")
                text = chunk.get("stream")
                if isinstance(text, str):
                    for line in text.splitlines():
                        if line.strip():
                            log_line(line.rstrip())
                aux = chunk.get("aux")
                if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
                    image_id = aux["ID"]
        except docker.errors.DockerException as e:
            raise ImageError(f"build of {tag} failed: {_short(e)}") from e
        if not image_id:
            info = self.inspect(tag)
            if info is None:
                raise ImageError(f"build of {tag} reported success but made no image")
            image_id = info.id
        return image_id

    def tag(self, image_id: str, ref: str) -> None:
        repo, tag = _split_ref(ref)
        try:
            self._api.tag(image_id, repo, tag, force=True)
        except docker.errors.DockerException as e:
            raise ImageError(f"cannot tag {image_id[:19]} as {ref}: {_short(e)}") from e

    def import_tar(self, tar: Path, *, ref: str, changes: Sequence[str]) -> str:
        repo, tag = _split_ref(ref)
        try:
            result = self._api.import_image_from_file(str(tar), repository=repo, tag=tag,
                                                      changes=list(changes))
        except docker.errors.DockerException as e:
            raise ImageError(f"docker import of {tar} failed: {_short(e)}") from e
        for line in str(result).splitlines():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and "error" in msg:
                raise ImageError(f"docker import of {tar} failed: {msg['error']}")
        info = self.inspect(ref)
        if info is None:
            raise ImageError(f"docker import of {tar} made no image {ref}")
        return info.id

    def pull(self, ref: str) -> None:
        repo, tag = _split_ref(ref)
        try:
            self._api.pull(repo, tag=tag)
        except docker.errors.DockerException as e:
            raise ImageError(f"cannot pull {ref}: {_short(e)}") from e

    def list(self, *, label: str) -> list[ImageInfo]:
        try:
            images = self._api.images(filters={"label": label})
        except docker.errors.DockerException as e:
            raise ImageError(f"cannot list images: {_short(e)}") from e
        return [_info(i) for i in images]


    def remove_if_unused(self, image_id: str) -> bool:
        info = self.inspect(image_id)
        if info is None or info.tags:
            return False
        try:
            self._api.remove_image(image_id, force=False, noprune=False)
        except docker.errors.DockerException as e:  # in use: a container or a child image
            log.debug("keeping %s: %s", image_id, _short(e))
            return False
        return True


    def remove_dangling(self, *, label: str, since: float) -> int:
        try:
            images = self._api.images(filters={"label": label, "dangling": True})
        except docker.errors.DockerException as e:
            raise ImageError(f"cannot list images: {_short(e)}") from e
        removed = 0
        for image in images:
            created = image.get("Created")
            if isinstance(created, int | float) and created >= since:
                removed += self.remove_if_unused(str(image.get("Id", "")))
        return removed


def _info(data: Mapping[str, Any]) -> ImageInfo:
    config = data.get("Config") or {}
    labels = data.get("Labels") if "Labels" in data else config.get("Labels")
    created = data.get("Created", "")
    return ImageInfo(
        id=str(data.get("Id", "")),
        tags=tuple(str(t) for t in (data.get("RepoTags") or ()) if t != "<none>:<none>"),
        labels={str(k): str(v) for k, v in (labels or {}).items()},
        size=int(data.get("Size") or 0),
        created=str(created),
    )


def _short(e: BaseException) -> str:
    """One line from a Docker SDK error (whose str() can span a whole HTTP response)."""
    text = getattr(e, "explanation", None) or str(e)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return " ".join(str(text).split())[:300]
