"""Thin gRPC servicers: check the request's shape, authorize it, delegate to the registry,
translate errors through one table (kemu.services.apiserver.errors -> gRPC status code and
Kubernetes StatusReason, sent with the error's object and field violations as status details).

Authorization (authorizer.py) sees each RPC as the Kubernetes request it stands for:
Get/List/Watch are get/list/watch, Create create, Update update, UpdateStatus update of
`<resource>/status`, Delete delete, DeleteCollection deletecollection, Apply patch (create
when the object does not exist yet, as kubectl apply creates it), Bind create of
pods/binding, Scale update of `<resource>/scale`, Rollback create of deployments/rollback,
Logs get of pods/log, Exec create of pods/exec. AccessReview needs no permission to ask
about oneself; asking about another user needs the impersonate verb on that user and each
of the groups, as Kubernetes' impersonation (system:masters has it)."""

from __future__ import annotations

import contextlib
import logging
import platform
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

import kemu
from kemu.api import kinds, objects
from kemu.api.v1 import api_pb2, api_pb2_grpc, rbac_pb2
from kemu.services.apiserver import cacher as cache
from kemu.services.apiserver import errors, escalation, fields, identity, requestmetrics
from kemu.services.apiserver.authorizer import Attributes, Authorization, impersonate
from kemu.services.apiserver.proxy import AgentError, NodeAgentProxy
from kemu.services.apiserver.registry import Registry

log = logging.getLogger(__name__)
T = TypeVar("T")

# Each error's gRPC status code and Kubernetes StatusReason (ErrorInfo.reason).
STATUS: dict[type[Exception], tuple[grpc.StatusCode, str]] = {
    errors.NotFound: (grpc.StatusCode.NOT_FOUND, "NotFound"),
    errors.AlreadyExists: (grpc.StatusCode.ALREADY_EXISTS, "AlreadyExists"),
    errors.Conflict: (grpc.StatusCode.ABORTED, "Conflict"),
    errors.Invalid: (grpc.StatusCode.INVALID_ARGUMENT, "Invalid"),
    errors.BadRequest: (grpc.StatusCode.INVALID_ARGUMENT, "BadRequest"),
    errors.Gone: (grpc.StatusCode.OUT_OF_RANGE, "Gone"),
    errors.Unavailable: (grpc.StatusCode.UNAVAILABLE, "ServiceUnavailable"),
    errors.FailedPrecondition: (grpc.StatusCode.FAILED_PRECONDITION, "Forbidden"),
    errors.Forbidden: (grpc.StatusCode.PERMISSION_DENIED, "Forbidden"),
    errors.NotImplementedYet: (grpc.StatusCode.UNIMPLEMENTED, "MethodNotAllowed"),
    cache.Timeout: (grpc.StatusCode.DEADLINE_EXCEEDED, "Timeout"),
    cache.WatcherOverflow: (grpc.StatusCode.RESOURCE_EXHAUSTED, "TooManyRequests"),
    kinds.UnknownResourceError: (grpc.StatusCode.INVALID_ARGUMENT, "BadRequest"),
}
INTERNAL = (grpc.StatusCode.INTERNAL, "InternalError")

# The reason for a status that arrives as a bare code: a node agent's, passed on.
REASON_OF_CODE: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.INVALID_ARGUMENT: "BadRequest",
    grpc.StatusCode.PERMISSION_DENIED: "Forbidden",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthorized",
    **{code: reason for code, reason in STATUS.values()
       if code != grpc.StatusCode.INVALID_ARGUMENT},
}


def status_of(exc: Exception) -> tuple[grpc.StatusCode, str]:
    """`exc`'s status code and StatusReason, by the first of its classes in the table."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return INTERNAL


async def _translate(context: grpc.aio.ServicerContext, exc: Exception, method: str) -> None:
    if isinstance(exc, AgentError):  # a node agent's own status passes through unchanged
        await context.abort_with_status(errors.status(
            exc.code, str(exc), REASON_OF_CODE.get(exc.code, INTERNAL[1])))
    code, reason = status_of(exc)
    if code == grpc.StatusCode.INTERNAL:
        log.exception("%s failed", method)
        message = f"internal error: {exc}"
    else:
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    await context.abort_with_status(errors.status(
        code, message, reason, about=getattr(exc, "about", None),
        violations=exc.errors if isinstance(exc, errors.Invalid) else ()))


async def run_translated(context: grpc.aio.ServicerContext, method: str,
                         work: Callable[[], Awaitable[T]]) -> T:
    """Run one unary RPC's work; every error leaves through the table, timed in the log."""
    started = time.perf_counter()
    try:
        return await work()
    except grpc.aio.AbortError:
        raise
    except Exception as e:  # every error leaves through the table
        await _translate(context, e, method)
        raise  # unreachable: abort raises
    finally:
        log.debug("%s took %.1f ms", method, (time.perf_counter() - started) * 1000)


def _resolve(resource: str) -> kinds.Kind:
    if not resource:
        raise errors.BadRequest("resource is required")
    return kinds.resolve(resource)


def _object(obj: api_pb2.Object, request_field: str = "object") -> api_pb2.Object:
    if obj.WhichOneof("kind") is None:
        raise errors.BadRequest(f"{request_field} is required: set exactly one kind in it")
    return obj


class ResourcesServicer(api_pb2_grpc.ResourcesServicer):
    """kemu.v1.Resources."""

    def __init__(self, registry: Registry, caches: dict[str, cache.Cacher], *,
                 bookmark_interval: float = 10.0,
                 authorization: Authorization | None = None,
                 request_metrics: requestmetrics.RequestMetrics | None = None) -> None:
        self.registry = registry
        self.request_metrics = request_metrics
        self.proxy = NodeAgentProxy(registry)
        self.caches = caches
        self.bookmark_interval = bookmark_interval
        self.authorization = authorization

    def _authorize(self, verb: str, kind: kinds.Kind, namespace: str = "", name: str = "", *,
                   subresource: str = "", object_name: str = "",
                   collection: bool = False) -> None:
        """Raise Forbidden unless the caller may do `verb` on the kind (or subresource).
        A namespaced request for one object defaults to the namespace "default", as the
        registry does; a collection request without one spans every namespace."""
        requestmetrics.note(kind, subresource)
        if self.authorization is None or self.authorization.authorizer is None:
            return
        if not kind.namespaced:
            namespace = ""
        elif not collection:
            namespace = namespace or "default"
        self.authorization.check(Attributes(
            identity.current(), verb, kind.group, kind.plural, subresource, namespace, name,
            object_name))

    def _authorize_object(self, verb: str, obj: api_pb2.Object, *, subresource: str = "",
                          create: bool = False) -> None:
        """Authorize writing `obj`; for a role or binding, also that it grants no more than
        the caller holds (escalation.py)."""
        kind, meta = objects.kind_of(obj), objects.meta(obj)
        if create:
            self._authorize(verb, kind, meta.namespace, object_name=meta.name)
        else:
            self._authorize(verb, kind, meta.namespace, meta.name, subresource=subresource)
        if self.authorization is not None and self.authorization.authorizer is not None \
                and not subresource:
            escalation.check(self.authorization, identity.current(), obj)

    async def _run(self, context: grpc.aio.ServicerContext, method: str,
                   work: Callable[[], Awaitable[T]]) -> T:
        metrics = self.request_metrics
        if metrics is None:
            return await run_translated(context, method, work)
        started, code = time.perf_counter(), "500"

        async def counted() -> T:  # apiserver_request_total's HTTP code of the outcome
            nonlocal code
            try:
                result = await work()
            except grpc.aio.AbortError:
                code = requestmetrics.http_code(method, None, context.code())
                raise
            except Exception as e:
                code = requestmetrics.http_code(method, None, e.code) \
                    if isinstance(e, AgentError) else \
                    requestmetrics.http_code(method, status_of(e)[1])
                raise
            code = requestmetrics.http_code(method, None)
            return result
        try:
            return await run_translated(context, method, counted)
        finally:
            metrics.record(method, code, started)

    async def Create(self, request: api_pb2.CreateRequest,
                     context: grpc.aio.ServicerContext) -> api_pb2.Object:
        async def work() -> api_pb2.Object:
            self._authorize_object("create", _object(request.object), create=True)
            return await self.registry.create(request.object, dry_run=request.dry_run)
        return await self._run(context, "Create", work)

    async def Get(self, request: api_pb2.GetRequest,
                  context: grpc.aio.ServicerContext) -> api_pb2.Object:
        key = request.key

        async def work() -> api_pb2.Object:
            kind = _resolve(key.resource)
            self._authorize("get", kind, key.namespace, key.name)
            return await self.registry.get(kind, key.namespace, key.name)
        return await self._run(context, "Get", work)

    async def List(self, request: api_pb2.ListRequest,
                   context: grpc.aio.ServicerContext) -> api_pb2.ListResponse:
        async def work() -> api_pb2.ListResponse:
            kind = _resolve(request.resource)
            self._authorize("list", kind, request.namespace, collection=True)
            result = await self.registry.list(kind, request.namespace, request.label_selector,
                                              request.field_selector)
            return api_pb2.ListResponse(items=result.items,
                                        resource_version=str(result.resource_version))
        return await self._run(context, "List", work)

    async def Update(self, request: api_pb2.UpdateRequest,
                     context: grpc.aio.ServicerContext) -> api_pb2.Object:
        async def work() -> api_pb2.Object:
            self._authorize_object("update", _object(request.object))
            return await self.registry.update(request.object, dry_run=request.dry_run)
        return await self._run(context, "Update", work)

    async def UpdateStatus(self, request: api_pb2.UpdateRequest,
                           context: grpc.aio.ServicerContext) -> api_pb2.Object:
        async def work() -> api_pb2.Object:
            self._authorize_object("update", _object(request.object), subresource="status")
            return await self.registry.update(request.object, status=True,
                                              dry_run=request.dry_run)
        return await self._run(context, "UpdateStatus", work)

    async def Delete(self, request: api_pb2.DeleteRequest,
                     context: grpc.aio.ServicerContext) -> api_pb2.DeleteResponse:
        async def work() -> api_pb2.DeleteResponse:
            key = request.key
            grace = request.grace_period_seconds if request.HasField("grace_period_seconds") \
                else None
            kind = _resolve(key.resource)
            self._authorize("delete", kind, key.namespace, key.name)
            obj, deleted = await self.registry.delete(
                kind, key.namespace, key.name,
                policy=request.propagation_policy, grace_period_seconds=grace,
                resource_version=request.resource_version, uid=request.uid)
            return api_pb2.DeleteResponse(object=obj, deleted=deleted)
        return await self._run(context, "Delete", work)

    async def DeleteCollection(self, request: api_pb2.DeleteCollectionRequest,
                               context: grpc.aio.ServicerContext
                               ) -> api_pb2.DeleteCollectionResponse:
        async def work() -> api_pb2.DeleteCollectionResponse:
            kind = _resolve(request.resource)
            self._authorize("deletecollection", kind, request.namespace, collection=True)
            found = await self.registry.list(kind, request.namespace, request.label_selector,
                                             request.field_selector)
            results = []
            for item in found.items:
                meta = objects.meta(item)
                with contextlib.suppress(errors.NotFound):
                    obj, deleted = await self.registry.delete(
                        kind, meta.namespace, meta.name, policy=request.propagation_policy)
                    results.append(api_pb2.DeleteResponse(object=obj, deleted=deleted))
            return api_pb2.DeleteCollectionResponse(results=results)
        return await self._run(context, "DeleteCollection", work)

    async def Watch(self, request: api_pb2.WatchRequest,
                    context: grpc.aio.ServicerContext) -> AsyncIterator[api_pb2.WatchEvent]:
        try:
            kind = _resolve(request.resource)
            self._authorize("watch", kind, request.namespace, collection=True)
            flt = cache.Filter(
                namespace=request.namespace if kind.namespaced else "",
                selector=self.registry.parse_label_selector(request.label_selector),
                field_reqs=fields.parse(request.field_selector, objects.message_class(kind)))
            cacher = self.caches[kind.plural]
            watcher = await cacher.watch(flt, request.resource_version)
            async for event in cache.stream(cacher, watcher, bookmarks=request.allow_bookmarks,
                                            bookmark_interval=self.bookmark_interval):
                yield event
        except grpc.aio.AbortError:
            raise
        except Exception as e:
            await _translate(context, e, "Watch")

    async def Apply(self, request: api_pb2.ApplyRequest,
                    context: grpc.aio.ServicerContext) -> api_pb2.ApplyResponse:
        async def work() -> api_pb2.ApplyResponse:
            await self._authorize_apply(_object(request.object))
            obj, result = await self.registry.apply(request.object, dry_run=request.dry_run)
            return api_pb2.ApplyResponse(object=obj, result=result)  # type: ignore[arg-type]
        return await self._run(context, "Apply", work)

    async def _authorize_apply(self, obj: api_pb2.Object) -> None:
        """patch when the object exists, create when apply would create it."""
        if self.authorization is None or self.authorization.authorizer is None:
            return
        kind, meta = objects.kind_of(obj), objects.meta(obj)
        try:
            await self.registry.get(kind, meta.namespace or "default", meta.name)
        except (errors.NotFound, errors.BadRequest):
            self._authorize_object("create", obj, create=True)
            return
        self._authorize_object("patch", obj)

    async def Bind(self, request: api_pb2.BindRequest,
                   context: grpc.aio.ServicerContext) -> api_pb2.Object:
        return await self._run(context, "Bind", lambda: self._bind(request))

    async def _bind(self, request: api_pb2.BindRequest) -> api_pb2.Object:
        pods = kinds.resolve("pods")
        self._authorize("create", pods, request.namespace, request.name, subresource="binding")
        if not request.node_name:
            raise errors.BadRequest("nodeName is required")

        def change(obj: api_pb2.Object) -> None:
            pod = obj.pod
            if pod.spec.node_name:
                raise errors.Conflict(pods, pod.metadata.name,
                                      f'pod {pod.metadata.name} is already assigned to node '
                                      f'"{pod.spec.node_name}"')
            if pod.metadata.HasField("deletion_timestamp"):
                raise errors.Conflict(pods, pod.metadata.name, "pod is being deleted")
            pod.spec.node_name = request.node_name
            _set_condition(pod.status.conditions, "PodScheduled", "True")
        return await self.registry.mutate(pods, request.namespace, request.name, change,
                                          validate=False, uid=request.uid)

    async def Scale(self, request: api_pb2.ScaleRequest,
                    context: grpc.aio.ServicerContext) -> api_pb2.Object:
        async def work() -> api_pb2.Object:
            kind = _resolve(request.key.resource)
            self._authorize("update", kind, request.key.namespace, request.key.name,
                            subresource="scale")
            if kind.plural not in SCALABLE:
                raise errors.BadRequest(f"{kind.plural} cannot be scaled: only "
                                        + ", ".join(sorted(SCALABLE)) + " have replicas")
            if request.replicas < 0:
                raise errors.Invalid(kind, request.key.name, [errors.invalid(
                    "spec.replicas", request.replicas, "must be greater than or equal to 0")])

            def change(obj: api_pb2.Object) -> None:
                objects.unwrap(obj).spec.replicas = request.replicas
            return await self.registry.mutate(kind, request.key.namespace, request.key.name,
                                              change, resource_version=request.resource_version)
        return await self._run(context, "Scale", work)

    async def Rollback(self, request: api_pb2.RollbackRequest,
                       context: grpc.aio.ServicerContext) -> api_pb2.Object:
        from kemu.services.apiserver.rollback import rollback

        async def work() -> api_pb2.Object:
            self._authorize("create", kinds.resolve("deployments"), request.namespace,
                            request.name, subresource="rollback")
            return await rollback(self.registry, request.namespace, request.name,
                                  request.to_revision)
        return await self._run(context, "Rollback", work)

    async def Logs(self, request: api_pb2.LogsRequest,
                   context: grpc.aio.ServicerContext) -> AsyncIterator[api_pb2.LogChunk]:
        try:
            self._authorize("get", kinds.resolve("pods"), request.namespace, request.name,
                            subresource="log")
            async for chunk in self.proxy.logs(request):
                yield chunk
        except grpc.aio.AbortError:
            raise
        except Exception as e:
            await _translate(context, e, "Logs")

    async def Exec(self, request_iterator: AsyncIterator[api_pb2.ExecRequest],
                   context: grpc.aio.ServicerContext) -> AsyncIterator[api_pb2.ExecResponse]:
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None or first.WhichOneof("input") != "start":
            await context.abort_with_status(errors.status(
                grpc.StatusCode.INVALID_ARGUMENT, "the first exec message must be `start`",
                "BadRequest"))
            return
        try:
            self._authorize("create", kinds.resolve("pods"), first.start.namespace,
                            first.start.name, subresource="exec")
            async for resp in self.proxy.exec(first, requests):
                yield resp
        except grpc.aio.AbortError:
            raise
        except Exception as e:
            await _translate(context, e, "Exec")

    async def AccessReview(self, request: api_pb2.AccessReviewRequest,
                           context: grpc.aio.ServicerContext) -> api_pb2.AccessReviewResponse:
        async def work() -> api_pb2.AccessReviewResponse:
            who = self._reviewed(identity.current(), request)
            if request.list_rules:
                if self.authorization is None:
                    return api_pb2.AccessReviewResponse(resource_rules=[
                        rbac_pb2.PolicyRule(verbs=["*"], api_groups=["*"], resources=["*"]),
                        rbac_pb2.PolicyRule(verbs=["*"], non_resource_urls=["*"])])
                rules, incomplete = self.authorization.rules_for(who, request.namespace)
                return api_pb2.AccessReviewResponse(resource_rules=rules, incomplete=incomplete)
            if not request.verb or not request.resource:
                raise errors.BadRequest("verb and resource are required")
            if self.authorization is None:
                return api_pb2.AccessReviewResponse(allowed=True)
            verdict = self.authorization.review(Attributes(
                who, request.verb, request.group, request.resource, request.subresource,
                request.namespace, request.name))
            return api_pb2.AccessReviewResponse(allowed=verdict.allowed, reason=verdict.reason)
        return await self._run(context, "AccessReview", work)

    def _reviewed(self, caller: identity.Identity, request: api_pb2.AccessReviewRequest
                  ) -> identity.Identity:
        """The caller, or the user asked about when the caller may impersonate them and
        their groups (Kubernetes' impersonate verb on users and groups)."""
        if not request.user and not request.groups:
            return caller
        return impersonate(self.authorization, caller, request.user, request.groups)


SCALABLE = frozenset({"deployments", "replicasets", "statefulsets", "replicationcontrollers"})


def _set_condition(conditions: Any, type_: str, status: str, reason: str = "") -> None:
    from kemu.services.apiserver.registry import now

    for c in conditions:
        if c.type == type_:
            if c.status != status:
                c.status = status
                c.last_transition_time.CopyFrom(now())
            c.reason = reason
            return
    conditions.add(type=type_, status=status, reason=reason, last_transition_time=now())


class DiscoveryServicer(api_pb2_grpc.DiscoveryServicer):
    """kemu.v1.Discovery."""

    def __init__(self, store_kind: str) -> None:
        self.store_kind = store_kind

    async def ListAPIResources(self, request: api_pb2.ListAPIResourcesRequest,
                               context: grpc.aio.ServicerContext
                               ) -> api_pb2.ListAPIResourcesResponse:
        return api_pb2.ListAPIResourcesResponse(resources=[
            api_pb2.APIResource(name=k.plural, singular_name=k.singular,
                                short_names=list(k.short_names), kind=k.kind,
                                api_version=k.api_version, namespaced=k.namespaced,
                                verbs=list(k.verbs))
            for k in kinds.KINDS])

    async def Version(self, request: api_pb2.VersionRequest,
                      context: grpc.aio.ServicerContext) -> api_pb2.VersionInfo:
        return api_pb2.VersionInfo(
            git_version=f"v{kemu.__version__}", api_version="kemu.v1",
            python_version=sys.version.split()[0],
            platform=f"{platform.system().lower()}/{platform.machine()}", store=self.store_kind)
