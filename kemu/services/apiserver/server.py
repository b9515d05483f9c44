"""Wiring of the apiserver: config, bootstrap, the gRPC server, health and reflection.

`run(config)` is what `kemu apiserver` calls. The server listens at once and reports
NOT_SERVING on grpc.health.v1 until it has reached the store, created the built-in
namespaces and filled every watch cache; then SERVING.

Load is bounded three ways: gRPC refuses a request message over `max_request_bytes` with
its own RESOURCE_EXHAUSTED (as etcd's and Kubernetes' 3 MB object limit), and the limits
interceptor (limits.py) rate-limits each client and caps its open watches. On SIGTERM the
server drains: it stops taking calls, lets unary calls finish, ends every watch with
UNAVAILABLE so clients resume elsewhere or later, and exits within `shutdown_grace`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import signal
import time
from dataclasses import dataclass, field, replace

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from kemu.api import kinds, objects
from kemu.api.v1 import api_pb2, api_pb2_grpc, metrics_pb2, metrics_pb2_grpc
from kemu.services.apiserver import allocators, bootstrappolicy
from kemu.services.apiserver.auth import Authenticator, AuthInterceptor, Tokens
from kemu.services.apiserver.authorizer import Authorization, CacheView
from kemu.services.apiserver.cacher import Cacher, cache_metrics
from kemu.services.apiserver.encryption import EncryptionConfig
from kemu.services.apiserver.errors import AlreadyExists, NotFound
from kemu.services.apiserver.impersonation import ImpersonationInterceptor
from kemu.services.apiserver.limits import Limits, LimitsInterceptor
from kemu.services.apiserver.metrics import MetricsServicer
from kemu.services.apiserver.registry import Registry
from kemu.services.apiserver.requestlog import RequestLog
from kemu.services.apiserver.requestmetrics import RequestMetrics
from kemu.services.apiserver.service import DiscoveryServicer, ResourcesServicer
from kemu.services.apiserver.storage import Storage
from kemu.util.grpcdecode import DecodeErrorInterceptor
from kemu.util.grpcopts import KEEPALIVE_SERVER_OPTIONS
from kemu.util.metrics import (
    CallbackCollector,
    GrpcServerMetrics,
    MetricsEndpoint,
    maybe_serve_metrics,
    new_registry,
)
from kemu.util.tls import ClientTLS, ServerTLS, add_port

log = logging.getLogger("kemu.apiserver")
GC_GEN0_THRESHOLD = 10_000  # objects; Python's default is 700
DRAIN_WINDOW = 0.5  # seconds new calls are refused with UNAVAILABLE before the listener closes
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_MAX_MESSAGE = 64 * 1024 * 1024  # what the apiserver may send (a large list)
MAX_REQUEST_BYTES = 3 * 1024 * 1024


@dataclass(frozen=True)
class APIServerConfig:
    """How to run the apiserver."""

    listen: str = "127.0.0.1:6443"
    # More addresses to serve on, with listen's port or their own: loopback for the host's
    # clients plus the address pods reach (`--listen` given twice).
    also_listen: tuple[str, ...] = ()
    store: tuple[str, ...] = ("127.0.0.1:2379",)
    service_cidr: str = "10.96.0.0/12"
    node_port_range: tuple[int, int] = (30000, 32767)
    watch_cache_size: int = 5000
    bookmark_interval: float = 10.0
    store_kind: str = "etcd-v3"
    # Where pods reach this apiserver (the Endpoints of the `kubernetes` Service); empty
    # leaves that Service without endpoints, as an apiserver only reachable on loopback.
    advertise_address: str = ""
    # Bearer tokens and whom they authenticate (`--token-file`; a bare set of tokens means
    # the user admin in system:masters). With `tls.client_ca_file`, client certificates
    # authenticate too (see auth.py); with neither, no authentication.
    tokens: Tokens | frozenset[str] = frozenset()
    # Serve TLS (`--tls-cert-file --tls-private-key-file [--client-ca-file]`); None:
    # plaintext, which `--insecure` must ask for.
    tls: ServerTLS | None = None
    # Dial the store over TLS (`--etcd-cafile --etcd-certfile --etcd-keyfile`).
    etcd_tls: ClientTLS | None = None
    # Dial node agents over TLS (`--kubelet-certificate-authority
    # --kubelet-client-certificate --kubelet-client-key`).
    kubelet_tls: ClientTLS | None = None
    # Which resources are encrypted in the store, and with which keys
    # (`--encryption-provider-config`); None: every value stored as it is.
    encryption: EncryptionConfig | None = None
    # Authorizers in order (`--authorization-mode`): AlwaysAllow, RBAC, Node. With RBAC the
    # default roles and bindings are created at start (bootstrappolicy.py).
    authorization_modes: tuple[str, ...] = ("AlwaysAllow",)
    # The largest request message gRPC accepts (`--max-request-bytes`).
    max_request_bytes: int = MAX_REQUEST_BYTES
    # Requests a second and open watches per client (`--max-requests-per-second`,
    # `--burst`, `--max-watches-per-client`; 0 turns one off).
    limits: Limits = field(default_factory=Limits)
    # Seconds a SIGTERM gives open calls to finish before they are cancelled.
    shutdown_grace: float = 5.0
    # Serve Prometheus metrics over HTTP here (`--metrics-listen`); None: off.
    metrics_listen: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


class APIServer:
    """A running apiserver (in-process handle used by `run` and by tests)."""

    def __init__(self, config: APIServerConfig) -> None:
        self.config = config
        self.storage = Storage(config.store, encryption=config.encryption,
                               tls=config.etcd_tls)
        net = ipaddress.IPv4Network(config.service_cidr)
        self.ranges = allocators.Ranges(net, *config.node_port_range)
        self.caches = {k.plural: Cacher(k, self.storage, capacity=config.watch_cache_size)
                       for k in kinds.KINDS}
        ns_cache, ns_kind = self.caches["namespaces"], kinds.resolve("namespaces")
        self.registry = Registry(
            self.storage, ranges=self.ranges,
            cached_namespace=lambda name: ns_cache.current.get(ns_kind.store_key("", name)),
            cached_object=lambda kind, key: self.caches[kind.plural].current.get(key))
        self.authorization = Authorization(config.authorization_modes, CacheView(self.caches))
        self.health = health.aio.HealthServicer() if hasattr(health, "aio") else \
            health.HealthServicer()
        self.metrics_registry = new_registry()
        self.metrics_registry.register(CallbackCollector(
            lambda: cache_metrics(self.caches.values())))
        self.metrics: MetricsEndpoint | None = None
        # Every call counted and, at -v 3, logged, refused ones too; a request that does not
        # decode is INVALID_ARGUMENT (grpc.aio says UNKNOWN); then authentication: a call
        # without a valid token costs its client nothing.
        interceptors: list[grpc.aio.ServerInterceptor] = [
            GrpcServerMetrics(self.metrics_registry), RequestLog(), DecodeErrorInterceptor()]
        self.tls = config.tls
        if config.tls is not None and config.tls.requires_client_cert and config.tokens:
            # gRPC cannot make client certificates optional: tokens win (see auth.py).
            log.warning("--client-ca-file with --token-file: client certificates are not "
                        "asked for; callers authenticate with bearer tokens")
            self.tls = replace(config.tls, client_ca_file=None)
        certificates = self.tls is not None and self.tls.requires_client_cert
        if config.tokens or certificates:
            interceptors.append(AuthInterceptor(Authenticator(
                config.tokens, client_certificates=certificates)))
        # kubectl's --as: after authentication, which found the caller who asks.
        interceptors.append(ImpersonationInterceptor(self.authorization))
        self.limits = LimitsInterceptor(config.limits)
        interceptors.append(self.limits)
        self.server = grpc.aio.server(interceptors=interceptors, options=[
            ("grpc.max_receive_message_length", config.max_request_bytes),
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            ("grpc.so_reuseport", 0),
            *KEEPALIVE_SERVER_OPTIONS,
        ])
        self.port = 0
        self._bootstrap: asyncio.Task[None] | None = None

    async def start(self) -> None:
        resources = ResourcesServicer(self.registry, self.caches,
                                      bookmark_interval=self.config.bookmark_interval,
                                      authorization=self.authorization,
                                      request_metrics=RequestMetrics(self.metrics_registry))
        resources.proxy.tls = self.config.kubelet_tls
        api_pb2_grpc.add_ResourcesServicer_to_server(resources, self.server)
        metrics_pb2_grpc.add_MetricsServicer_to_server(
            MetricsServicer(self.registry, resources.proxy, authorization=self.authorization),
            self.server)
        api_pb2_grpc.add_DiscoveryServicer_to_server(DiscoveryServicer(self.config.store_kind),
                                                     self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = (api_pb2.DESCRIPTOR.services_by_name["Resources"].full_name,
                 api_pb2.DESCRIPTOR.services_by_name["Discovery"].full_name,
                 metrics_pb2.DESCRIPTOR.services_by_name["Metrics"].full_name,
                 health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                 reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, self.server)
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        for i, address in enumerate((self.config.listen, *self.config.also_listen)):
            try:
                port = add_port(self.server, address, self.tls)
            except RuntimeError as e:  # grpc's "Failed to bind to address"
                raise OSError(f"cannot listen on {address}: address in use or "
                              "not available") from e
            if port == 0:
                raise OSError(f"cannot listen on {address}")
            if i == 0:
                self.port = port
        self.metrics = await maybe_serve_metrics(self.config.metrics_listen,
                                                 self.metrics_registry)
        await self.server.start()
        self._bootstrap = asyncio.create_task(self._bootstrap_loop())

    async def _set_health(self, status: int) -> None:
        for service in ("", "kemu.v1.Resources"):
            result = self.health.set(service, status)
            if asyncio.iscoroutine(result):
                await result

    async def _bootstrap_loop(self) -> None:
        delay = 0.2
        while True:
            try:
                await self.storage.current_revision()
                await self._ensure_builtins()
                break
            except Exception as e:
                log.warning("waiting for the store at %s: %s", ",".join(self.config.store), e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        for cache in self.caches.values():
            cache.start()
        await asyncio.gather(*(c.ready.wait() for c in self.caches.values()))
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("apiserver ready on %s (store %s)", self.config.listen,
                 ",".join(self.config.store))

    async def _ensure_builtins(self) -> None:
        for name in BUILTIN_NAMESPACES:
            ns = api_pb2.Object()
            ns.namespace.metadata.name = name
            with contextlib.suppress(AlreadyExists):
                await self.registry.create(ns)
        svc = api_pb2.Object()
        s = svc.service
        s.metadata.name, s.metadata.namespace = "kubernetes", "default"
        s.metadata.labels.update({"component": "apiserver", "provider": "kubernetes"})
        s.spec.cluster_ip = str(self.ranges.service_cidr.network_address + 1)
        port = s.spec.ports.add(name="https", port=443, protocol="TCP")
        port.target_port.number_value = int(self.config.listen.rsplit(":", 1)[1] or 6443)
        with contextlib.suppress(AlreadyExists):
            await self.registry.create(svc)
        if self.config.advertise_address:
            await self._reconcile_master_endpoints(port.target_port.number_value)
        if "RBAC" in self.config.authorization_modes:
            await bootstrappolicy.ensure(self.registry)
        log.debug("built-in objects present: %s", objects.ref(svc))

    async def _reconcile_master_endpoints(self, port: float) -> None:
        """The `kubernetes` Endpoints: this apiserver's advertised address and port, as
        Kubernetes' master endpoint reconciler writes them (one apiserver: it replaces)."""
        want = api_pb2.Object()
        ep = want.endpoints
        ep.metadata.name, ep.metadata.namespace = "kubernetes", "default"
        subset = ep.subsets.add()
        subset.addresses.add(ip=self.config.advertise_address)
        subset.ports.add(name="https", port=int(port), protocol="TCP")
        kind = kinds.resolve("endpoints")
        try:
            have = await self.registry.get(kind, "default", "kubernetes")
        except NotFound:
            with contextlib.suppress(AlreadyExists):
                await self.registry.create(want)
            return
        if list(have.endpoints.subsets) != list(ep.subsets):
            have.endpoints.ClearField("subsets")
            have.endpoints.subsets.extend(ep.subsets)
            await self.registry.update(have)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        assert self._bootstrap is not None
        await asyncio.wait_for(asyncio.shield(self._bootstrap), timeout)

    async def stop(self, grace: float | None = None) -> None:
        """Drain: refuse new calls, end every watch with UNAVAILABLE, give unary calls
        until `grace` (default the config's shutdown_grace) to finish, then cancel the
        rest and close the store connection."""
        grace = self.config.shutdown_grace if grace is None else grace
        started = time.monotonic()
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        if self._bootstrap is not None:
            self._bootstrap.cancel()
        # Refuse new calls with UNAVAILABLE while still listening, for at least
        # DRAIN_WINDOW, so that a client's call racing the shutdown is refused by us (a code
        # it retries) and not cancelled by gRPC as the listener closes; end the watches;
        # let admitted calls finish; only then stop the server, cancelling what outlives
        # the grace (as kube-apiserver's --shutdown-delay-duration, in small).
        self.limits.drain()
        watches = sum(len(c.watchers) for c in self.caches.values())
        for cache in self.caches.values():
            await cache.stop()
        await self.limits.wait_idle(max(0.0, grace - (time.monotonic() - started)))
        window = min(DRAIN_WINDOW, grace / 2) - (time.monotonic() - started)
        if window > 0:
            await asyncio.sleep(window)
        await self.server.stop(max(0.0, grace - (time.monotonic() - started)))
        await self.storage.close()
        if self.metrics is not None:
            await self.metrics.stop()
        log.info("apiserver stopped in %.2fs (grace %.1fs, %d watches ended)",
                 time.monotonic() - started, grace, watches)


async def serve(config: APIServerConfig) -> APIServer:
    server = APIServer(config)
    await server.start()
    return server


def run(config: APIServerConfig) -> None:
    """Serve until SIGTERM or SIGINT, then drain and stop."""

    async def main() -> None:
        server = await serve(config)
        log.info("apiserver listening on %s", config.listen)
        # Start-up objects (modules, grpc) live for the whole run: frozen out of the
        # collector's view, and with a first generation of 10,000 objects the per-request
        # garbage (mostly acyclic) triggers far fewer collections (GC time in the scheduler
        # benchmark: 1.4 to 0.4 CPU s per 3,000 pods).
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_GEN0_THRESHOLD)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("apiserver shutting down")
        await server.stop()

    asyncio.run(main())
