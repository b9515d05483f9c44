"""Image pulls as the kubelet's image manager does them: the pull policy, the per-image
back-off (ErrImagePull, then ImagePullBackOff until the back-off expires), and the events.

No registry may be reachable (kemu's demo images are local): a pull that fails for an
image already on the node uses that image, with a Pulled event that says so, so that
imagePullPolicy Always still runs local-only images.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from kemu.client.events import NORMAL, WARNING, Recorder
from kemu.nodeagent.backoff import Backoff
from kemu.nodeagent.clock import Clock
from kemu.nodeagent.runtime import ContainerRuntime, ContainerRuntimeError, RuntimeUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PullResult:
    """ok, or the waiting reason and message to show, and when to look again."""

    ok: bool
    reason: str = ""
    message: str = ""
    retry_after: float | None = None


OK = PullResult(True)


def short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


class ImagePuller:
    """Ensures a container's image is on the node before it is created."""

    def __init__(self, runtime: ContainerRuntime, recorder: Recorder, clock: Clock,
                 backoff: Backoff) -> None:
        self.runtime = runtime
        self.recorder = recorder
        self.clock = clock
        self.backoff = backoff

    def forget(self, uid: str) -> None:
        self.backoff.forget_prefix(uid)

    async def ensure(self, pod: Any, c: Any) -> PullResult:
        image, policy = c.image, c.image_pull_policy or "IfNotPresent"
        present = await self.runtime.image_present(image)
        if policy == "Never":
            if present:
                return OK
            msg = f'Container image "{image}" is not present with pull policy of Never'
            self.recorder.event(pod, WARNING, "ErrImageNeverPull", msg, c.name)
            return PullResult(False, "ErrImageNeverPull", msg)
        if present and policy == "IfNotPresent":
            self.recorder.event(pod, NORMAL, "Pulled",
                                f'Container image "{image}" already present on machine', c.name)
            return OK
        key = f"{pod.metadata.uid}/{c.name}/{image}"
        now = self.clock.monotonic()
        wait = self.backoff.remaining_since_update(key, now)
        if wait > 0 and not present:
            msg = f'Back-off pulling image "{image}"'
            self.recorder.event(pod, NORMAL, "BackOff", msg, c.name)
            self.recorder.event(pod, WARNING, "Failed", "Error: ImagePullBackOff", c.name)
            return PullResult(False, "ImagePullBackOff", msg, wait + 0.05)
        self.recorder.event(pod, NORMAL, "Pulling", f'Pulling image "{image}"', c.name)
        started = time.monotonic()
        try:
            await self.runtime.pull(image)
        except RuntimeUnavailable:
            raise
        except ContainerRuntimeError as e:
            if present:
                log.info("pull of %s failed (%s); using the image present on the node",
                         image, e)
                self.recorder.event(pod, NORMAL, "Pulled",
                                    f'Container image "{image}" already present on machine '
                                    f"(pull failed: {short(str(e))})", c.name)
                return OK
            self.backoff.next(key, now)
            msg = f'Failed to pull image "{image}": {short(str(e))}'
            self.recorder.event(pod, WARNING, "Failed", msg, c.name)
            self.recorder.event(pod, WARNING, "Failed", "Error: ErrImagePull", c.name)
            # Look again half-way through the back-off: the pod then shows
            # ImagePullBackOff until the next pull, as kubectl users expect.
            return PullResult(False, "ErrImagePull", msg, self.backoff.get(key) / 2)
        self.backoff.reset(key)
        self.recorder.event(pod, NORMAL, "Pulled", f'Successfully pulled image "{image}" in '
                            f"{time.monotonic() - started:.3f}s", c.name)
        return OK
