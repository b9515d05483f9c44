"""A StatefulSet's pods and claims, and its status, as pure functions.

As Kubernetes' `stateful_set_utils.go`: pod `<set>-<ordinal>` gets the template's labels
plus `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index` and
`controller-revision-hash=<revision>`; `spec.hostname` is its name and `spec.subdomain` the
set's serviceName, so behind the headless Service it is
`<pod>.<serviceName>.<ns>.svc.cluster.local`; each volumeClaimTemplate `<t>` becomes the
claim `<t>-<set>-<ordinal>`, referenced by a pod volume named `<t>`, so a pod made again
with the same ordinal finds its claim (and data) by name.

Revisions are named `<set>-<hash of the template>` as ControllerRevisions are. kemu has no
ControllerRevision kind, yet pods below a rolling update's partition must be recreated
from the current (older) template after the spec moved on; so the template of the
current revision is kept on the StatefulSet in the `statefulset.kemu.io/current-template`
annotation (its canonical JSON), written whenever status.currentRevision is the update
revision and read back when it is not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from google.protobuf import json_format

from kemu.api.v1 import apps_pb2, core_pb2, meta_pb2
from kemu.services.controllers import podutil
from kemu.services.controllers.hashing import canonical, compute_hash

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
TEMPLATE_ANNOTATION = "statefulset.kemu.io/current-template"
_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")


# ---- identity -----------------------------------------------------------------------------


def parent_and_ordinal(name: str) -> tuple[str, int]:
    """getParentNameAndOrdinal: ("", -1) when the name has no ordinal suffix."""
    m = _ORDINAL.match(name)
    return (m.group(1), int(m.group(2))) if m else ("", -1)


def is_member(sts: apps_pb2.StatefulSet, pod: core_pb2.Pod) -> bool:
    parent, ordinal = parent_and_ordinal(pod.metadata.name)
    return ordinal >= 0 and parent == sts.metadata.name


def ordinal_of(pod: core_pb2.Pod) -> int:
    return parent_and_ordinal(pod.metadata.name)[1]


def pod_name(sts: apps_pb2.StatefulSet, ordinal: int) -> str:
    return f"{sts.metadata.name}-{ordinal}"


def claim_name(template: core_pb2.PersistentVolumeClaim, sts: apps_pb2.StatefulSet,
               ordinal: int) -> str:
    return f"{template.metadata.name}-{sts.metadata.name}-{ordinal}"


def identity_matches(sts: apps_pb2.StatefulSet, pod: core_pb2.Pod) -> bool:
    """The labels that tie a pod to its ordinal are in place (identityMatches)."""
    return pod.metadata.labels.get(POD_NAME_LABEL) == pod.metadata.name and \
        pod.metadata.labels.get(POD_INDEX_LABEL) == str(ordinal_of(pod))


def set_identity_labels(pod: core_pb2.Pod) -> None:
    """updateIdentity's labels."""
    pod.metadata.labels[POD_NAME_LABEL] = pod.metadata.name
    pod.metadata.labels[POD_INDEX_LABEL] = str(ordinal_of(pod))


def revision_name(sts: apps_pb2.StatefulSet, template: core_pb2.PodTemplateSpec) -> str:
    collisions = sts.status.collision_count if sts.status.HasField("collision_count") else None
    return f"{sts.metadata.name}-{compute_hash(template, collisions)}"


def revision_of(pod: core_pb2.Pod) -> str:
    return pod.metadata.labels.get(REVISION_LABEL, "")


# ---- the current revision's template ----------------------------------------------------


def encode_template(template: core_pb2.PodTemplateSpec) -> str:
    return canonical(template).decode()


def stored_template(sts: apps_pb2.StatefulSet, revision: str
                    ) -> core_pb2.PodTemplateSpec | None:
    """The template kept in the annotation, if it is the one `revision` names."""
    text = sts.metadata.annotations.get(TEMPLATE_ANNOTATION)
    if not text:
        return None
    template = core_pb2.PodTemplateSpec()
    try:
        json_format.Parse(text, template)
    except (json_format.ParseError, json.JSONDecodeError):
        return None
    return template if revision_name(sts, template) == revision else None


# ---- new pods and their claims -------------------------------------------------------------


def claims_for(sts: apps_pb2.StatefulSet, ordinal: int) -> list[core_pb2.PersistentVolumeClaim]:
    """getPersistentVolumeClaims: the claims of one ordinal, labelled with the selector's
    matchLabels; no owner reference (the Retain policy: they outlive pods and the set)."""
    out = []
    for template in sts.spec.volume_claim_templates:
        claim = core_pb2.PersistentVolumeClaim()
        claim.CopyFrom(template)
        claim.metadata.name = claim_name(template, sts, ordinal)
        claim.metadata.namespace = sts.metadata.namespace
        claim.metadata.labels.update(sts.spec.selector.match_labels)
        claim.ClearField("status")
        out.append(claim)
    return out


def _set_storage(sts: apps_pb2.StatefulSet, spec: core_pb2.PodSpec, ordinal: int) -> None:
    """updateStorage: a volume per claim template, replacing a template volume of the
    same name."""
    names = {t.metadata.name for t in sts.spec.volume_claim_templates}
    kept = [v for v in spec.volumes if v.name not in names]
    del spec.volumes[:]
    for template in sts.spec.volume_claim_templates:
        vol = spec.volumes.add(name=template.metadata.name)
        vol.persistent_volume_claim.claim_name = claim_name(template, sts, ordinal)
    spec.volumes.extend(kept)


def new_pod(sts: apps_pb2.StatefulSet, template: core_pb2.PodTemplateSpec, revision: str,
            ordinal: int, ref: meta_pb2.OwnerReference) -> core_pb2.Pod:
    """newVersionedStatefulSetPod: the pod of `ordinal` from `template` at `revision`."""
    pod = core_pb2.Pod()
    m = pod.metadata
    m.name = pod_name(sts, ordinal)
    m.namespace = sts.metadata.namespace
    m.labels.update(template.metadata.labels)
    m.annotations.update(template.metadata.annotations)
    m.finalizers.extend(template.metadata.finalizers)
    m.owner_references.append(ref)
    set_identity_labels(pod)
    m.labels[REVISION_LABEL] = revision
    pod.spec.CopyFrom(template.spec)
    pod.spec.hostname = m.name
    pod.spec.subdomain = sts.spec.service_name
    _set_storage(sts, pod.spec, ordinal)
    return pod


# ---- health and status ----------------------------------------------------------------------


def running_and_ready(pod: core_pb2.Pod) -> bool:
    return pod.status.phase == "Running" and podutil.is_ready(pod)


def running_and_available(pod: core_pb2.Pod, min_ready: int, now: float) -> bool:
    return pod.status.phase == "Running" and podutil.is_available(pod, min_ready, now)


def healthy(pod: core_pb2.Pod) -> bool:
    """isHealthy: running, ready and not terminating."""
    return running_and_ready(pod) and not podutil.is_terminating(pod.metadata)


def finished(pod: core_pb2.Pod) -> bool:
    return pod.status.phase in podutil.TERMINAL_PHASES


def status(sts: apps_pb2.StatefulSet, pods: Iterable[core_pb2.Pod], current: str,
           update: str, now: float) -> apps_pb2.StatefulSetStatus:
    """computeReplicaStatus, then completeRollingUpdate: once every pod is updated and
    ready under a RollingUpdate, the update revision becomes the current one."""
    out = apps_pb2.StatefulSetStatus()
    out.CopyFrom(sts.status)
    out.observed_generation = sts.metadata.generation
    out.replicas = out.ready_replicas = out.available_replicas = 0
    out.current_replicas = out.updated_replicas = 0
    for pod in pods:
        out.replicas += 1
        if running_and_ready(pod):
            out.ready_replicas += 1
            out.available_replicas += running_and_available(pod, sts.spec.min_ready_seconds,
                                                            now)
        if not podutil.is_terminating(pod.metadata):
            out.current_replicas += revision_of(pod) == current
            out.updated_replicas += revision_of(pod) == update
    out.current_revision, out.update_revision = current, update
    if sts.spec.update_strategy.type in ("", "RollingUpdate") and \
            out.updated_replicas == out.replicas == out.ready_replicas:
        out.current_replicas = out.updated_replicas
        out.current_revision = update
    return out
