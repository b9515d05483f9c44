"""`kemu apiserver --encryption-provider-config`: Secrets encrypted in the store, checked
as an attacker with the store would look (the real etcdctl), and as a user would rotate keys
(kemuctl get | kemuctl replace, restarting the apiserver between configs)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from kemu.api import manifest
from kemu.api.etcd import rpc_pb2, rpc_pb2_grpc
from kemu.api.v1 import api_pb2
from kemu.client import Client
from kemu.client.errors import ClientError
from tests.support import processes

pytestmark = pytest.mark.integration
PREFIX = b"k8s:enc:aesgcm:v1:"
KEYS = {name: base64.b64encode(os.urandom(32)).decode() for name in ("key1", "key2")}


def write_config(tmp: Path, *keys: str, identity: bool = False) -> Path:
    """An EncryptionConfiguration for secrets: aesgcm with `keys` in order, then identity."""
    providers = [{"aesgcm": {"keys": [{"name": k, "secret": KEYS[k]} for k in keys]}}]
    if identity:
        providers.append({"identity": {}})
    path = tmp / f"enc-{'-'.join(keys)}{'-identity' if identity else ''}.yaml"
    path.write_text(json.dumps({  # JSON is YAML: the file goes through PyYAML as any other
        "apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
        "resources": [{"resources": ["secrets"], "providers": providers}]}))
    return path


def etcdctl(store: str, *args: str) -> bytes:
    res = subprocess.run(["etcdctl", "--endpoints", store, "--dial-timeout", "5s", *args],
                         capture_output=True, timeout=30, env={**os.environ, "ETCDCTL_API": "3"},
                         check=False)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    return res.stdout


def raw(store: str, key: str) -> bytes:
    """The stored value of `key`, as etcdctl reads it."""
    kvs = json.loads(etcdctl(store, "get", key, "-w", "json")).get("kvs", [])
    assert len(kvs) == 1, f"{key} not in the store"
    return base64.b64decode(kvs[0]["value"])


def assert_nowhere(store: str, plain: bytes) -> None:
    """Neither the value nor its base64 form (as in a manifest) is anywhere in the store,
    in etcdctl's plain output or in its JSON (where values are base64 themselves)."""
    text = etcdctl(store, "get", "--prefix", "/registry")
    as_json = etcdctl(store, "get", "--prefix", "/registry", "-w", "json")
    for form in (plain, base64.b64encode(plain)):
        assert form not in text
        assert form not in as_json
        assert base64.b64encode(form) not in as_json
    for kv in json.loads(as_json)["kvs"]:
        value = base64.b64decode(kv["value"])
        assert plain not in value and base64.b64encode(plain) not in value


def secret(name: str, ns: str, value: bytes) -> api_pb2.Object:
    return manifest.from_dict({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                               "metadata": {"name": name, "namespace": ns},
                               "data": {"password": base64.b64encode(value).decode()}})


def new_namespace(api: Client, name: str) -> None:
    api.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": name}}))


class Cluster:
    """One store kept across apiserver restarts with different encryption configs."""

    def __init__(self, tmp: Path, store: processes.Proc) -> None:
        self.tmp, self.store = tmp, store
        self.restarts = 0

    @contextlib.contextmanager
    def apiserver(self, config: Path | None) -> Iterator[Client]:
        self.restarts += 1
        extra = ("--encryption-provider-config", str(config)) if config else ()
        proc = processes.kemu_apiserver(self.tmp, self.store.address,
                                        name=f"apiserver-{self.restarts}", extra=extra)
        with processes.running(proc), Client(proc.address, timeout=15) as api:
            api.address = proc.address  # type: ignore[attr-defined]
            yield api


@pytest.fixture(params=["kemu-store", "etcd"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    store = processes.kemu_store(tmp_path) if request.param == "kemu-store" \
        else processes.etcd(tmp_path)
    with processes.running(store):
        yield Cluster(tmp_path, store)


def first_event(api: Client, resource: str, ns: str, rv: str, want: int
                ) -> api_pb2.WatchEvent:
    for event in api.watch(resource, ns, resource_version=rv, timeout=15):
        if event.type == want:
            return event
    raise AssertionError(f"no watch event {want} on {resource} in {ns} from rv {rv}")


def test_secrets_are_encrypted_in_the_store_and_read_back_intact(cluster: Cluster) -> None:
    store = cluster.store.address
    plain = f"hunter2-{uuid.uuid4().hex}".encode()
    visible = f"not-a-secret-{uuid.uuid4().hex}"
    with cluster.apiserver(write_config(cluster.tmp, "key1", identity=True)) as api:
        new_namespace(api, "enc")
        rv = api.list("secrets", "enc").resource_version
        created = api.create(secret("db", "enc", plain))
        api.create(manifest.from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {"name": "settings", "namespace": "enc"},
                                       "data": {"note": visible}}))

        stored = raw(store, "/registry/secrets/enc/db")
        assert stored.startswith(PREFIX + b"key1:")
        assert_nowhere(store, plain)
        assert visible.encode() in raw(store, "/registry/configmaps/enc/settings")

        assert api.get("secrets", "db", "enc").secret.data["password"] == plain
        items = api.list("secrets", "enc").items
        assert [i.secret.data["password"] for i in items] == [plain]
        added = first_event(api, "secrets", "enc", rv, api_pb2.WatchEvent.ADDED)
        assert added.object.secret.data["password"] == plain

        # An update writes a new ciphertext (fresh nonce), which the watch decrypts too.
        changed = api.get("secrets", "db", "enc")
        changed.secret.metadata.labels["tier"] = "db"
        api.update(changed)
        assert raw(store, "/registry/secrets/enc/db") != stored
        modified = first_event(api, "secrets", "enc", created.secret.metadata.resource_version,
                               api_pb2.WatchEvent.MODIFIED)
        assert modified.object.secret.data["password"] == plain
        assert modified.object.secret.metadata.labels["tier"] == "db"
        assert_nowhere(store, plain)

        # The store key is the authenticated data: the value copied under another name
        # does not decrypt, and says why.
        with grpc.insecure_channel(store) as ch:
            rpc_pb2_grpc.KVStub(ch).Put(rpc_pb2.PutRequest(
                key=b"/registry/secrets/enc/copy", value=raw(store, "/registry/secrets/enc/db")),
                timeout=10)
        with pytest.raises(ClientError) as exc:
            api.get("secrets", "copy", "enc")
        assert exc.value.code == grpc.StatusCode.INTERNAL
        assert '"/registry/secrets/enc/copy"' in str(exc.value)
        assert "copied from another key" in str(exc.value)
        etcdctl(store, "del", "/registry/secrets/enc/copy")
        # The watch cache recovers once the bad value is gone.
        processes.wait_for(lambda: _watch_works(api), 30, "the secrets watch to recover")


def _watch_works(api: Client) -> bool:
    try:
        first_event(api, "secrets", "enc", "", api_pb2.WatchEvent.ADDED)
    except ClientError:
        return False
    return True


def kemuctl(api: Client, *args: str, stdin: str | None = None
            ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KEMU_TOKEN"}
    env["KEMU_CONFIG"] = os.devnull
    return subprocess.run([sys.executable, "-m", "kemu.cli.kemuctl",
                           "-s", api.address, *args],  # type: ignore[attr-defined]
                          input=stdin, capture_output=True, text=True, timeout=60, env=env,
                          check=False)


def replace_all_secrets(api: Client) -> None:
    """kubectl's rotation step: `get secrets -A -o json | replace -f -`."""
    got = kemuctl(api, "get", "secrets", "-A", "-o", "json")
    assert got.returncode == 0, got.stderr
    replaced = kemuctl(api, "replace", "-f", "-", stdin=got.stdout)
    assert replaced.returncode == 0, replaced.stderr


SECRETS = [("rot-a", "s1"), ("rot-b", "s2")]


def versions(api: Client) -> dict[str, str]:
    return {i.secret.metadata.name: i.secret.metadata.resource_version
            for i in api.list("secrets").items}


def check_all(api: Client, values: dict[str, bytes]) -> None:
    """Every secret reads back by get, list and watch."""
    for ns, name in [*SECRETS, ("rot-a", "s3")]:
        if name in values:
            assert api.get("secrets", name, ns).secret.data["password"] == values[name]
    listed = {i.secret.metadata.name: i.secret.data["password"]
              for i in api.list("secrets").items}
    assert listed == values
    watched = {}
    for event in api.watch("secrets", timeout=10):
        watched[event.object.secret.metadata.name] = event.object.secret.data["password"]
        if len(watched) == len(values):
            break
    assert watched == values


def keys_in_store(store: str) -> dict[str, bytes]:
    """The key name (or b"plain") each stored secret was written with."""
    out = {}
    for kv in json.loads(etcdctl(store, "get", "--prefix", "/registry/secrets/",
                                 "-w", "json")).get("kvs", []):
        value = base64.b64decode(kv["value"])
        name = base64.b64decode(kv["key"]).decode().rsplit("/", 1)[1]
        out[name] = value[len(PREFIX):].split(b":", 1)[0] if value.startswith(PREFIX) \
            else b"plain"
    return out


def test_turn_on_and_rotate_keys_with_kemuctl_replace(cluster: Cluster) -> None:
    store, tmp = cluster.store.address, cluster.tmp
    values = {name: f"{name}-{uuid.uuid4().hex}".encode() for _, name in SECRETS}
    values["s3"] = f"s3-{uuid.uuid4().hex}".encode()

    # 0. No encryption yet: secrets are stored as they are.
    with cluster.apiserver(None) as api:
        for ns, name in SECRETS:
            new_namespace(api, ns)
            api.create(secret(name, ns, values[name]))
    assert keys_in_store(store) == {"s1": b"plain", "s2": b"plain"}

    # 1. Encryption on, identity kept to read the old values; the replace encrypts them,
    #    as an update that changes nothing still rewrites a stale value.
    with cluster.apiserver(write_config(tmp, "key1", identity=True)) as api:
        check_all(api, {n: values[n] for n in ("s1", "s2")})
        before = versions(api)
        replace_all_secrets(api)
        after = versions(api)
        assert all(after[n] != before[n] for n in before), (before, after)
        api.create(secret("s3", "rot-a", values["s3"]))
        check_all(api, values)
    assert keys_in_store(store) == {"s1": b"key1", "s2": b"key1", "s3": b"key1"}
    for value in values.values():
        assert_nowhere(store, value)

    # A config that lost key1 starts and serves everything else; the secrets fail, naming
    # the key, instead of decoding garbage.
    with cluster.apiserver(write_config(tmp, "key2")) as api:
        with pytest.raises(ClientError) as exc:
            api.get("secrets", "s1", "rot-a")
        assert exc.value.code == grpc.StatusCode.INTERNAL
        assert 'encrypted with aesgcm key "key1"' in str(exc.value)
        with pytest.raises(ClientError, match='aesgcm key "key1"'):
            api.list("secrets")
        with pytest.raises(ClientError, match='aesgcm key "key1"'):
            list(api.watch("secrets", timeout=10))
        got = kemuctl(api, "get", "secret", "s1", "-n", "rot-a")
        assert got.returncode == 1
        assert len(got.stderr.strip().splitlines()) == 1 and '"key1"' in got.stderr
        assert {"rot-a", "rot-b"} <= {i.namespace.metadata.name
                                      for i in api.list("namespaces").items}

    # 2. The new key first, the old one still listed: old values read, the replace moves
    #    every secret to key2.
    with cluster.apiserver(write_config(tmp, "key2", "key1")) as api:
        check_all(api, values)
        replace_all_secrets(api)
        check_all(api, values)
    assert keys_in_store(store) == {"s1": b"key2", "s2": b"key2", "s3": b"key2"}

    # 3. The old key removed: everything still reads; a replace now changes nothing, and
    #    keeps every resourceVersion (no stale value, so a no-op is a no-op).
    with cluster.apiserver(write_config(tmp, "key2")) as api:
        check_all(api, values)
        before = versions(api)
        replace_all_secrets(api)
        assert versions(api) == before
    for value in values.values():
        assert_nowhere(store, value)


def test_a_bad_config_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    bad = tmp_path / "enc.yaml"
    bad.write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
                   "resources:\n  - resources: [secrets]\n    providers:\n"
                   "      - aesgcm: {keys: [{name: key1, secret: c2hvcnQ=}]}\n")
    res = subprocess.run([sys.executable, "-m", "kemu.cli.kemu_main", "apiserver",
                          "--listen", f"127.0.0.1:{processes.free_port()}",
                          "--encryption-provider-config", str(bad)],
                         capture_output=True, text=True, timeout=30, check=False)
    assert res.returncode == 1
    assert res.stderr == (f"error: --encryption-provider-config {bad}: resources[0]."
                          "providers[0].aesgcm.keys[0].secret: Invalid value: the key is 5 "
                          "bytes; aesgcm needs 16, 24 or 32 (32 for AES-256)\n")


def test_watchers_get_the_error_when_a_bad_value_arrives(cluster: Cluster) -> None:
    """An open watch on secrets ends with the transform error (not a silent stall) when a
    value it cannot decrypt is written behind the apiserver's back."""
    store = cluster.store.address
    with cluster.apiserver(write_config(cluster.tmp, "key1")) as api:
        api.create(secret("real", "default", b"value"))
        errors: list[ClientError] = []
        watching = threading.Event()

        def watch() -> None:
            try:
                for _ in api.watch("secrets", "default", timeout=20):
                    watching.set()  # the ADDED of "real": the watch is open
            except ClientError as e:
                errors.append(e)
        t = threading.Thread(target=watch)
        t.start()
        assert watching.wait(15)
        with grpc.insecure_channel(store) as ch:
            rpc_pb2_grpc.KVStub(ch).Put(rpc_pb2.PutRequest(
                key=b"/registry/secrets/default/forged",
                value=PREFIX + b"key9:" + os.urandom(40)), timeout=10)
        t.join(30)
        assert not t.is_alive()
        assert errors and errors[0].code == grpc.StatusCode.INTERNAL
        assert 'aesgcm key "key9"' in str(errors[0])
