"""`kemuctl create role|clusterrole|rolebinding|clusterrolebinding`, building the objects as
kubectl's generators do: one rule per API group (groups sorted) holding the verbs, the
resources of that group (short names resolved, `pods/status` kept) and the resource names;
binding subjects as users, then groups, then service accounts (`namespace:name`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kemu.api import kinds
from kemu.api.v1 import api_pb2, rbac_pb2
from kemu.cli.ctl.errors import CtlError

RBAC_GROUP = "rbac.authorization.k8s.io"
API_VERSION = f"{RBAC_GROUP}/v1"
VALID_VERBS = ("*", "get", "delete", "list", "create", "update", "patch", "watch", "proxy",
               "deletecollection", "use", "bind", "escalate", "impersonate")
NON_RESOURCE_VERBS = ("*", "get", "post", "put", "delete", "patch", "head", "options")


def split(values: Iterable[str]) -> list[str]:
    """Repeated flags whose values may also be comma-separated, as cobra's StringSlice."""
    return [part.strip() for v in values for part in v.split(",") if part.strip()]


def _resource(text: str) -> tuple[str, str]:
    """`deploy.apps/scale` -> ("apps", "deployments/scale"): group and rule resource."""
    base, slash, sub = text.partition("/")
    resource, _, group = base.partition(".")
    for name, wanted in ((base, None), (resource, group)):
        try:
            kind = kinds.resolve(name)
        except kinds.UnknownResourceError:
            continue
        if wanted is None or kind.group == wanted:
            group, resource = kind.group, kind.plural
            break
    return group, resource + (f"/{sub}" if slash else "")


def rules(verbs: Sequence[str], resources: Sequence[str], resource_names: Sequence[str],
          non_resource_urls: Sequence[str] = (), *, cluster: bool = False
          ) -> list[rbac_pb2.PolicyRule]:
    verbs = split(verbs)
    if not verbs:
        raise CtlError("at least one verb must be specified")
    allowed = VALID_VERBS + (NON_RESOURCE_VERBS if non_resource_urls else ())
    for verb in verbs:
        if verb not in allowed:
            raise CtlError(f"invalid verb: '{verb}'")
    resources = split(resources)
    urls = split(non_resource_urls)
    if not resources and not (cluster and urls):
        raise CtlError("at least one resource must be specified" if not cluster else
                       "one of resource or nonResourceURL must be specified")
    by_group: dict[str, list[str]] = {}
    for text in resources:
        group, resource = _resource(text)
        listed = by_group.setdefault(group, [])
        if resource not in listed:
            listed.append(resource)
    out = [rbac_pb2.PolicyRule(verbs=verbs, api_groups=[g], resources=by_group[g],
                               resource_names=split(resource_names))
           for g in sorted(by_group)]
    if urls:
        out.append(rbac_pb2.PolicyRule(verbs=verbs, non_resource_urls=urls))
    return out


def role(name: str, rule_list: list[rbac_pb2.PolicyRule]) -> api_pb2.Object:
    r = rbac_pb2.Role(api_version=API_VERSION, kind="Role", rules=rule_list)
    r.metadata.name = name
    return api_pb2.Object(role=r)


def cluster_role(name: str, rule_list: list[rbac_pb2.PolicyRule],
                 aggregation: Sequence[str] = ()) -> api_pb2.Object:
    r = rbac_pb2.ClusterRole(api_version=API_VERSION, kind="ClusterRole", rules=rule_list)
    r.metadata.name = name
    labels = {}
    for pair in split(aggregation):
        key, sep, value = pair.partition("=")
        if not sep:
            raise CtlError(f"invalid aggregation rule {pair!r}: expected key=value")
        labels[key] = value
    if labels:
        r.ClearField("rules")
        r.aggregation_rule.cluster_role_selectors.add().match_labels.update(labels)
    return api_pb2.Object(cluster_role=r)


def subjects(users: Sequence[str], groups: Sequence[str], service_accounts: Sequence[str]
             ) -> list[rbac_pb2.Subject]:
    out = [rbac_pb2.Subject(kind="User", api_group=RBAC_GROUP, name=u) for u in users]
    out += [rbac_pb2.Subject(kind="Group", api_group=RBAC_GROUP, name=g) for g in groups]
    for sa in service_accounts:
        namespace, sep, name = sa.partition(":")
        if not sep or not namespace or not name or ":" in name:
            raise CtlError(f"serviceaccount must be <namespace>:<name>, got {sa!r}")
        out.append(rbac_pb2.Subject(kind="ServiceAccount", namespace=namespace, name=name))
    return out


def role_binding(name: str, *, cluster_role: str, role: str, users: Sequence[str],
                 groups: Sequence[str], service_accounts: Sequence[str]) -> api_pb2.Object:
    if bool(cluster_role) == bool(role):
        raise CtlError("exactly one of clusterrole or role must be specified")
    b = rbac_pb2.RoleBinding(api_version=API_VERSION, kind="RoleBinding",
                             subjects=subjects(users, groups, service_accounts))
    b.metadata.name = name
    b.role_ref.api_group = RBAC_GROUP
    b.role_ref.kind, b.role_ref.name = ("ClusterRole", cluster_role) if cluster_role \
        else ("Role", role)
    return api_pb2.Object(role_binding=b)


def cluster_role_binding(name: str, *, cluster_role: str, users: Sequence[str],
                         groups: Sequence[str], service_accounts: Sequence[str]
                         ) -> api_pb2.Object:
    if not cluster_role:
        raise CtlError("required flag(s) \"clusterrole\" not set")
    b = rbac_pb2.ClusterRoleBinding(api_version=API_VERSION, kind="ClusterRoleBinding",
                                    subjects=subjects(users, groups, service_accounts))
    b.metadata.name = name
    b.role_ref.api_group, b.role_ref.kind, b.role_ref.name = RBAC_GROUP, "ClusterRole", \
        cluster_role
    return api_pb2.Object(cluster_role_binding=b)
