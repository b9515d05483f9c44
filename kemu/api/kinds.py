"""The table of resource types: names, short names, scope and where each lives.

One table serves the apiserver (routing, store keys, discovery), kemuctl (short names,
`api-resources`) and the client. Resource names follow Kubernetes: the plural is the
canonical name, and kinds, singulars and short names resolve to it case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass, field

VERBS = ("create", "delete", "deletecollection", "get", "list", "update", "watch", "apply")


@dataclass(frozen=True)
class Kind:
    """One resource type."""

    kind: str
    plural: str
    api_version: str
    namespaced: bool
    envelope_field: str
    short_names: tuple[str, ...] = ()
    has_status: bool = True
    verbs: tuple[str, ...] = field(default=VERBS)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def qualified(self) -> str:
        """`deployments.apps` as kubectl and Kubernetes' error messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def store_prefix(self, namespace: str = "") -> str:
        """The store key prefix for this type, or for one namespace of it."""
        if self.namespaced and namespace:
            return f"/registry/{self.plural}/{namespace}/"
        return f"/registry/{self.plural}/"

    def store_key(self, namespace: str, name: str) -> str:
        """`/registry/<resource>/<namespace>/<name>`, or without namespace when cluster-scoped."""
        if self.namespaced:
            return f"/registry/{self.plural}/{namespace}/{name}"
        return f"/registry/{self.plural}/{name}"


KINDS: tuple[Kind, ...] = (
    Kind("Namespace", "namespaces", "v1", False, "namespace", ("ns",)),
    Kind("Node", "nodes", "v1", False, "node", ("no",)),
    Kind("Pod", "pods", "v1", True, "pod", ("po",)),
    Kind("Service", "services", "v1", True, "service", ("svc",)),
    Kind("Endpoints", "endpoints", "v1", True, "endpoints", ("ep",), has_status=False),
    Kind("ConfigMap", "configmaps", "v1", True, "config_map", ("cm",), has_status=False),
    Kind("Secret", "secrets", "v1", True, "secret", has_status=False),
    Kind("Event", "events", "v1", True, "event", ("ev",), has_status=False),
    Kind("PersistentVolumeClaim", "persistentvolumeclaims", "v1", True,
         "persistent_volume_claim", ("pvc",)),
    Kind("ReplicationController", "replicationcontrollers", "v1", True,
         "replication_controller", ("rc",)),
    Kind("Deployment", "deployments", "apps/v1", True, "deployment", ("deploy",)),
    Kind("ReplicaSet", "replicasets", "apps/v1", True, "replica_set", ("rs",)),
    Kind("DaemonSet", "daemonsets", "apps/v1", True, "daemon_set", ("ds",)),
    Kind("StatefulSet", "statefulsets", "apps/v1", True, "stateful_set", ("sts",)),
    Kind("Job", "jobs", "batch/v1", True, "job"),
    Kind("CronJob", "cronjobs", "batch/v1", True, "cron_job", ("cj",)),
    Kind("Lease", "leases", "coordination.k8s.io/v1", True, "lease", has_status=False),
    Kind("Ingress", "ingresses", "networking.k8s.io/v1", True, "ingress", ("ing",)),
    Kind("HorizontalPodAutoscaler", "horizontalpodautoscalers", "autoscaling/v2", True,
         "horizontal_pod_autoscaler", ("hpa",)),
    Kind("Role", "roles", "rbac.authorization.k8s.io/v1", True, "role", has_status=False),
    Kind("ClusterRole", "clusterroles", "rbac.authorization.k8s.io/v1", False, "cluster_role",
         has_status=False),
    Kind("RoleBinding", "rolebindings", "rbac.authorization.k8s.io/v1", True, "role_binding",
         has_status=False),
    Kind("ClusterRoleBinding", "clusterrolebindings", "rbac.authorization.k8s.io/v1", False,
         "cluster_role_binding", has_status=False),
)

_BY_NAME: dict[str, Kind] = {}
for _k in KINDS:
    for _alias in (_k.kind, _k.plural, _k.singular, *_k.short_names, _k.qualified):
        _BY_NAME[_alias.lower()] = _k
_BY_FIELD = {k.envelope_field: k for k in KINDS}
_BY_KIND = {k.kind: k for k in KINDS}
# Resource types that kubectl knows but kemu does not serve; named so the error can say so.
KNOWN_UNSERVED = frozenset({
    "serviceaccounts", "sa", "persistentvolumes", "pv", "storageclasses", "sc",
    "networkpolicies", "netpol", "customresourcedefinitions", "crd", "crds",
    "poddisruptionbudgets", "pdb", "limitranges", "limits", "resourcequotas", "quota",
})


class UnknownResourceError(LookupError):
    """The name matches no served resource type."""


def resolve(name: str) -> Kind:
    """Resolve a plural, singular, kind, short name or `plural.group` to its Kind."""
    found = _BY_NAME.get(name.strip().lower())
    if found is None:
        raise UnknownResourceError(
            f'the server doesn\'t have a resource type "{name}"'
        )
    return found


def by_envelope_field(field_name: str) -> Kind:
    """The Kind stored in the given `Object` oneof field."""
    return _BY_FIELD[field_name]


def by_kind(kind: str) -> Kind | None:
    """The Kind with exactly this `kind` name (case-sensitive, as in manifests)."""
    return _BY_KIND.get(kind)
