"""The `--leader-elect*` flags of kube-scheduler and kube-controller-manager, for both.

Only argparse here: the components' CLIs import this at `kemu` start-up, and turn the
values into a `kemu.client.leaderelection.LeaderElectionConfig` when they run.
"""

from __future__ import annotations

import argparse
from typing import Any

from kemu.util.argtypes import seconds

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE | _FALSE:
        return low in _TRUE
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _duration(text: str) -> float:
    try:
        return seconds(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_leader_election_flags(p: argparse.ArgumentParser, resource_name: str) -> None:
    """Kubernetes' flags and defaults; `resource_name` is the Lease's default name."""
    p.add_argument("--leader-elect", type=_bool, nargs="?", const=True, default=True,
                   metavar="BOOL", help="run only while holding the leader Lease, so that "
                   "replicas can stand by (default true; --leader-elect=false for one)")
    for flag, default, meaning in (
            ("lease-duration", "15s", "a standby takes over a Lease unrenewed this long"),
            ("renew-deadline", "10s", "the leader gives up (and exits) when it cannot renew "
                                      "for this long"),
            ("retry-period", "2s", "how often candidates try and the leader renews")):
        p.add_argument(f"--leader-elect-{flag}", type=_duration, default=_duration(default),
                       metavar="DURATION", help=f"{meaning} (default {default})")
    p.add_argument("--leader-elect-resource-name", default=resource_name, metavar="NAME",
                   help=f"the Lease (default {resource_name})")
    p.add_argument("--leader-elect-resource-namespace", default="kube-system", metavar="NS",
                   help="the Lease's namespace (default kube-system)")


def leader_election_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """LeaderElectionConfig's keyword arguments from parsed flags; None when off."""
    if not args.leader_elect:
        return None
    return {"resource_name": args.leader_elect_resource_name,
            "resource_namespace": args.leader_elect_resource_namespace,
            "lease_duration": args.leader_elect_lease_duration,
            "renew_deadline": args.leader_elect_renew_deadline,
            "retry_period": args.leader_elect_retry_period}
