"""The generic registry: every verb for every kind, over the store.

This is Kubernetes' generic REST store (staging/.../registry/generic/registry/store.go)
in small: kind-specific behaviour (defaulting, validation, status handling, allocation,
deletion rules) is looked up by kind; everything else is the same path for all kinds.
Each write is one store transaction guarded by a compare on the key's mod revision,
which is the object's resourceVersion.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kemu.api import kinds, labels, manifest, objects
from kemu.api.kinds import Kind
from kemu.api.v1 import api_pb2
from kemu.services.apiserver import allocators, defaults, fields, validation
from kemu.services.apiserver.errors import (
    AlreadyExists,
    APIError,
    BadRequest,
    Conflict,
    FailedPrecondition,
    FieldError,
    Invalid,
    NotFound,
    Unavailable,
    invalid,
    required,
)
from kemu.services.apiserver.storage import (
    KeyValue,
    Storage,
    absent,
    delete_op,
    get_op,
    put_op,
    unchanged,
    value_is,
)
from kemu.util.logsetup import event

log = logging.getLogger(__name__)
Object = api_pb2.Object
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MAX_GENERATED_PREFIX = 63 - 5  # Kubernetes' maxGeneratedNameLength: room for 5 random chars
_RETRIES = 20
LIVE_LOOKUP_SECONDS = 30.0


def decode(kv: KeyValue) -> api_pb2.Object:
    """A stored value as an Object whose resourceVersion is the key's mod revision."""
    obj = Object.FromString(kv.value)
    objects.meta(obj).resource_version = str(kv.mod_revision)
    return objects.fill_type_meta(obj)


def encode(obj: api_pb2.Object) -> bytes:
    """The stored form: the envelope without resourceVersion (the store's revision is it)."""
    copy = Object()
    copy.CopyFrom(obj)
    objects.meta(copy).resource_version = ""
    inner = objects.unwrap(copy)
    inner.api_version = ""
    inner.kind = ""
    return copy.SerializeToString(deterministic=True)


def now() -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromSeconds(int(time.time()))
    return ts


def _has_spec(obj: api_pb2.Object) -> bool:
    return "spec" in objects.unwrap(obj).DESCRIPTOR.fields_by_name


def _spec_bytes(obj: api_pb2.Object) -> bytes:
    inner = objects.unwrap(obj)
    if "spec" in inner.DESCRIPTOR.fields_by_name:
        return bytes(inner.spec.SerializeToString(deterministic=True))
    data = Object()
    data.CopyFrom(obj)
    body = objects.unwrap(data)
    body.ClearField("metadata")
    return bytes(data.SerializeToString(deterministic=True))


class _StaleRead(Exception):
    """An update found nothing to change in the watch cache's copy: read the store's."""


@dataclass
class ListResult:
    items: list[api_pb2.Object]
    resource_version: int


class Registry:
    """Create, read, update, delete and apply objects of every kind."""

    def __init__(self, storage: Storage, *, ranges: allocators.Ranges | None = None,
                 rng: random.Random | None = None,
                 cached_namespace: Callable[[str], api_pb2.Object | None] | None = None,
                 cached_object: Callable[[Kind, str], api_pb2.Object | None] | None = None
                 ) -> None:
        self.storage = storage
        # The watch cache's copy of an object by kind and store key, a fresh object the
        # registry may change (the cache decodes it from stored bytes on every read): the
        # first guess of an update, as Kubernetes' GuaranteedUpdate takes the cacher's
        # object (see _current).
        self.cached_object = cached_object
        # A fast, possibly stale view of namespaces (the watch cache); a miss reads the store.
        self.cached_namespace = cached_namespace
        # Namespaces this apiserver marked Terminating lately: read them live, since the cache
        # may still show them Active (Kubernetes' NamespaceLifecycle forceLiveLookupCache).
        self._live_lookup_until: dict[str, float] = {}
        self.ranges = ranges or allocators.Ranges()
        self._rng = rng or random.Random()

    # ---- helpers -----------------------------------------------------------------------

    @staticmethod
    def key_of(obj: api_pb2.Object) -> str:
        m = objects.meta(obj)
        return objects.kind_of(obj).store_key(m.namespace, m.name)

    async def _read(self, kind: Kind, namespace: str, name: str) -> tuple[api_pb2.Object, int]:
        if not name:
            raise BadRequest("resource name may not be empty")
        kv, _ = await self.storage.get(kind.store_key(namespace, name))
        if kv is None:
            raise NotFound(kind, name)
        return decode(kv), kv.mod_revision

    async def _current(self, kind: Kind, namespace: str, name: str, *, cached: bool
                       ) -> tuple[api_pb2.Object, int, bool]:
        """The object to update, its mod revision and whether it was read from the store.

        With `cached`, the watch cache's copy stands in for a store read, as Kubernetes'
        GuaranteedUpdate starts from the cacher's object: the write's compare on the mod
        revision still refuses a stale copy, and every outcome that a stale copy could
        cause (a failed compare, a precondition or validation error, a no-op) is decided
        again on a store read (origStateIsCurrent in etcd3/store.go)."""
        if cached and name and self.cached_object is not None:
            hit = self.cached_object(kind, kind.store_key(namespace, name))
            if hit is not None:
                return hit, int(objects.meta(hit).resource_version), False
        obj, rev = await self._read(kind, namespace, name)
        return obj, rev, True

    def _normalise_namespace(self, obj: api_pb2.Object) -> None:
        kind, meta = objects.kind_of(obj), objects.meta(obj)
        if kind.namespaced:
            meta.namespace = meta.namespace or "default"
        else:
            meta.namespace = ""

    def _validate(self, obj: api_pb2.Object, old: api_pb2.Object | None = None) -> None:
        kind, meta = objects.kind_of(obj), objects.meta(obj)
        errs = validation.metadata(meta, kind.envelope_field, kind.namespaced)
        errs += validation.representable(objects.unwrap(obj))
        check = validation.VALIDATORS.get(kind.envelope_field)
        if check is not None:
            errs += check(objects.unwrap(obj))
        if kind.kind == "Service":
            errs += allocators.check_requested(objects.unwrap(obj).spec, self.ranges)
        if old is not None:
            rule = validation.UPDATE_VALIDATORS.get(kind.envelope_field)
            if rule is not None:
                errs += rule(objects.unwrap(obj), objects.unwrap(old))
        if errs:
            raise Invalid(kind, meta.name or meta.generate_name, errs)

    async def _check_namespace(self, obj: api_pb2.Object) -> None:
        kind, meta = objects.kind_of(obj), objects.meta(obj)
        if not kind.namespaced:
            return
        ns_kind = kinds.resolve("namespaces")
        live = self._live_lookup_until.get(meta.namespace, 0.0) > time.monotonic()
        ns = self.cached_namespace(meta.namespace) if self.cached_namespace and not live \
            else None
        if ns is None:
            kv, _ = await self.storage.get(ns_kind.store_key("", meta.namespace))
            if kv is None:
                raise NotFound(ns_kind, meta.namespace)
            ns = decode(kv)
        if objects.meta(ns).HasField("deletion_timestamp"):
            raise FailedPrecondition(
                f"unable to create new content in namespace {meta.namespace} because it is "
                "being terminated")

    async def _service_claims(self, obj: api_pb2.Object,
                              old: api_pb2.Object | None) -> allocators.Claims:
        spec = objects.unwrap(obj).spec
        if old is not None:
            allocators.carry_over(spec, objects.unwrap(old).spec)
        taken_ips = {k.removeprefix(allocators.IP_PREFIX)
                     for k in await self.storage.keys(allocators.IP_PREFIX)}
        taken_ports = {int(k.removeprefix(allocators.PORT_PREFIX))
                       for k in await self.storage.keys(allocators.PORT_PREFIX)}
        try:
            return allocators.assign(spec, self.ranges, taken_ips, taken_ports, self._rng)
        except allocators.RangeFull as e:
            raise FailedPrecondition(str(e)) from e

    @staticmethod
    def _old_claims(old: api_pb2.Object | None) -> set[str]:
        if old is None or objects.kind_of(old).kind != "Service":
            return set()
        spec = objects.unwrap(old).spec
        held = set()
        if allocators.wants_cluster_ip(spec) and spec.cluster_ip:
            held.add(allocators.IP_PREFIX + spec.cluster_ip)
        if allocators.wants_node_ports(spec):
            held |= {allocators.PORT_PREFIX + str(p.node_port) for p in spec.ports if p.node_port}
        return held

    # ---- create ------------------------------------------------------------------------

    async def create(self, obj: api_pb2.Object, *, dry_run: bool = False) -> api_pb2.Object:
        kind = objects.kind_of(obj)
        obj = self._copy(obj)
        meta = objects.meta(obj)
        self._normalise_namespace(obj)
        if meta.resource_version:
            raise BadRequest("resourceVersion should not be set on objects to be created")
        generated = not meta.name and bool(meta.generate_name)
        for _attempt in range(_RETRIES):
            if generated:  # as Kubernetes: a long prefix is cut so the name fits 63
                meta.name = meta.generate_name[:MAX_GENERATED_PREFIX] + "".join(
                    secrets.choice(_NAME_ALPHABET) for _ in range(5))
            self._prepare_create(obj)
            defaults.apply_defaults(obj)
            self._validate(obj)
            if kind.kind != "Namespace":
                await self._check_namespace(obj)
            claims = (await self._service_claims(obj, None) if kind.kind == "Service"
                      else allocators.Claims())
            if dry_run:
                return objects.fill_type_meta(obj)
            key = self.key_of(obj)
            txn = api_txn(
                compare=[absent(key), *(absent(c) for c in claims.keys)],
                success=[put_op(key, encode(obj)),
                         *(put_op(c, meta.uid.encode()) for c in claims.keys)],
                failure=[get_op(key), *(get_op(c) for c in claims.keys)])
            resp = await self.storage.txn(txn)
            if resp.succeeded:
                meta.resource_version = str(resp.header.revision)
                # With the request log's verbosity: kube-apiserver logs no create at -v 0.
                event(log, "created", v=3, object=objects.ref(obj), rv=meta.resource_version)
                return objects.fill_type_meta(obj)
            if resp.responses[0].response_range.kvs:
                if generated:
                    continue
                raise AlreadyExists(kind, meta.name)
            self._raise_if_requested_taken(kind, meta.name, claims, resp.responses[1:])
        raise Conflict(kind, meta.name, "too many concurrent allocations; try again")

    @staticmethod
    def _raise_if_requested_taken(kind: Kind, name: str, claims: allocators.Claims,
                                  responses: Any) -> None:
        errs: list[FieldError] = []
        for (claim, path), resp in zip(claims.keys.items(), responses, strict=True):
            if resp.response_range.kvs and claim in claims.requested:
                value = claim.rsplit("/", 1)[1]
                what = "IP" if claim.startswith(allocators.IP_PREFIX) else "port"
                errs.append(invalid(path, value, f"provided {what} is already "
                                               "allocated"))
        if errs:
            raise Invalid(kind, name, errs)

    def _prepare_create(self, obj: api_pb2.Object) -> None:
        kind, meta, inner = objects.kind_of(obj), objects.meta(obj), objects.unwrap(obj)
        meta.uid = str(uuid.uuid4())
        meta.creation_timestamp.CopyFrom(now())
        meta.ClearField("deletion_timestamp")
        meta.ClearField("deletion_grace_period_seconds")
        meta.generation = 1 if _has_spec(obj) else 0
        if kind.has_status and kind.kind != "Node" and "status" in inner.DESCRIPTOR.fields_by_name:
            inner.ClearField("status")
        if kind.kind == "Job":
            self._job_selector(inner, meta.uid)

    @staticmethod
    def _job_selector(job: Any, uid: str) -> None:
        """As Kubernetes: a Job selects its pods by its uid unless manualSelector is set."""
        if job.spec.manual_selector:
            return
        tmpl = job.spec.template.metadata.labels
        for key, value in (("batch.kubernetes.io/controller-uid", uid), ("controller-uid", uid),
                           ("batch.kubernetes.io/job-name", job.metadata.name),
                           ("job-name", job.metadata.name)):
            tmpl[key] = value
        job.spec.selector.Clear()
        job.spec.selector.match_labels["batch.kubernetes.io/controller-uid"] = uid

    # ---- read --------------------------------------------------------------------------

    async def get(self, kind: Kind, namespace: str, name: str) -> api_pb2.Object:
        obj, _ = await self._read(kind, self._ns(kind, namespace), name)
        return obj

    @staticmethod
    def _ns(kind: Kind, namespace: str) -> str:
        return (namespace or "default") if kind.namespaced else ""

    async def list(self, kind: Kind, namespace: str = "", label_selector: str = "",
                   field_selector: str = "") -> ListResult:
        sel = self.parse_label_selector(label_selector)
        fsel = fields.parse(field_selector, objects.message_class(kind))
        kvs, revision = await self.storage.list(kind.store_prefix(namespace))
        items = []
        for kv in kvs:
            obj = decode(kv)
            inner = objects.unwrap(obj)
            if sel.matches(inner.metadata.labels) and fields.matches(fsel, inner):
                items.append(obj)
        return ListResult(items, revision)

    @staticmethod
    def parse_label_selector(text: str) -> labels.Selector:
        try:
            return labels.parse(text)
        except labels.SelectorError as e:
            raise BadRequest(str(e)) from e

    # ---- update ------------------------------------------------------------------------

    async def update(self, obj: api_pb2.Object, *, status: bool = False,
                     dry_run: bool = False) -> api_pb2.Object:
        kind = objects.kind_of(obj)
        request = self._copy(obj)
        self._normalise_namespace(request)
        req_meta = objects.meta(request)

        def make(old: api_pb2.Object) -> api_pb2.Object:
            return (self._status_update(request, old) if status
                    else self._spec_update(request, old))

        return await self._guaranteed_update(
            kind, req_meta.namespace, req_meta.name, make,
            resource_version=req_meta.resource_version, cached=not dry_run, dry_run=dry_run)

    async def _guaranteed_update(self, kind: Kind, namespace: str, name: str,
                                 make: Callable[[api_pb2.Object], api_pb2.Object], *,
                                 resource_version: str, cached: bool, dry_run: bool = False,
                                 validate: bool = True) -> api_pb2.Object:
        """Kubernetes' GuaranteedUpdate: read the object (first the watch cache's copy when
        `cached`), `make` the new one from it, and write it only if the store still holds
        that revision, retrying on conflicts. What a cached copy decided (a precondition,
        a validation error, a no-op) is decided again on a store read before it is
        answered; `resource_version` is the caller's precondition."""
        for _attempt in range(_RETRIES):
            old, rev, current = await self._current(kind, namespace, name, cached=cached)
            cached = False
            try:
                if resource_version and resource_version != str(rev):
                    raise Conflict(kind, name)
                new = make(old)
                result = await self._write(new, old, rev, dry_run=dry_run, validate=validate,
                                           fresh=current)
            except _StaleRead:
                continue
            except APIError as e:
                if current or isinstance(e, Unavailable):
                    raise
                continue  # decided on the cache's copy: decide again on the store's
            if result is not None:
                return result
            if resource_version and current:
                raise Conflict(kind, name)
        raise Conflict(kind, name, "too many concurrent writers; try again")

    def _spec_update(self, request: api_pb2.Object, old: api_pb2.Object) -> api_pb2.Object:
        kind = objects.kind_of(request)
        new = self._copy(request)
        inner, old_inner = objects.unwrap(new), objects.unwrap(old)
        if kind.has_status:
            _copy_status(inner, old_inner)
        self._keep_system_metadata(new, old)
        defaults.apply_defaults(new)
        if kind.kind == "Namespace":
            # spec.finalizers may only be removed; the defaulter must not re-add one.
            inner.spec.ClearField("finalizers")
            inner.spec.finalizers.extend(f for f in request.namespace.spec.finalizers
                                         if f in old_inner.spec.finalizers)
        return new

    def _status_update(self, request: api_pb2.Object, old: api_pb2.Object) -> api_pb2.Object:
        kind = objects.kind_of(request)
        new = self._copy(old)
        inner = objects.unwrap(new)
        if not kind.has_status or "status" not in inner.DESCRIPTOR.fields_by_name:
            raise BadRequest(f"{kind.plural} have no status subresource")
        inner.status.CopyFrom(objects.unwrap(request).status)
        return new

    @staticmethod
    def _keep_system_metadata(new: api_pb2.Object, old: api_pb2.Object) -> None:
        m, o = objects.meta(new), objects.meta(old)
        m.uid = o.uid
        m.creation_timestamp.CopyFrom(o.creation_timestamp)
        m.generation = o.generation
        m.generate_name = m.generate_name or o.generate_name
        if o.HasField("deletion_timestamp"):
            m.deletion_timestamp.CopyFrom(o.deletion_timestamp)
        else:
            m.ClearField("deletion_timestamp")
        if o.HasField("deletion_grace_period_seconds"):
            m.deletion_grace_period_seconds = o.deletion_grace_period_seconds
        else:
            m.ClearField("deletion_grace_period_seconds")
        if o.HasField("deletion_timestamp"):
            # Finalizers may be removed while deleting, not added.
            kept = [f for f in m.finalizers if f in o.finalizers]
            del m.finalizers[:]
            m.finalizers.extend(kept)

    async def _write(self, new: api_pb2.Object, old: api_pb2.Object, rev: int, *,
                     dry_run: bool = False, validate: bool = True,
                     fresh: bool = True) -> api_pb2.Object | None:
        """Validate and store `new` over `old` read at `rev`; None when `old` moved meanwhile.
        `fresh` False: `old` is the watch cache's copy, so a no-op is only a no-op once
        the store's copy says so (_StaleRead)."""
        kind, meta = objects.kind_of(new), objects.meta(new)
        if validate:
            self._validate(new, old)
        if _has_spec(new) and _spec_bytes(new) != _spec_bytes(old):
            meta.generation = objects.meta(old).generation + 1
        claims = allocators.Claims()
        if kind.kind == "Service":
            claims = await self._service_claims(new, old)
        if self._finalized(new):
            if dry_run:
                return objects.fill_type_meta(new)
            return await self._remove(new, rev)
        meta.resource_version = objects.meta(old).resource_version
        if encode(new) == encode(old):
            if not fresh:
                raise _StaleRead
            if not await self.storage.needs_rewrite(self.key_of(new), rev):
                # A no-op write keeps the resourceVersion, unless the stored value is stale
                # (an older encryption key, or plain): that is rewritten, as Kubernetes does.
                return objects.fill_type_meta(old)
        if dry_run:
            return objects.fill_type_meta(new)
        key = self.key_of(new)
        held = self._old_claims(old)
        to_claim = [c for c in claims.keys if c not in held]
        to_release = [c for c in held if c not in claims.keys]
        txn = api_txn(
            compare=[unchanged(key, rev), *(absent(c) for c in to_claim)],
            success=[put_op(key, encode(new)), *(put_op(c, meta.uid.encode()) for c in to_claim),
                     *(delete_op(c) for c in to_release)],
            failure=[get_op(key), *(get_op(c) for c in to_claim)])
        resp = await self.storage.txn(txn)
        if resp.succeeded:
            meta.resource_version = str(resp.header.revision)
            return objects.fill_type_meta(new)
        current = resp.responses[0].response_range.kvs
        if current and current[0].mod_revision == rev:
            sub = allocators.Claims({c: claims.keys[c] for c in to_claim},
                                    {c for c in to_claim if c in claims.requested})
            self._raise_if_requested_taken(kind, meta.name, sub, resp.responses[1:])
        return None

    @staticmethod
    def _finalized(obj: api_pb2.Object) -> bool:
        """Marked for deletion and nothing left to hold it."""
        meta = objects.meta(obj)
        if not meta.HasField("deletion_timestamp") or meta.finalizers:
            return False
        if obj.WhichOneof("kind") == "namespace" and obj.namespace.spec.finalizers:
            return False
        return obj.WhichOneof("kind") != "pod"  # pods go when their node agent says so

    async def _remove(self, obj: api_pb2.Object, rev: int) -> api_pb2.Object | None:
        """Delete the key if still at `rev`, and in the same transaction free the claims
        (ClusterIP, NodePorts) that this object, by uid, still holds."""
        from kemu.api.etcd import rpc_pb2

        key = self.key_of(obj)
        uid = objects.meta(obj).uid.encode()
        releases = [rpc_pb2.RequestOp(request_txn=api_txn(
            compare=[value_is(claim, uid)], success=[delete_op(claim)]))
            for claim in sorted(self._old_claims(obj))]
        resp = await self.storage.txn(api_txn(compare=[unchanged(key, rev)],
                                              success=[delete_op(key), *releases]))
        if not resp.succeeded:
            return None
        objects.meta(obj).resource_version = str(resp.header.revision)
        event(log, "deleted", v=3, object=objects.ref(obj))
        return objects.fill_type_meta(obj)

    async def mutate(self, kind: Kind, namespace: str, name: str,
                     change: Callable[[api_pb2.Object], None], *, validate: bool = True,
                     resource_version: str = "", uid: str = "") -> api_pb2.Object:
        """Read, change, write, retrying on conflicts (Kubernetes' GuaranteedUpdate)."""
        namespace = self._ns(kind, namespace)

        def make(old: api_pb2.Object) -> api_pb2.Object:
            if uid and uid != objects.meta(old).uid:
                raise Conflict(kind, name, f"Precondition failed: UID in precondition: "
                               f"{uid}, UID in object meta: {objects.meta(old).uid}")
            new = self._copy(old)
            change(new)
            return new

        return await self._guaranteed_update(kind, namespace, name, make,
                                             resource_version=resource_version, cached=True,
                                             validate=validate)

    # ---- delete ------------------------------------------------------------------------

    async def delete(self, kind: Kind, namespace: str, name: str, *,
                     policy: int = api_pb2.PROPAGATION_POLICY_UNSPECIFIED,
                     grace_period_seconds: int | None = None, resource_version: str = "",
                     uid: str = "") -> tuple[api_pb2.Object, bool]:
        namespace = self._ns(kind, namespace)
        if kind.kind == "Namespace" and name in PROTECTED_NAMESPACES:
            raise FailedPrecondition(f'namespaces "{name}" is forbidden: this namespace may '
                                     "not be deleted")
        for _attempt in range(_RETRIES):
            old, rev = await self._read(kind, namespace, name)
            meta = objects.meta(old)
            if resource_version and resource_version != str(rev):
                raise Conflict(kind, name, "Precondition failed: ResourceVersion in "
                               f"precondition: {resource_version}, ResourceVersion in object "
                               f"meta: {rev}")
            if uid and uid != meta.uid:
                raise Conflict(kind, name, f"Precondition failed: UID in precondition: {uid}, "
                               f"UID in object meta: {meta.uid}")
            new = self._copy(old)
            if not self._mark_for_deletion(new, policy, grace_period_seconds):
                removed = await self._remove(old, rev)
                if removed is not None:
                    return removed, True
                continue
            if encode(new) == encode(old):
                return old, False
            written = await self._write(new, old, rev, validate=False)
            if written is not None:
                return written, False
        raise Conflict(kind, name, "too many concurrent writers; try again")

    def _mark_for_deletion(self, obj: api_pb2.Object, policy: int,
                           grace: int | None) -> bool:
        """Set deletionTimestamp and finalizers as needed; False means delete right away."""
        meta, field = objects.meta(obj), obj.WhichOneof("kind")
        if field == "pod":
            pod = obj.pod
            spec_grace = pod.spec.termination_grace_period_seconds
            grace = spec_grace if grace is None else grace
            terminal = pod.status.phase in ("Succeeded", "Failed")
            if not pod.spec.node_name or terminal or grace <= 0:
                if not meta.finalizers:
                    return False
            else:
                if meta.HasField("deletion_grace_period_seconds") and \
                        meta.deletion_grace_period_seconds <= grace:
                    return True  # already terminating with a shorter or equal grace
                meta.deletion_grace_period_seconds = grace
                meta.deletion_timestamp.FromSeconds(int(time.time()) + grace)
                return True
        if field == "namespace":
            now_s = time.monotonic()
            self._live_lookup_until = {n: t for n, t in self._live_lookup_until.items()
                                       if t > now_s}
            self._live_lookup_until[meta.name] = now_s + LIVE_LOOKUP_SECONDS
            if not meta.HasField("deletion_timestamp"):
                meta.deletion_timestamp.CopyFrom(now())
            obj.namespace.status.phase = "Terminating"
            return bool(obj.namespace.spec.finalizers or meta.finalizers)
        wanted = {int(api_pb2.FOREGROUND): "foregroundDeletion",
                  int(api_pb2.ORPHAN): "orphan"}.get(int(policy))
        if wanted is not None and wanted not in meta.finalizers:
            meta.finalizers.append(wanted)
        if not meta.finalizers:
            return False
        if not meta.HasField("deletion_timestamp"):
            meta.deletion_timestamp.CopyFrom(now())
            meta.deletion_grace_period_seconds = 0
        return True

    # ---- apply -------------------------------------------------------------------------

    async def apply(self, obj: api_pb2.Object, *,
                    dry_run: bool = False) -> tuple[api_pb2.Object, int]:
        """kubectl apply's three-way merge, done on the server. Returns (object, result)."""
        kind = objects.kind_of(obj)
        request = self._copy(obj)
        self._normalise_namespace(request)
        meta = objects.meta(request)
        if not meta.name:
            raise Invalid(kind, "", [required("metadata.name")])
        unrepresentable = validation.representable(objects.unwrap(request))
        if unrepresentable:  # the merge below works on the JSON form, which cannot hold them
            raise Invalid(kind, meta.name, unrepresentable)
        config = objects.to_dict(request)
        config["metadata"].pop("resourceVersion", None)
        config["metadata"].get("annotations", {}).pop(LAST_APPLIED, None)
        if not config["metadata"].get("annotations"):
            config["metadata"].pop("annotations", None)
        # kubectl ends the annotation with a newline; YAML output then shows it as a block.
        applied_text = json.dumps(config, sort_keys=True, separators=(",", ":")) + "\n"
        for _attempt in range(_RETRIES):
            try:
                live, rev = await self._read(kind, meta.namespace, meta.name)
            except NotFound:
                fresh = self._copy(request)
                objects.meta(fresh).annotations[LAST_APPLIED] = applied_text
                try:
                    created = await self.create(fresh, dry_run=dry_run)
                except AlreadyExists:
                    continue
                return created, api_pb2.ApplyResponse.CREATED
            live_dict = objects.to_dict(live)
            last = _last_applied(objects.meta(live).annotations.get(LAST_APPLIED, ""))
            merged = three_way_merge(live_dict, last, config)
            merged.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = \
                applied_text
            merged["metadata"]["resourceVersion"] = str(rev)
            try:
                desired = manifest.from_dict(merged)
            except manifest.ManifestError as e:
                raise BadRequest(str(e)) from e
            new = self._spec_update(desired, live)
            new_meta = objects.meta(new)
            if kind.has_status:
                _copy_status(objects.unwrap(new), objects.unwrap(live))
            new_meta.resource_version = str(rev)
            if kind.kind == "Service":
                allocators.carry_over(objects.unwrap(new).spec, objects.unwrap(live).spec)
            unchanged_before = _same_ignoring_annotation(new, live)
            result = await self._write(new, live, rev, dry_run=dry_run)
            if result is None:
                continue
            outcome = (api_pb2.ApplyResponse.UNCHANGED if unchanged_before
                       else api_pb2.ApplyResponse.CONFIGURED)
            return result, outcome
        raise Conflict(kind, meta.name, "too many concurrent writers; try again")

    @staticmethod
    def _copy(obj: api_pb2.Object) -> api_pb2.Object:
        copy = Object()
        copy.CopyFrom(obj)
        return copy


def _copy_status(dst: Any, src: Any) -> None:
    """Give `dst` the status of `src`, absent when absent (so encodings compare equal)."""
    if "status" not in dst.DESCRIPTOR.fields_by_name:
        return
    if src.HasField("status"):
        dst.status.CopyFrom(src.status)
    else:
        dst.ClearField("status")


def _last_applied(text: str) -> dict[str, Any]:
    """The configuration the last apply recorded; {} when there is none or the annotation
    is not a JSON object (anyone may write it), so the merge treats it as a first apply."""
    try:
        found = json.loads(text) if text else {}
    except (ValueError, RecursionError):
        return {}
    return found if isinstance(found, dict) else {}


def _same_ignoring_annotation(a: api_pb2.Object, b: api_pb2.Object) -> bool:
    x, y = Object(), Object()
    x.CopyFrom(a)
    y.CopyFrom(b)
    for o in (x, y):
        m = objects.meta(o)
        m.annotations.pop(LAST_APPLIED, None)
        m.resource_version = ""
    return encode(x) == encode(y)


def three_way_merge(live: dict[str, Any], last: dict[str, Any],
                    config: dict[str, Any]) -> dict[str, Any]:
    """kubectl apply's merge on dicts: config wins, keys dropped since `last` are removed,
    keys neither ever set keep their live value. Lists are replaced whole."""
    out = dict(live)
    for key in last:
        if key not in config and key in out:
            del out[key]
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            prev = last.get(key)
            out[key] = three_way_merge(out[key], prev if isinstance(prev, dict) else {}, value)
        else:
            out[key] = value
    return out


def api_txn(*, compare: list[Any], success: list[Any], failure: list[Any] | None = None) -> Any:
    from kemu.api.etcd import rpc_pb2

    return rpc_pb2.TxnRequest(compare=compare, success=success, failure=failure or [])

