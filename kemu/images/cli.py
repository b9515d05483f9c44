"""`kemu images build|list|push`: the command-line face of kemu.images (`push`, which
needs to know clusters, is run by kemu.cli.imagepush).

Failures print one line (`error: ...`) and exit 1; they never show a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time

from kemu.images.errors import ImageError


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add `images` with its `build` and `list` subcommands to kemu's subparsers."""
    p = subparsers.add_parser("images", help="build and list kemu's images (offline)",
                              description="Build the images kemu needs on the local Docker "
                              "engine without a registry: kemu/base (debootstrap), "
                              "kemu/pause, kemu/tools, kemu/bootcamp, kemu/kemu.")
    sub = p.add_subparsers(dest="images_command", required=True, metavar="COMMAND")
    b = sub.add_parser("build", help="build the images that are missing or out of date",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="environment:\n"
                       "  KEMU_CACHE_DIR      base tarball and wheelhouse "
                       "(default /var/cache/kemu as root)\n"
                       "  KEMU_DEBIAN_MIRROR  mirror for debootstrap "
                       "(default http://deb.debian.org/debian)\n"
                       "  KEMU_SOURCE_DIR     the kemu checkout whose images/ to build\n"
                       "An image is rebuilt only when its inputs changed (label "
                       "io.kemu.context-hash).\nTo run debootstrap anew, delete "
                       "$KEMU_CACHE_DIR/base-bookworm.tar.")
    b.add_argument("names", nargs="*", metavar="NAME",
                   help="base, pause, tools, bootcamp, kemu, or an image ref (default: all)")
    b.add_argument("--force", action="store_true",
                   help="rebuild even when up to date, without Docker's layer cache")
    b.add_argument("--base", metavar="IMAGE", default=None,
                   help="build FROM this image instead of kemu/base:bookworm "
                   "(e.g. python:3.11-slim where a registry is reachable)")
    sub.add_parser("list", help="list the images kemu built")
    push = sub.add_parser(
        "push", help="push images to a cluster's registry, where its nodes pull from",
        description="Push images from this machine's Docker engine to where a cluster's "
        "nodes pull them: a `kemu up --nodes N` cluster's lab registry (the nodes' Docker Hub "
        "mirror, so pods name the image as usual), or a registry you name.")
    push.add_argument("images", nargs="*", metavar="IMAGE",
                      help="images to push (default: the images kemu's nodes use)")
    where = push.add_mutually_exclusive_group()
    where.add_argument("--name", default="kemu", help="the cluster (default: kemu)")
    where.add_argument("--registry", metavar="HOST:PORT",
                       help="push to this registry instead, as HOST:PORT/kemu/kemu:latest; "
                            "this machine's Docker must trust it")
    return p


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1000
    raise AssertionError(size)


def _list() -> int:
    from kemu.images.build import LABEL_IMAGE
    from kemu.images.engine import DockerEngine

    rows = []
    for info in DockerEngine.connect().list(label=LABEL_IMAGE):
        for ref in sorted(info.tags) or ["<none>"]:
            rows.append((ref, info.id[7:19], _human(info.size)))
    rows.sort()
    width = max([len("IMAGE"), *(len(r[0]) for r in rows)])
    print(f"{'IMAGE':<{width}}  {'ID':<12}  SIZE")
    for ref, short_id, size in rows:
        print(f"{ref:<{width}}  {short_id:<12}  {size}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run `kemu images ...`; return the exit code."""
    # The docker SDK is imported by the commands that use it: every `kemu` process (a
    # store, a scheduler) builds this parser, and would otherwise carry it in memory.
    from kemu.images.build import build_images

    try:
        if args.images_command == "list":
            return _list()
        started = time.monotonic()
        refs = build_images(names=args.names or None, force=args.force, base=args.base,
                            progress=lambda line: print(line, flush=True))
        print(f"ready ({time.monotonic() - started:.1f}s): {', '.join(refs)}")
        return 0
    except ImageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
