"""`kemu images push`: put images where a cluster's nodes pull from.

- `--name CLUSTER` (default `kemu`): a multi-node cluster's lab registry, which every node's
  engine uses as its Docker Hub mirror, so a pod naming `myapp:1` gets it (as `kind load
  docker-image` or `k3d image import` do, but through a registry, as on VMs). A one-node
  cluster runs its pods on this machine's engine, which has the image already.
- `--registry HOST:PORT`: a registry the lab admin names (docs/lab.md); VMs pull from it.

Without IMAGE arguments it pushes the images kemu's own pods use.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from kemu.lab._run import LabError


def _lab_registry(name: str) -> str | None:
    """The address of cluster `name`'s lab registry, or None for a one-node cluster."""
    from kemu.cli.lifecycle import lab_state, state_dir

    d = state_dir(name)
    if not d.exists():
        raise LabError(f"no cluster named {name!r}: start one with `kemu up --name {name}`")
    lab = lab_state(d)
    if lab is None:
        return None
    address = str(lab.get("registry") or "")
    if not address:
        raise LabError(f"cluster {name!r} was made without a registry: "
                       f"`kemu down --name {name}` and `kemu up` it again")
    return address


def _present(refs: list[str]) -> None:
    missing = [r for r in refs if subprocess.run(["docker", "image", "inspect", r],
                                                 capture_output=True).returncode != 0]
    if missing:
        raise LabError(f"not in this machine's Docker engine: {', '.join(missing)} "
                       f"(docker build or kemu images build it first)")


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: every `kemu` process (a store, a scheduler) builds the
    # whole command line, and the docker SDK is only for the commands that use it.
    from kemu.images.build import NODE_IMAGES
    from kemu.lab import registry

    refs = list(args.images) or list(NODE_IMAGES)
    try:
        _present(refs)
        targets = [(ref, registry.mirror_repository(ref)) for ref in refs]
        if args.registry:
            for name in registry.push_as(targets, args.registry):
                print(f"pushed {name}")
            return 0
        address = _lab_registry(args.name)
        if address is None:
            print(f"cluster {args.name!r} runs its pods on this machine's Docker engine, "
                  f"which has {', '.join(refs)} already")
            return 0
        if not registry.answers(address):
            raise LabError(f"cluster {args.name!r}'s registry does not answer at {address}: "
                           f"`kemu up --name {args.name}` starts it again")
        registry.push(refs, address)
        for ref, repo in targets:
            print(f"pushed {ref} to {address}/{repo} (the nodes pull {ref} from it)")
        return 0
    except LabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
