"""The chaos tests reuse the node agent's fixtures (a real dockerd and the demo images)."""

from __future__ import annotations

from tests.e2e.nodeagent.conftest import docker_client

__all__ = ["docker_client"]
