"""`kemuctl top pods|nodes`: resource usage from the apiserver's Metrics service, as
`kubectl top` reads metrics-server.

The columns and number forms are kubectl's, so eyes and scripts used to it keep working:
cpu in millicores rounded up (`3m`), memory in whole mebibytes (`12Mi`), and for nodes the
share of allocatable (`CPU%`, `MEMORY%`); a node whose agent did not answer shows
`<unknown>`. Pods that exist but have no sample yet make the error kubectl gives, rather
than an empty table that would read as "idle".
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import grpc

from kemu.api import kinds, quantity
from kemu.api.v1 import metrics_pb2, metrics_pb2_grpc
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl import tabwriter
from kemu.cli.ctl.age import since
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError
from kemu.client.errors import NotFound, from_rpc_error

UNKNOWN = "<unknown>"
POD_HEADERS = ("NAME", "CPU(cores)", "MEMORY(bytes)")
CONTAINER_HEADERS = ("POD", "NAME", "CPU(cores)", "MEMORY(bytes)")
NODE_HEADERS = ("NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%")
MIB = 1024 * 1024


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("resources", nargs="*", metavar="pods|nodes [NAME]",
                   help="what to show: pods (po, pod) or nodes (no, node), and one name")
    p.add_argument("-l", "--selector", default="", help="label selector, e.g. app=web")
    p.add_argument("--field-selector", default="", help="field selector (pods only)")
    cli.add_all_namespaces(p)
    p.add_argument("--containers", action="store_true",
                   help="pods: one line per container")
    p.add_argument("--sort-by", default="", choices=("", "cpu", "memory"),
                   help="sort by cpu or memory usage, highest first")
    p.add_argument("--no-headers", action="store_true", help="print no header line")


# ---- number forms -----------------------------------------------------------------------

def _milli(text: str) -> int:
    """A quantity in thousandths, rounded up (Quantity.MilliValue)."""
    return int((quantity.parse(text) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def cpu_cell(text: str) -> str:
    """`12345678n` as `13m`."""
    return f"{_milli(text)}m"


def memory_cell(text: str) -> str:
    """`12288Ki` as `12Mi` (whole mebibytes, rounded down)."""
    return f"{quantity.to_bytes(text) // MIB}Mi"


def percent_cell(used: str, available: str) -> str:
    """Usage as a share of allocatable, truncated: `37%`."""
    total = _milli(available)
    if total <= 0:
        return UNKNOWN
    return f"{int(_milli(used) / total * 100)}%"


def _sum(texts: Iterable[str]) -> str:
    return str(sum((quantity.parse(t) for t in texts), Decimal(0)))


def pod_usage(pod: metrics_pb2.PodMetrics) -> dict[str, str]:
    """A pod's usage summed over its containers, as quantities."""
    return {r: _sum(c.usage.get(r, "0") for c in pod.containers) for r in ("cpu", "memory")}


def _sorted(items: Sequence[Any], usage: Callable[[Any], Mapping[str, str]], by: str
            ) -> list[Any]:
    if not by:
        return list(items)
    return sorted(items, key=lambda i: quantity.parse(usage(i).get(by, "0")), reverse=True)


def pod_rows(pods: Sequence[metrics_pb2.PodMetrics], *, all_namespaces: bool,
             containers: bool, sort_by: str = "") -> list[list[str]]:
    """The table of `top pods`, header first."""
    head = list(CONTAINER_HEADERS if containers else POD_HEADERS)
    rows = [["NAMESPACE", *head] if all_namespaces else head]
    for pod in _sorted(pods, pod_usage, sort_by):
        prefix = [pod.metadata.namespace] if all_namespaces else []
        if containers:
            for c in pod.containers:
                rows.append([*prefix, pod.metadata.name, c.name,
                             cpu_cell(c.usage.get("cpu", "0")),
                             memory_cell(c.usage.get("memory", "0"))])
            continue
        total = pod_usage(pod)
        rows.append([*prefix, pod.metadata.name, cpu_cell(total["cpu"]),
                     memory_cell(total["memory"])])
    return rows


def node_rows(nodes: Sequence[Any], metrics: Mapping[str, metrics_pb2.NodeMetrics], *,
              sort_by: str = "") -> list[list[str]]:
    """The table of `top nodes`, header first; `nodes` are core Node messages."""
    rows = [list(NODE_HEADERS)]
    with_metrics = [n for n in nodes if n.metadata.name in metrics]

    def usage(n: Any) -> Mapping[str, str]:
        return metrics[n.metadata.name].usage
    for node in _sorted(with_metrics, usage, sort_by):
        used = usage(node)
        allocatable = node.status.allocatable or node.status.capacity
        cpu, memory = used.get("cpu", "0"), used.get("memory", "0")
        rows.append([node.metadata.name, cpu_cell(cpu),
                     percent_cell(cpu, allocatable.get("cpu", "0")), memory_cell(memory),
                     percent_cell(memory, allocatable.get("memory", "0"))])
    for node in nodes:
        if node.metadata.name not in metrics:
            rows.append([node.metadata.name, *[UNKNOWN] * (len(NODE_HEADERS) - 1)])
    return rows


# ---- the verb ---------------------------------------------------------------------------

def _print(ctx: Ctx, rows: list[list[str]], no_headers: bool) -> None:
    body = rows[1:] if no_headers else rows
    if body:
        ctx.write(tabwriter.format_text("".join("\t".join(r) + "\n" for r in body),
                                        minwidth=tabwriter.GET[0], padding=tabwriter.GET[1]))


def _call(ctx: Ctx, method: Callable[..., Any], request: Any) -> Any:
    try:
        # The token (if any) rides on the same metadata as the client's own calls.
        return method(request, timeout=ctx.timeout, metadata=ctx.client.metadata)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNIMPLEMENTED:  # type: ignore[attr-defined]
            raise CtlError("Metrics API not available") from None
        raise from_rpc_error(e, ctx.server) from None


def _target(resources: Sequence[str]) -> tuple[str, str]:
    if not resources:
        raise CtlError("you must specify the type of resource to show: pods or nodes")
    if len(resources) > 2:
        raise CtlError("top takes one resource type and at most one name")
    kind = kinds.resolve(resources[0])
    if kind.plural not in ("pods", "nodes"):
        raise CtlError(f'unknown resource type "{resources[0]}": top shows pods or nodes')
    return kind.plural, resources[1] if len(resources) == 2 else ""


def run(ctx: Ctx, args: Any) -> int:
    resource, name = _target(args.resources)
    # The client's own connection: its TLS and client certificate serve this stub too.
    stub = metrics_pb2_grpc.MetricsStub(ctx.client.channel)
    if resource == "pods":
        return _top_pods(ctx, stub, args, name)
    return _top_nodes(ctx, stub, args, name)


def _top_pods(ctx: Ctx, stub: metrics_pb2_grpc.MetricsStub, args: Any, name: str) -> int:
    namespace = "" if args.all_namespaces else ctx.namespace
    fields = ",".join(f for f in (f"metadata.name={name}" if name else "",
                                  args.field_selector) if f)
    resp = _call(ctx, stub.ListPodMetrics, metrics_pb2.ListPodMetricsRequest(
        namespace=namespace, label_selector=args.selector, field_selector=fields))
    if not resp.items:
        pods = ctx.client.list("pods", namespace, label_selector=args.selector,
                               field_selector=fields).items
        if name and not pods:
            raise NotFound(f'podmetrics.metrics.k8s.io "{ctx.namespace}/{name}" not found')
        if name:
            raise CtlError(f"Metrics not available for pod {ctx.namespace}/{name}, age: "
                           f"{since(pods[0].pod.metadata.creation_timestamp, ctx.now())}")
        if pods:
            raise CtlError("metrics not available yet")
        ctx.error("No resources found" if args.all_namespaces else
                  f"No resources found in {ctx.namespace} namespace.")
        return 0
    _print(ctx, pod_rows(list(resp.items), all_namespaces=args.all_namespaces,
                         containers=args.containers, sort_by=args.sort_by), args.no_headers)
    return 0


def _top_nodes(ctx: Ctx, stub: metrics_pb2_grpc.MetricsStub, args: Any, name: str) -> int:
    fields = f"metadata.name={name}" if name else ""
    nodes = [o.node for o in ctx.client.list("nodes", label_selector=args.selector,
                                             field_selector=fields).items]
    if name and not nodes:
        raise NotFound(f'nodemetrics.metrics.k8s.io "{name}" not found')
    resp = _call(ctx, stub.ListNodeMetrics, metrics_pb2.ListNodeMetricsRequest(
        label_selector=args.selector, field_selector=fields))
    metrics = {m.metadata.name: m for m in resp.items}
    if not nodes:
        ctx.error("No resources found")
        return 0
    if name and name not in metrics:
        raise CtlError(f"Metrics not available for node {name}")
    _print(ctx, node_rows(nodes, metrics, sort_by=args.sort_by), args.no_headers)
    return 0
