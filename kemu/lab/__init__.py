"""The multi-node lab: N network namespaces on one Linux bridge, one dockerd each.

Each namespace plays one VM (DESIGN.md, "One machine, many VMs"), so the same node agent
can run unchanged on a laptop or on real machines.
"""

from kemu.lab.harness import Lab, LabNode

__all__ = ["Lab", "LabNode"]
