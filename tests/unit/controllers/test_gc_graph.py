"""The collector's owner graph: dependents follow ownerReferences by uid, virtual owners
appear for references not yet seen and go with their last dependent, and each change names
the uids the collector must look at."""

from __future__ import annotations

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.services.controllers.gc_graph import FOREGROUND, Graph, Identity


def cm(name: str, uid: str, *owners: tuple[str, str, bool], deleting: str = "",
       ns: str = "ns") -> api_pb2.Object:
    obj = manifest.from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": name, "namespace": ns}})
    m = obj.config_map.metadata
    m.uid = uid
    for owner_name, owner_uid, block in owners:
        m.owner_references.add(api_version="v1", kind="ConfigMap", name=owner_name,
                               uid=owner_uid, block_owner_deletion=block)
    if deleting:
        m.deletion_timestamp.FromSeconds(1)
        m.finalizers.append(deleting)
    return obj


def test_dependent_before_owner_makes_a_virtual_owner_to_verify() -> None:
    g = Graph()
    assert g.upsert(cm("dep", "d1", ("own", "o1", False))) == {"o1"}
    owner = g.get("o1")
    assert owner is not None and not owner.observed
    assert owner.identity == Identity("ConfigMap", "ns", "own", "o1")
    assert g.interesting() == {"o1"}
    assert g.upsert(cm("own", "o1")) == set()
    assert owner.observed and owner.dependents == {"d1"}
    assert g.interesting() == set()


def test_owner_deleted_names_its_dependents_and_remembers_it_absent() -> None:
    g = Graph()
    g.upsert(cm("own", "o1"))
    g.upsert(cm("a", "d1", ("own", "o1", False)))
    g.upsert(cm("b", "d2", ("own", "o1", False)))
    assert g.remove(cm("own", "o1")) == {"d1", "d2"}
    assert Identity("ConfigMap", "ns", "own", "o1") in g.absent
    assert g.get("o1") is None


def test_virtual_owner_goes_with_its_last_reference() -> None:
    g = Graph()
    g.upsert(cm("a", "d1", ("own", "o1", False)))
    g.upsert(cm("a", "d1"))  # the reference was removed
    assert g.get("o1") is None


def test_virtual_gone_only_for_unobserved_owners() -> None:
    g = Graph()
    g.upsert(cm("a", "d1", ("own", "o1", False)))
    assert g.virtual_gone("o1") == {"d1"}
    g.upsert(cm("own", "o2"))
    assert g.virtual_gone("o2") == set()


def test_deleting_owner_is_woken_by_dependent_changes() -> None:
    g = Graph()
    g.upsert(cm("own", "o1", deleting=FOREGROUND))
    g.upsert(cm("a", "d1", ("own", "o1", True)))
    node = g.get("o1")
    assert node is not None and node.deleting_dependents
    dep = g.get("d1")
    assert dep is not None and dep.blocks("o1")
    # blockOwnerDeletion dropped, then the reference, then the dependent: each wakes it.
    assert "o1" in g.upsert(cm("a", "d1", ("own", "o1", False)))
    assert "o1" in g.upsert(cm("a", "d1"))
    g.upsert(cm("a", "d1", ("own", "o1", True)))
    assert "o1" in g.remove(cm("a", "d1"))
    assert node.dependents == set()


def test_cluster_scoped_owner_has_no_namespace() -> None:
    g = Graph()
    lease = manifest.from_dict({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                "metadata": {"name": "n1", "namespace": "kube-node-lease"}})
    lease.lease.metadata.uid = "l1"
    lease.lease.metadata.owner_references.add(api_version="v1", kind="Node", name="n1",
                                              uid="n-uid")
    g.upsert(lease)
    owner = g.get("n-uid")
    assert owner is not None and owner.identity == Identity("Node", "", "n1", "n-uid")
