"""RBAC escalation prevention, as Kubernetes' rbac registry does it: a user may create or
update a Role or ClusterRole only with rules they already hold, and bind a role only when
they hold all of its rules, where they would bind it (namespace for Roles and RoleBindings,
the cluster scope otherwise). The group system:masters, the `escalate` verb on the role
kind (roles) and the `bind` verb on the referenced role (bindings) lift the check.

Otherwise `admin` of one namespace could bind `cluster-admin` there, or write a Role of
`*` on `*`, and hold powers nobody gave them.

    roles.rbac.authorization.k8s.io "r" is forbidden: user "jane" (groups=["devs"
    "system:authenticated"]) is attempting to grant RBAC permissions not currently held:
    {APIGroups:["apps"], Resources:["deployments"], Verbs:["delete"]}

A binding to a role that does not exist grants nothing yet and is allowed (Kubernetes
refuses it unless the user may `bind`); the check runs again when the role is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kemu.api import objects
from kemu.api.v1 import api_pb2, rbac_pb2
from kemu.services.apiserver.authorizer import MASTERS, Attributes, Authorization
from kemu.services.apiserver.errors import Forbidden
from kemu.services.apiserver.identity import Identity
from kemu.services.apiserver.rbac import RBACAuthorizer

RBAC_GROUP = "rbac.authorization.k8s.io"
GUARDED = frozenset({"role", "cluster_role", "role_binding", "cluster_role_binding"})


def _matches(owned: Sequence[str], wanted: str) -> bool:
    return "*" in owned or wanted in owned


def _resource_covered(owned: Sequence[str], wanted: str) -> bool:
    if "*" in owned or wanted in owned:
        return True
    _, slash, sub = wanted.partition("/")
    return bool(slash) and f"*/{sub}" in owned


def _url_covered(owned: Sequence[str], wanted: str) -> bool:
    return any(o == "*" or o == wanted or (o.endswith("*") and wanted.startswith(o[:-1]))
               for o in owned)


def _covers(owner: rbac_pb2.PolicyRule, rule: rbac_pb2.PolicyRule) -> bool:
    """ruleCovers for a broken-down rule (one verb, group, resource, name or URL)."""
    if not all(_matches(owner.verbs, v) for v in rule.verbs):
        return False
    if rule.non_resource_urls:
        return all(_url_covered(owner.non_resource_urls, u) for u in rule.non_resource_urls)
    return (all(_matches(owner.api_groups, g) for g in rule.api_groups)
            and all(_resource_covered(owner.resources, r) for r in rule.resources)
            and (not owner.resource_names
                 or all(n in owner.resource_names for n in rule.resource_names)))


def _breakdown(rule: rbac_pb2.PolicyRule) -> list[rbac_pb2.PolicyRule]:
    names: list[list[str]] = [[n] for n in rule.resource_names] or [[]]
    out = [rbac_pb2.PolicyRule(verbs=[v], api_groups=[g], resources=[r], resource_names=n)
           for g in rule.api_groups for r in rule.resources for v in rule.verbs for n in names]
    out += [rbac_pb2.PolicyRule(verbs=[v], non_resource_urls=[u])
            for u in rule.non_resource_urls for v in rule.verbs]
    return out


def missing(owned: Sequence[rbac_pb2.PolicyRule], wanted: Iterable[rbac_pb2.PolicyRule]
            ) -> list[rbac_pb2.PolicyRule]:
    """The broken-down rules of `wanted` that no rule of `owned` covers."""
    return [part for rule in wanted for part in _breakdown(rule)
            if not any(_covers(o, part) for o in owned)]


def _quoted(items: Iterable[str]) -> str:
    return "[" + " ".join(f'"{i}"' for i in items) + "]"


def compact_string(rule: rbac_pb2.PolicyRule) -> str:
    """rbacv1helpers.CompactString: `{APIGroups:["apps"], Resources:["deployments"], ...}`."""
    parts = []
    for label, values in (("APIGroups", rule.api_groups), ("Resources", rule.resources),
                          ("ResourceNames", rule.resource_names),
                          ("NonResourceURLs", rule.non_resource_urls), ("Verbs", rule.verbs)):
        if values:
            parts.append(f"{label}:[" + ", ".join(f'"{v}"' for v in values) + "]")
    return "{" + ", ".join(parts) + "}"


def check(authorization: Authorization, user: Identity, obj: api_pb2.Object) -> None:
    """Raise Forbidden when writing `obj` (an RBAC object) would grant `user` more than
    they hold; nothing for other kinds, without RBAC, or for system:masters."""
    field = obj.WhichOneof("kind")
    if field not in GUARDED or "RBAC" not in authorization.modes or MASTERS in user.groups:
        return
    kind, meta = objects.kind_of(obj), objects.meta(obj)
    inner = objects.unwrap(obj)
    namespace = (meta.namespace or "default") if kind.namespaced else ""
    rbac = RBACAuthorizer(authorization.view)
    if field in ("role", "cluster_role"):
        if authorization.review(Attributes(user, "escalate", RBAC_GROUP, kind.plural,
                                           namespace=namespace, name=meta.name)).allowed:
            return
        wanted = list(inner.rules)
    else:
        ref = inner.role_ref
        plural = "clusterroles" if ref.kind == "ClusterRole" else "roles"
        if authorization.review(Attributes(user, "bind", RBAC_GROUP, plural,
                                           namespace=namespace, name=ref.name)).allowed:
            return
        wanted = list(rbac.role_rules(ref, namespace))
    owned, _ = authorization.rules_for(user, namespace)
    lacking = missing(owned, wanted)
    if lacking:
        qualified = f"{kind.plural}.{kind.group}"
        raise Forbidden(
            f'{qualified} "{meta.name}" is forbidden: user "{user.user}" '
            f"(groups={_quoted(user.groups)}) is attempting to grant RBAC permissions not "
            "currently held:\n" + "\n".join(compact_string(r) for r in lacking),
            {"kind": kind.plural, "group": kind.group, "name": meta.name})
