"""Authorization: may this user do this verb on this resource? As kube-apiserver decides it.

`--authorization-mode` names the authorizers in order (a comma list, as kube-apiserver's):
AlwaysAllow (the default: every caller may do everything, as before there was any
authorization), RBAC (Roles, ClusterRoles and their bindings, rbac.py) and Node (node agents,
nodeauth.py). Whatever the modes, the group system:masters is always allowed first, as
Kubernetes' privileged-groups authorizer; then each authorizer in turn allows, denies or has
no opinion, and the first that allows or denies decides (the union authorizer). No opinion
from every one is a denial, worded as Kubernetes words it:

    deployments.apps is forbidden: User "jane" cannot list resource "deployments" in API
    group "apps" in the namespace "default"

and sent as PERMISSION_DENIED with the reason Forbidden.

Every request is described by `Attributes` (user and groups, verb, API group, resource and
subresource, namespace, name), which the servicers fill from the RPC (service.py maps each
RPC to its Kubernetes verb and resource). Authorizers read roles, bindings and pods from a
`View`: the apiserver's watch caches in production (`CacheView`), plain lists in tests.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from kemu.api import kinds
from kemu.api.v1 import api_pb2, rbac_pb2
from kemu.services.apiserver.errors import BadRequest, Forbidden
from kemu.services.apiserver.identity import Identity
from kemu.services.apiserver.stored import Raw, decode_raw

T = TypeVar("T")

MODES = ("AlwaysAllow", "AlwaysDeny", "RBAC", "Node")
MASTERS = "system:masters"
READ_VERBS = ("get", "list", "watch")


class Decision(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    NO_OPINION = "no opinion"


@dataclass(frozen=True)
class Attributes:
    """One request as authorizers see it (Kubernetes' authorizer.Attributes)."""

    user: Identity
    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    # The object named by the request; empty for list, watch, create and deletecollection,
    # which name none (so RBAC resourceNames never match them, as in Kubernetes).
    name: str = ""
    # For create: the name of the object being created (what NodeRestriction checks).
    object_name: str = ""

    @property
    def combined(self) -> str:
        """`pods/log`: the resource with its subresource, as RBAC rules name it."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW


class Authorizer(Protocol):
    """Decides one request."""

    def authorize(self, attrs: Attributes) -> Verdict: ...


class View(Protocol):
    """What authorizers read: the current objects of a resource type."""

    def objects(self, plural: str) -> Iterable[api_pb2.Object]: ...

    def get(self, plural: str, namespace: str, name: str) -> api_pb2.Object | None: ...

    def project(self, plural: str, fn: Callable[[api_pb2.Object], T]) -> list[T]:
        """`fn` of every current object; `fn` must be a pure function of the object, so
        a view may reuse its answer while the object is unchanged."""
        ...


def _same(obj: api_pb2.Object) -> api_pb2.Object:
    return obj


class CacheView:
    """The apiserver's watch caches (as Kubernetes' authorizers read informers): as fresh as
    what any watcher has been sent.

    The caches hold stored bytes and decode on read, and authorizers read on every request
    (RBAC every binding, the Node authorizer every pod), so what they derive from an object
    is kept per object and reused while the cache holds the same bytes for it: an object
    is decoded again only after it changed. Authorizers only read what they are given."""

    def __init__(self, caches: Mapping[str, object]) -> None:
        self.caches = caches
        self._derived: dict[tuple[str, Callable[..., Any]], dict[str, tuple[Any, Any]]] = {}

    def project(self, plural: str, fn: Callable[[api_pb2.Object], T]) -> list[T]:
        current = getattr(self.caches[plural], "current", {})
        raw: Mapping[str, Raw] | None = getattr(current, "raw", None)
        if raw is None:  # a cache of decoded objects
            return [fn(obj) for obj in current.values()]
        memo = self._derived.get((plural, fn), {})
        fresh = {key: _reuse(memo, key, stored, fn) for key, stored in raw.items()}
        self._derived[(plural, fn)] = fresh
        return [derived for _, derived in fresh.values()]

    def objects(self, plural: str) -> Iterable[api_pb2.Object]:
        return self.project(plural, _same)

    def get(self, plural: str, namespace: str, name: str) -> api_pb2.Object | None:
        current = getattr(self.caches[plural], "current", {})
        key = kinds.resolve(plural).store_key(namespace, name)
        raw: Mapping[str, Raw] | None = getattr(current, "raw", None)
        if raw is None:
            found: api_pb2.Object | None = current.get(key)
            return found
        stored = raw.get(key)
        if stored is None:
            return None
        memo = self._derived.setdefault((plural, _same), {})
        known = memo[key] = _reuse(memo, key, stored, _same)
        obj: api_pb2.Object = known[1]
        return obj


def _reuse(memo: Mapping[str, tuple[Any, Any]], key: str, stored: Raw,
           fn: Callable[[api_pb2.Object], Any]) -> tuple[Any, Any]:
    """(stored, fn(object)) for the cache's entry `key`: the memo's while it was derived
    from these very bytes, else decoded and derived anew."""
    known = memo.get(key)
    if known is not None and known[0] is stored:
        return known
    return stored, fn(decode_raw(key, stored))


class StaticView:
    """A fixed set of objects (tests, and `kemuctl auth can-i` reasoning offline)."""

    def __init__(self, objs: Iterable[api_pb2.Object]) -> None:
        self.by_plural: dict[str, list[api_pb2.Object]] = {}
        for obj in objs:
            plural = kinds.by_envelope_field(str(obj.WhichOneof("kind"))).plural
            self.by_plural.setdefault(plural, []).append(obj)

    def objects(self, plural: str) -> Iterable[api_pb2.Object]:
        return list(self.by_plural.get(plural, []))

    def project(self, plural: str, fn: Callable[[api_pb2.Object], T]) -> list[T]:
        return [fn(obj) for obj in self.by_plural.get(plural, [])]

    def get(self, plural: str, namespace: str, name: str) -> api_pb2.Object | None:
        kind = kinds.resolve(plural)
        for obj in self.by_plural.get(plural, []):
            meta = getattr(obj, kind.envelope_field).metadata
            if meta.name == name and (not kind.namespaced or meta.namespace == namespace):
                return obj
        return None


class AlwaysAllow:
    def authorize(self, attrs: Attributes) -> Verdict:
        return Verdict(Decision.ALLOW)


class AlwaysDeny:
    def authorize(self, attrs: Attributes) -> Verdict:
        return Verdict(Decision.NO_OPINION)


class PrivilegedGroups:
    """The group system:masters may do everything, whatever the roles say."""

    def __init__(self, groups: Sequence[str] = (MASTERS,)) -> None:
        self.groups = frozenset(groups)

    def authorize(self, attrs: Attributes) -> Verdict:
        if self.groups.intersection(attrs.user.groups):
            return Verdict(Decision.ALLOW)
        return Verdict(Decision.NO_OPINION)


class Union:
    """The first authorizer that allows or denies decides; the reasons of those with no
    opinion are kept for the denial message (Kubernetes' union authorizer)."""

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self.authorizers = tuple(authorizers)

    def authorize(self, attrs: Attributes) -> Verdict:
        reasons = []
        for authorizer in self.authorizers:
            verdict = authorizer.authorize(attrs)
            if verdict.decision is not Decision.NO_OPINION:
                return verdict
            if verdict.reason:
                reasons.append(verdict.reason)
        return Verdict(Decision.NO_OPINION, "\n".join(reasons))


class ModeError(ValueError):
    """`--authorization-mode` names an unknown mode or none."""


def parse_modes(text: str) -> tuple[str, ...]:
    """`RBAC,Node` -> ("RBAC", "Node"); unknown or repeated modes are errors."""
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    if not modes:
        raise ModeError("--authorization-mode: at least one mode is required")
    for mode in modes:
        if mode not in MODES:
            raise ModeError(f"--authorization-mode: unknown authorization mode {mode!r} "
                            f"(supported: {', '.join(MODES)})")
    if len(set(modes)) != len(modes):
        raise ModeError(f"--authorization-mode: a mode is given twice in {text!r}")
    return modes


def build(modes: Sequence[str], view: View) -> Authorizer | None:
    """The authorizer for `modes`; None for AlwaysAllow alone (no check at all)."""
    from kemu.services.apiserver.nodeauth import NodeAuthorizer, NodeRestriction
    from kemu.services.apiserver.rbac import RBACAuthorizer

    if tuple(modes) == ("AlwaysAllow",):
        return None
    chain: list[Authorizer] = []
    if "Node" in modes:  # the admission check applies whatever comes first
        chain.append(NodeRestriction(view))
    chain.append(PrivilegedGroups())
    for mode in modes:
        if mode == "AlwaysAllow":
            chain.append(AlwaysAllow())
        elif mode == "AlwaysDeny":
            chain.append(AlwaysDeny())
        elif mode == "RBAC":
            chain.append(RBACAuthorizer(view))
        elif mode == "Node":
            chain.append(NodeAuthorizer(view))
    return Union(chain)


def forbidden(attrs: Attributes, reason: str = "") -> Forbidden:
    """Kubernetes' NewForbidden for a denied request: `deployments.apps "web" is forbidden:
    User "jane" cannot get resource ...`, with the resource and name as details."""
    qualified = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    detail = forbidden_message(attrs) + (f": {reason}" if reason else "")
    name = attrs.name
    message = (f'{qualified} "{name}" is forbidden: {detail}' if name
               else f"{qualified} is forbidden: {detail}")
    found = {"kind": attrs.resource, "group": attrs.group, "name": name}
    return Forbidden(message, {k: v for k, v in found.items() if v})


def forbidden_message(attrs: Attributes) -> str:
    """Kubernetes' forbiddenMessage: who cannot do what, where."""
    where = (f'in the namespace "{attrs.namespace}"' if attrs.namespace
             else "at the cluster scope")
    return (f'User "{attrs.user.user}" cannot {attrs.verb} resource "{attrs.combined}" '
            f'in API group "{attrs.group}" {where}')


def check(authorizer: Authorizer | None, attrs: Attributes) -> None:
    """Raise Forbidden unless `authorizer` (None: AlwaysAllow) allows the request."""
    if authorizer is None:
        return
    verdict = authorizer.authorize(attrs)
    if not verdict.allowed:
        raise forbidden(attrs, verdict.reason)


class Authorization:
    """The apiserver's authorization as configured: checks requests, answers access
    reviews and lists the rules that apply to a user."""

    def __init__(self, modes: Sequence[str], view: View) -> None:
        self.modes = tuple(modes)
        self.view = view
        self.authorizer = build(self.modes, view)

    def check(self, attrs: Attributes) -> None:
        check(self.authorizer, attrs)

    def review(self, attrs: Attributes) -> Verdict:
        if self.authorizer is None:
            return Verdict(Decision.ALLOW)
        return self.authorizer.authorize(attrs)

    def rules_for(self, user: Identity, namespace: str
                  ) -> tuple[list[rbac_pb2.PolicyRule], bool]:
        """The rules that apply to `user` in `namespace`, and whether the list may be
        incomplete (Kubernetes' RulesFor of each mode's rule resolver)."""
        from kemu.services.apiserver.bootstrappolicy import NODE_RULES
        from kemu.services.apiserver.rbac import RBACAuthorizer

        rules: list[rbac_pb2.PolicyRule] = []
        incomplete = False
        for mode in self.modes:
            if mode == "AlwaysAllow":
                rules.append(rbac_pb2.PolicyRule(verbs=["*"], api_groups=["*"],
                                                 resources=["*"]))
                rules.append(rbac_pb2.PolicyRule(verbs=["*"], non_resource_urls=["*"]))
            elif mode == "RBAC":
                rules += RBACAuthorizer(self.view).rules_for(user, namespace)
            elif mode == "Node" and user.node_name is not None:
                rules += NODE_RULES
                incomplete = True  # what a node reaches through its pods is not listed
        return rules, incomplete


def impersonate(authorization: Authorization | None, caller: Identity, user: str,
                groups: Sequence[str]) -> Identity:
    """Who `caller` acts as when asking to be `user` in `groups` (kubectl's --as and
    --as-group; an access review about another user): allowed only with the impersonate
    verb on that user and on each group, else Forbidden. As Kubernetes, the groups are
    exactly those asked for, plus system:authenticated; the user's own groups are not
    looked up (there is no directory to look them up in)."""
    if not user:
        raise BadRequest("groups were given without a user to impersonate")
    for resource, name in [("users", user), *(("groups", g) for g in groups)]:
        if authorization is not None:
            authorization.check(Attributes(caller, "impersonate", "", resource, name=name))
    kept = tuple(groups)
    if user != "system:anonymous" and "system:authenticated" not in kept:
        kept += ("system:authenticated",)
    return Identity(user, kept)
