"""Environment resolution: precedence, $(VAR) expansion, references, service variables."""

from __future__ import annotations

from typing import Any

import pytest

from kemu.api import manifest
from kemu.nodeagent import envs


def obj(doc: dict[str, Any]) -> Any:
    o = manifest.from_dict(doc)
    return getattr(o, o.WhichOneof("kind"))


def pod(env: list[dict[str, Any]] | None = None, env_from: list[dict[str, Any]] | None = None,
        **container: Any) -> Any:
    return obj({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1",
                             "labels": {"app": "web"}},
                "spec": {"nodeName": "node-a", "serviceAccountName": "sa",
                         "containers": [{"name": "c", "image": "i", "env": env or [],
                                         "envFrom": env_from or [], **container}]}})


CONFIGMAPS = {("shop", "cfg"): obj({"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "cfg", "namespace": "shop"},
                                    "data": {"COLOR": "red", "bad key": "x", "1X": "y"}})}
SECRETS = {("shop", "sec"): obj({"apiVersion": "v1", "kind": "Secret",
                                 "metadata": {"name": "sec", "namespace": "shop"},
                                 "stringData": {"pw": "hunter2"}})}
for s in SECRETS.values():  # the apiserver moves stringData into data
    for k, v in s.string_data.items():
        s.data[k] = v.encode()


def resolve(p: Any, **kw: Any) -> dict[str, str]:
    return dict(envs.resolve(p, p.spec.containers[0], configmaps=lambda ns, n: CONFIGMAPS.get(
        (ns, n)), secrets=lambda ns, n: SECRETS.get((ns, n)), host_ip="192.0.2.7",
        pod_ip="10.244.1.9", **kw))


@pytest.mark.parametrize(("text", "values", "expected"), [
    pytest.param("plain", {}, "plain", id="plain"),
    pytest.param("$(A)-$(B)", {"A": "1", "B": "2"}, "1-2", id="two"),
    pytest.param("$(MISSING)", {}, "$(MISSING)", id="unknown-kept"),
    pytest.param("$$(A)", {"A": "1"}, "$(A)", id="escaped"),
    pytest.param("cost $5", {}, "cost $5", id="lone-dollar"),
    pytest.param("$(A", {"A": "1"}, "$(A", id="unclosed"),
])
def test_expand(text: str, values: dict[str, str], expected: str) -> None:
    assert envs.expand(text, values.get) == expected


def test_env_from_then_env_wins_and_expands() -> None:
    p = pod(env=[{"name": "COLOR", "value": "blue"}, {"name": "SHADE", "value": "dark-$(COLOR)"}],
            env_from=[{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "sec"},
                                                          "prefix": "S_"}])
    got = resolve(p)
    assert got["COLOR"] == "blue" and got["SHADE"] == "dark-blue" and got["S_pw"] == "hunter2"
    assert "bad key" not in got and "1X" not in got  # invalid names are skipped


@pytest.mark.parametrize(("path", "expected"), [
    ("metadata.name", "web-1"), ("metadata.namespace", "shop"), ("metadata.uid", "u-1"),
    ("spec.nodeName", "node-a"), ("spec.serviceAccountName", "sa"),
    ("status.podIP", "10.244.1.9"), ("status.hostIP", "192.0.2.7"),
    ("metadata.labels['app']", "web"),
])
def test_field_refs(path: str, expected: str) -> None:
    p = pod(env=[{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": path}}}])
    assert resolve(p)["X"] == expected


@pytest.mark.parametrize(("ref", "message"), [
    pytest.param({"configMapKeyRef": {"name": "nope", "key": "k"}}, 'configmap "nope" not found',
                 id="configmap"),
    pytest.param({"configMapKeyRef": {"name": "cfg", "key": "k"}},
                 "couldn't find key k in ConfigMap shop/cfg", id="configmap-key"),
    pytest.param({"secretKeyRef": {"name": "nope", "key": "k"}}, 'secret "nope" not found',
                 id="secret"),
    pytest.param({"secretKeyRef": {"name": "sec", "key": "k"}},
                 "couldn't find key k in Secret shop/sec", id="secret-key"),
])
def test_missing_references_are_config_errors(ref: dict[str, Any], message: str) -> None:
    with pytest.raises(envs.ConfigError, match=message):
        resolve(pod(env=[{"name": "X", "valueFrom": ref}]))
    optional = {k: {**v, "optional": True} for k, v in ref.items()}
    assert "X" not in resolve(pod(env=[{"name": "X", "valueFrom": optional}]))


def test_missing_env_from_source() -> None:
    with pytest.raises(envs.ConfigError, match='configmap "gone" not found'):
        resolve(pod(env_from=[{"configMapRef": {"name": "gone"}}]))
    assert resolve(pod(env_from=[{"configMapRef": {"name": "gone", "optional": True}}])) == {}


def test_resource_field_ref() -> None:
    p = pod(env=[{"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu",
                                                                    "divisor": "1m"}}},
                 {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                    "divisor": "1Mi"}}}],
            resources={"limits": {"cpu": "500m", "memory": "64Mi"}})
    got = resolve(p)
    assert (got["CPU"], got["MEM"]) == ("500", "64")


def svc(name: str, ip: str, ports: list[dict[str, Any]], type_: str = "ClusterIP") -> Any:
    return obj({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": "shop"},
                "spec": {"clusterIP": ip, "type": type_, "ports": ports}})


def test_service_env_variables() -> None:
    services = [svc("redis-primary", "10.96.0.11", [{"port": 6379, "name": "redis"},
                                                     {"port": 9121, "protocol": "TCP"}]),
                svc("headless", "None", [{"port": 80}])]
    got = envs.service_env(services)
    assert got["REDIS_PRIMARY_SERVICE_HOST"] == "10.96.0.11"
    assert got["REDIS_PRIMARY_SERVICE_PORT"] == "6379"
    assert got["REDIS_PRIMARY_SERVICE_PORT_REDIS"] == "6379"
    assert got["REDIS_PRIMARY_PORT"] == "tcp://10.96.0.11:6379"
    assert got["REDIS_PRIMARY_PORT_9121_TCP"] == "tcp://10.96.0.11:9121"
    assert got["REDIS_PRIMARY_PORT_9121_TCP_ADDR"] == "10.96.0.11"
    assert got["REDIS_PRIMARY_PORT_9121_TCP_PORT"] == "9121"
    assert got["REDIS_PRIMARY_PORT_9121_TCP_PROTO"] == "tcp"
    assert not any(k.startswith("HEADLESS") for k in got)


def test_container_env_overrides_service_env_and_expands_from_it() -> None:
    p = pod(env=[{"name": "DB_SERVICE_HOST", "value": "mine"},
                 {"name": "URL", "value": "redis://$(DB_SERVICE_HOST):$(DB_SERVICE_PORT)"}])
    got = resolve(p, services=[svc("db", "10.96.0.12", [{"port": 5432}])])
    assert got["DB_SERVICE_HOST"] == "mine"
    assert got["URL"] == "redis://mine:5432"


def test_expand_command() -> None:
    assert envs.expand_command(["echo", "$(A)", "$(B)"], [("A", "1")]) == ["echo", "1", "$(B)"]
