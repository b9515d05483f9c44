"""The scheduler's configuration: one frozen value built by the CLI (or a test)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kemu.client.leaderelection import LeaderElectionConfig


def check_host_port(text: str, what: str) -> None:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"{what}: expected HOST:PORT, got {text!r}")


@dataclass(frozen=True)
class SchedulerConfig:
    """How to run the scheduler.

    percentage_of_nodes_to_score: None (or 0) for kube-scheduler's adaptive default
    (every node below 100 nodes); 1-100 to cap how many feasible nodes a cycle looks for.
    health_listen: HOST:PORT for grpc.health.v1 (SERVING once the caches are filled), or
    None for no server. seed: a fixed seed makes tie-breaking reproducible.
    leader_election: schedule only while holding that Lease (the CLI's default, as
    kube-scheduler's --leader-elect); None schedules at once, alone.
    """

    apiserver: str = "127.0.0.1:6443"
    scheduler_name: str = "default-scheduler"
    percentage_of_nodes_to_score: int | None = None
    health_listen: str | None = None
    bind_concurrency: int = 64
    pod_initial_backoff_seconds: float = 1.0
    pod_max_backoff_seconds: float = 10.0
    unschedulable_retry_seconds: float = 30.0
    seed: int | None = None
    leader_election: LeaderElectionConfig | None = None
    metrics_listen: str | None = None  # Prometheus /metrics over HTTP; None: off

    def __post_init__(self) -> None:
        check_host_port(self.apiserver, "--apiserver")
        if self.health_listen is not None:
            check_host_port(self.health_listen, "--health-listen")
        if not self.scheduler_name:
            raise ValueError("--scheduler-name must not be empty")
        pct = self.percentage_of_nodes_to_score
        if pct is not None and not 0 <= pct <= 100:
            raise ValueError(f"--percentage-of-nodes-to-score must be within 0-100, got {pct}")
        if self.bind_concurrency < 1:
            raise ValueError("--bind-concurrency must be at least 1")
        if not 0 < self.pod_initial_backoff_seconds <= self.pod_max_backoff_seconds:
            raise ValueError("back-off: need 0 < initial <= max")
        if self.unschedulable_retry_seconds <= 0:
            raise ValueError("--unschedulable-retry-seconds must be positive")
