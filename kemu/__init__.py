"""kemu: a Kubernetes-style cluster emulator with real networking.

Every component lives under this one import namespace (kemu.services, kemu.nodeagent,
kemu.dns, ...) so that no top-level import name collides with another distribution.
"""

__version__ = "0.1.0"
