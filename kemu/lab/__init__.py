"""The multi-node lab: N network namespaces on one Linux bridge, one dockerd each.

Each namespace plays one VM (DESIGN.md, "One machine, many VMs"), so the same node agent
can run unchanged on a laptop or on real machines. The lab itself is
kemu.lab.harness.Lab; nothing is imported here, so that a module of the package (the
registry, `_run`) can be used without the rest.
"""
