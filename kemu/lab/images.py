"""Copy images from the host's engine into a node's dockerd: `docker save | docker load`.

The machine reaches no registry (DESIGN.md, "Images without a registry"), so a node gets
its images the way one would seed an air-gapped VM. Both ends are the docker CLI, streaming
through a pipe, so a 150 MB image never sits in Python memory.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from kemu.lab._run import LabError


def copy_images(images: Sequence[str], docker_host: str, *, source_host: str | None = None,
                timeout: float = 120.0) -> None:
    """Save `images` from `source_host` (default: the host's engine) and load them into the
    engine at `docker_host`, in one stream so shared layers travel once."""
    if not images:
        return
    src_env_host = ["--host", source_host] if source_host else []
    save = subprocess.Popen(
        ["docker", *src_env_host, "save", *images],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert save.stdout is not None
    try:
        load = subprocess.run(
            ["docker", "--host", docker_host, "load", "--quiet"],
            stdin=save.stdout, capture_output=True, timeout=timeout, check=False,
        )
    finally:
        save.stdout.close()
        try:
            save_err = save.communicate(timeout=timeout)[1]
        except subprocess.TimeoutExpired:
            save.kill()
            save_err = save.communicate()[1]
    if save.returncode != 0:
        raise LabError(f"docker save {' '.join(images)}: {save_err.decode(errors='replace')}")
    if load.returncode != 0:
        raise LabError(f"docker load into {docker_host}: "
                       f"{load.stderr.decode(errors='replace')}")
