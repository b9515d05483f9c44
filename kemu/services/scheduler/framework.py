"""The scheduling framework: plugin protocols, statuses, and one scheduling cycle.

Modelled on kube-scheduler's framework: a pod goes through PreFilter, Filter (per node,
stopping at the first plugin that rejects it), PreScore, Score and NormalizeScore, and the
best-scoring node wins, ties broken at random. Each plugin lives in its own module under
`plugins/` with a `NAME`; the registry there maps names to factories, and a profile lists
which filters run (in order) and the weight of each score. Per-cycle precomputed state is a
plain dict (`CycleState`) keyed by plugin name.

"The pod does not fit this node" (`Unschedulable`, whose reasons end up counted in the
FailedScheduling message) is an ordinary outcome and is kept apart from "something broke"
(`Error`, or an exception in a plugin), which aborts the cycle and is retried with back-off.

A cycle is synchronous and reads only the scheduler's cache, so it needs no locking in the
asyncio loop and costs O(nodes) plugin calls per pod.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol, runtime_checkable

from kemu.services.scheduler.nodeinfo import NodeInfo, PodInfo

MAX_NODE_SCORE = 100
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
NO_NODES_AVAILABLE = "no nodes available to schedule pods"

CycleState = dict[str, Any]
"""State computed once per cycle (PreFilter/PreScore) and read per node; keyed by plugin."""


class Status:
    """A plugin's verdict. This base class means success; see Unschedulable and Error."""

    __slots__ = ("reasons",)
    code = "Success"
    ok = True

    def __init__(self, *reasons: str) -> None:
        self.reasons: tuple[str, ...] = reasons

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.reasons == self.reasons  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.reasons))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.reasons))})"


class Unschedulable(Status):
    """The pod does not fit the node (or any node); the reasons are user-facing."""

    __slots__ = ()
    code = "Unschedulable"
    ok = False


class Error(Status):
    """The plugin could not decide (bad input, a bug); the cycle is aborted and retried."""

    __slots__ = ()
    code = "Error"
    ok = False


class Skip(Status):
    """From PreFilter/PreScore: this plugin has nothing to check for this pod (no host
    ports, no node selector...), so its Filter/Score is not called this cycle."""

    __slots__ = ()
    code = "Skip"


SUCCESS = Status()
SKIP = Skip()


@runtime_checkable
class Plugin(Protocol):
    """Every plugin has the NAME of its module."""

    name: str


@runtime_checkable
class PreFilterPlugin(Plugin, Protocol):
    """Runs once per cycle before the filters, e.g. to parse the pod's selectors."""

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status: ...


@runtime_checkable
class FilterPlugin(Plugin, Protocol):
    """Says whether the pod can run on one node."""

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status: ...


@runtime_checkable
class PreScorePlugin(Plugin, Protocol):
    """Runs once per cycle, over the feasible nodes, before scoring."""

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status:
        ...


@runtime_checkable
class ScorePlugin(Plugin, Protocol):
    """Ranks one feasible node; raw scores may be any int if the plugin normalizes."""

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int: ...


@runtime_checkable
class BatchScorePlugin(ScorePlugin, Protocol):
    """A score plugin that can also rank all feasible nodes in one call, returning the
    same scores as `score` node by node (one Python call per cycle instead of per node)."""

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]
                    ) -> list[int]: ...


@runtime_checkable
class NormalizeScorePlugin(Plugin, Protocol):
    """Rescales a score plugin's raw scores (in place) to 0..MAX_NODE_SCORE."""

    def normalize_scores(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None: ...


PluginFactory = Callable[[], Plugin]
Registry = dict[str, PluginFactory]
"""Plugin name -> factory: the plain dict that wires plugins (see plugins/__init__.py)."""


@dataclass(frozen=True)
class Profile:
    """Which plugins run: filters in order, scores with their weights."""

    filters: tuple[str, ...]
    scores: tuple[tuple[str, int], ...]


class SchedulingError(Exception):
    """A plugin failed (not "the pod does not fit"); the pod is retried with back-off."""


class FitError(Exception):
    """No node fits the pod; `statuses` holds each rejected node's first failing status."""

    def __init__(self, num_all_nodes: int, statuses: Mapping[str, Status], *,
                 pre_filter_message: str = "") -> None:
        self.num_all_nodes = num_all_nodes
        self.statuses = dict(statuses)
        self.pre_filter_message = pre_filter_message
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if self.num_all_nodes == 0:
            return NO_NODES_AVAILABLE
        return fit_error_message(self.num_all_nodes,
                                 (s.reasons for s in self.statuses.values()),
                                 pre_filter_message=self.pre_filter_message)


def fit_error_message(num_all_nodes: int, reasons_per_node: Iterable[Sequence[str]], *,
                      pre_filter_message: str = "") -> str:
    """kube-scheduler's FitError text: `0/3 nodes are available: 1 node(s) didn't match
    Pod's node affinity/selector, 2 Insufficient cpu.`

    Each reason is counted over the nodes, printed as "<count> <reason>", and the strings
    are sorted as Go's sort.Strings sorts them (byte order, so "10 x" sorts before "2 y",
    exactly as kube-scheduler prints it). A PreFilter rejection replaces the histogram.
    kube-scheduler appends a "preemption: ..." sentence; kemu does not preempt, so it
    has none.
    """
    msg = f"0/{num_all_nodes} nodes are available:"
    if pre_filter_message:
        return f"{msg} {pre_filter_message}."
    histogram: Counter[str] = Counter()
    for reasons in reasons_per_node:
        histogram.update(reasons)
    parts = sorted(f"{count} {reason}" for reason, count in histogram.items())
    if parts:
        msg += f" {', '.join(parts)}."
    return msg


def num_feasible_nodes_to_find(num_all_nodes: int, percentage: int | None) -> int:
    """How many feasible nodes a cycle looks for before it stops filtering.

    kube-scheduler's adaptive rule: every node below 100 nodes; otherwise the configured
    percentage, or 50% minus 1% per 125 nodes (at least 5%), and never fewer than 100.
    """
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_all_nodes
    pct = percentage or 0
    if pct >= 100:
        return num_all_nodes
    if pct <= 0:
        pct = max(50 - num_all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    return max(num_all_nodes * pct // 100, MIN_FEASIBLE_NODES_TO_FIND)


def default_normalize_score(scores: list[int], *, reverse: bool = False,
                            max_priority: int = MAX_NODE_SCORE) -> None:
    """Scale scores (in place) so the largest becomes max_priority; `reverse` makes the
    largest raw score the worst (kube-scheduler's helper.DefaultNormalizeScore)."""
    highest = max(scores, default=0)
    if highest == 0:
        if reverse:
            scores[:] = [max_priority] * len(scores)
        return
    for i, s in enumerate(scores):
        s = max_priority * s // highest
        scores[i] = max_priority - s if reverse else s


def select_host(names: Sequence[str], totals: Sequence[int], rng: random.Random) -> str:
    """The name with the highest total; ties broken uniformly at random."""
    best = max(totals)
    winners = [n for n, t in zip(names, totals, strict=True) if t == best]
    return winners[0] if len(winners) == 1 else rng.choice(winners)


@dataclass(frozen=True, slots=True)
class ScheduleResult:
    """Where the pod goes, and how much of the cluster the cycle looked at."""

    node: str
    evaluated: int
    feasible: int


class Framework:
    """One profile's plugins, run over a pod and a snapshot of nodes."""

    def __init__(self, filters: Sequence[FilterPlugin],
                 scores: Sequence[tuple[ScorePlugin, int]] = (), *,
                 percentage_of_nodes_to_score: int | None = None,
                 rng: random.Random | None = None) -> None:
        self.filters = list(filters)
        self.pre_filters = [p for p in self.filters if isinstance(p, PreFilterPlugin)]
        self.scores = [(p, w) for p, w in scores if w > 0]
        self.pre_scores = [p for p, _ in self.scores if isinstance(p, PreScorePlugin)]
        # Protocol isinstance checks are slow: decide once which plugins normalize.
        self.scores_run = [(p, w, isinstance(p, NormalizeScorePlugin),
                            p.score_nodes if isinstance(p, BatchScorePlugin) else None)
                           for p, w in self.scores]
        self.percentage = percentage_of_nodes_to_score
        self.rng = rng or random.Random()
        self._next_start = 0

    @classmethod
    def from_profile(cls, registry: Registry, profile: Profile, *,
                     percentage_of_nodes_to_score: int | None = None,
                     rng: random.Random | None = None) -> Framework:
        """Instantiate the profile's plugins (one instance per name) from the registry."""
        names = list(dict.fromkeys([*profile.filters, *(n for n, _ in profile.scores)]))
        unknown = [n for n in names if n not in registry]
        if unknown:
            raise ValueError(f"unknown scheduler plugin(s): {', '.join(unknown)}")
        plugins = {n: registry[n]() for n in names}
        filters: list[FilterPlugin] = []
        for n in profile.filters:
            p = plugins[n]
            if not isinstance(p, FilterPlugin):
                raise ValueError(f"plugin {n} has no filter")
            filters.append(p)
        scores: list[tuple[ScorePlugin, int]] = []
        for n, weight in profile.scores:
            p = plugins[n]
            if not isinstance(p, ScorePlugin):
                raise ValueError(f"plugin {n} has no score")
            scores.append((p, weight))
        return cls(filters, scores, percentage_of_nodes_to_score=percentage_of_nodes_to_score,
                   rng=rng)

    def schedule(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> ScheduleResult:
        """Pick a node for the pod; raises FitError or SchedulingError."""
        total = len(nodes)
        if total == 0:
            raise FitError(0, {})
        state: CycleState = {}
        try:
            skipped: set[str] = set()
            for pre in self.pre_filters:
                status = pre.pre_filter(state, pod)
                if isinstance(status, Error):
                    raise SchedulingError(f"{pre.name}: {status.message}")
                if not status.ok:
                    raise FitError(total, {n.name: status for n in nodes},
                                   pre_filter_message=status.message)
                if isinstance(status, Skip):
                    skipped.add(pre.name)
            filters = ([f for f in self.filters if f.name not in skipped] if skipped
                       else self.filters)
            feasible, statuses, processed = self._find_feasible(state, pod, nodes, filters)
        except (FitError, SchedulingError):
            raise
        except Exception as e:
            raise SchedulingError(f"filtering: {type(e).__name__}: {e}") from e
        self._next_start = (self._next_start + processed) % total
        if not feasible:
            raise FitError(total, statuses)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, processed, 1)
        totals = self._score(state, pod, feasible)
        node = select_host([n.name for n in feasible], totals, self.rng)
        return ScheduleResult(node, processed, len(feasible))

    def _find_feasible(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo],
                       filters: Sequence[FilterPlugin]
                       ) -> tuple[list[NodeInfo], dict[str, Status], int]:
        total = len(nodes)
        want = num_feasible_nodes_to_find(total, self.percentage)
        start = self._next_start % total
        feasible: list[NodeInfo] = []
        statuses: dict[str, Status] = {}
        processed = 0
        checks = [(plugin, plugin.filter) for plugin in filters]  # bound once per cycle
        # Nodes from `start` round to just before it, without index arithmetic per node.
        for node in itertools.chain(islice(nodes, start, None), islice(nodes, start)):
            processed += 1
            for plugin, check in checks:
                status = check(state, pod, node)
                if status is not SUCCESS and not status.ok:
                    if isinstance(status, Error):
                        raise SchedulingError(
                            f"{plugin.name} on node {node.name}: {status.message}")
                    statuses[node.name] = status
                    break
            else:
                feasible.append(node)
                if len(feasible) >= want:
                    break
        return feasible, statuses, processed

    def _score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        totals = [0] * len(nodes)
        first = True
        try:
            skipped: set[str] = set()
            for pre in self.pre_scores:
                status = pre.pre_score(state, pod, nodes)
                if not status.ok:
                    raise SchedulingError(f"{pre.name} prescore: {status.message}")
                if isinstance(status, Skip):
                    skipped.add(pre.name)
            for plugin, weight, normalizes, score_nodes in self.scores_run:
                if plugin.name in skipped:
                    continue  # the same score for every node: it cannot change the pick
                if score_nodes is not None:
                    scores = score_nodes(state, pod, nodes)
                else:
                    score = plugin.score
                    scores = [score(state, pod, n) for n in nodes]
                if normalizes:
                    plugin.normalize_scores(state, pod, scores)  # type: ignore[attr-defined]
                if min(scores) < 0 or max(scores) > MAX_NODE_SCORE:
                    i, s = next((i, s) for i, s in enumerate(scores)
                                if not 0 <= s <= MAX_NODE_SCORE)
                    raise SchedulingError(
                        f"{plugin.name} scored node {nodes[i].name} {s}, outside "
                        f"[0, {MAX_NODE_SCORE}]")
                if len(scores) != len(nodes):
                    raise SchedulingError(f"{plugin.name} scored {len(scores)} of "
                                          f"{len(nodes)} nodes")
                totals = ([s * weight for s in scores] if first else
                          [t + s * weight for t, s in zip(totals, scores, strict=True)])
                first = False
        except SchedulingError:
            raise
        except Exception as e:
            raise SchedulingError(f"scoring: {type(e).__name__}: {e}") from e
        return totals
