"""The encryption-at-rest transformer and its config file, without processes: what is
stored, what reads back, what is stale, and that every failure is one clear message."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from kemu.services.apiserver import encryption
from kemu.services.apiserver.encryption import (
    EncryptionConfig,
    EncryptionConfigError,
    TransformError,
)

KEY = "/registry/secrets/default/db"
PLAIN = b"\x0a\x05plain protobuf bytes"
KEY1 = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(32, 64))).decode()


def config(*providers: dict[str, Any], resources: tuple[str, ...] = ("secrets",)
           ) -> EncryptionConfig:
    return encryption.parse({
        "apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
        "resources": [{"resources": list(resources), "providers": list(providers)}]})


def aesgcm(*keys: tuple[str, str]) -> dict[str, Any]:
    return {"aesgcm": {"keys": [{"name": n, "secret": s} for n, s in keys]}}


IDENTITY: dict[str, Any] = {"identity": {}}


def test_aesgcm_writes_kubernetes_format_with_a_fresh_nonce() -> None:
    cfg = config(aesgcm(("key1", KEY1)), IDENTITY)
    one, two = (encryption.to_storage(cfg, PLAIN, KEY) for _ in range(2))
    assert one.startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert PLAIN not in one
    assert one != two  # a random 12-byte nonce each write
    # prefix + 12-byte nonce + ciphertext + 16-byte tag
    assert len(one) == len(b"k8s:enc:aesgcm:v1:key1:") + 12 + len(PLAIN) + 16
    assert encryption.from_storage(cfg, one, KEY) == (PLAIN, False)


def test_resources_not_listed_are_stored_as_they_are() -> None:
    cfg = config(aesgcm(("key1", KEY1)))
    cm = "/registry/configmaps/default/settings"
    assert encryption.to_storage(cfg, PLAIN, cm) == PLAIN
    assert encryption.from_storage(cfg, PLAIN, cm) == (PLAIN, False)
    assert encryption.to_storage(None, PLAIN, KEY) == PLAIN
    claim = "/registry/ranges/serviceips/10.96.0.1"
    assert encryption.to_storage(config(aesgcm(("k", KEY1)), resources=("*.*",)),
                                 b"uid", claim) == b"uid"


def test_tampering_with_any_byte_fails() -> None:
    cfg = config(aesgcm(("key1", KEY1)))
    sealed = bytearray(encryption.to_storage(cfg, PLAIN, KEY))
    sealed[-5] ^= 0x01
    with pytest.raises(TransformError, match=r'cannot decrypt it \(tampered'):
        encryption.from_storage(cfg, bytes(sealed), KEY)


def test_a_value_copied_to_another_key_fails() -> None:
    cfg = config(aesgcm(("key1", KEY1)))
    sealed = encryption.to_storage(cfg, PLAIN, KEY)
    with pytest.raises(TransformError, match=r'"/registry/secrets/default/other".*copied'):
        encryption.from_storage(cfg, sealed, "/registry/secrets/default/other")


def test_an_unknown_key_is_named() -> None:
    sealed = encryption.to_storage(config(aesgcm(("key1", KEY1))), PLAIN, KEY)
    cfg = config(aesgcm(("key2", KEY2)), IDENTITY)
    with pytest.raises(TransformError) as exc:
        encryption.from_storage(cfg, sealed, KEY)
    assert str(exc.value) == (
        f'unable to transform key "{KEY}": it was encrypted with aesgcm key "key1", which '
        'the encryption config does not list (it has: aesgcm key "key2", identity)')


def test_an_encrypted_value_without_a_config_is_named_not_decoded() -> None:
    sealed = encryption.to_storage(config(aesgcm(("key1", KEY1))), PLAIN, KEY)
    with pytest.raises(TransformError, match='aesgcm key "key1", but no '
                       "--encryption-provider-config covers secrets"):
        encryption.from_storage(None, sealed, KEY)


def test_a_key_with_the_same_name_but_other_bytes_fails() -> None:
    sealed = encryption.to_storage(config(aesgcm(("key1", KEY1))), PLAIN, KEY)
    with pytest.raises(TransformError, match="cannot decrypt"):
        encryption.from_storage(config(aesgcm(("key1", KEY2))), sealed, KEY)


@pytest.mark.parametrize(("written_by", "read_by", "stale"), [
    pytest.param([("key1", KEY1)], [("key1", KEY1)], False, id="current-key"),
    pytest.param([("key1", KEY1)], [("key2", KEY2), ("key1", KEY1)], True, id="older-key"),
    pytest.param([("key2", KEY2)], [("key2", KEY2), ("key1", KEY1)], False, id="new-key"),
])
def test_stale_when_read_by_anything_but_the_writer(
        written_by: list[tuple[str, str]], read_by: list[tuple[str, str]], stale: bool) -> None:
    sealed = encryption.to_storage(config(aesgcm(*written_by)), PLAIN, KEY)
    assert encryption.from_storage(config(aesgcm(*read_by)), sealed, KEY) == (PLAIN, stale)


def test_rotation_across_providers() -> None:
    """[key2, key1] reads key1's values; [key2] alone then reads what was rewritten."""
    old = config(aesgcm(("key1", KEY1)))
    both = config(aesgcm(("key2", KEY2), ("key1", KEY1)))
    new = config(aesgcm(("key2", KEY2)))
    first = encryption.to_storage(old, PLAIN, KEY)
    plain, stale = encryption.from_storage(both, first, KEY)
    assert stale
    rewritten = encryption.to_storage(both, plain, KEY)
    assert rewritten.startswith(b"k8s:enc:aesgcm:v1:key2:")
    assert encryption.from_storage(new, rewritten, KEY) == (PLAIN, False)


def test_identity() -> None:
    after = config(aesgcm(("key1", KEY1)), IDENTITY)
    assert encryption.from_storage(after, PLAIN, KEY) == (PLAIN, True)  # to be encrypted
    before = config(IDENTITY, aesgcm(("key1", KEY1)))  # turning encryption off
    assert encryption.to_storage(before, PLAIN, KEY) == PLAIN
    assert encryption.from_storage(before, PLAIN, KEY) == (PLAIN, False)
    sealed = encryption.to_storage(after, PLAIN, KEY)
    assert encryption.from_storage(before, sealed, KEY) == (PLAIN, True)
    with pytest.raises(TransformError, match="stored unencrypted and the encryption config "
                       "lists no identity provider"):
        encryption.from_storage(config(aesgcm(("key1", KEY1))), PLAIN, KEY)


def test_resource_names_and_wildcards() -> None:
    cfg = config(aesgcm(("k", KEY1)), resources=("secrets", "deployments.apps", "cm"))
    assert set(cfg.by_resource) == {"secrets", "deployments", "configmaps"}
    everything = config(aesgcm(("k", KEY1)), resources=("*.*",))
    assert {"secrets", "pods", "namespaces"} <= set(everything.by_resource)
    apps = config(aesgcm(("k", KEY1)), resources=("*.apps",))
    assert "deployments" in apps.by_resource and "secrets" not in apps.by_resource


def test_the_first_entry_naming_a_resource_wins() -> None:
    cfg = encryption.parse({
        "apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
        "resources": [{"resources": ["secrets"], "providers": [aesgcm(("k", KEY1))]},
                      {"resources": ["*.*"], "providers": [IDENTITY]}]})
    assert encryption.to_storage(cfg, PLAIN, KEY).startswith(b"k8s:enc:aesgcm:v1:k:")
    assert encryption.to_storage(cfg, PLAIN, "/registry/pods/default/p") == PLAIN


GOOD = f"""\
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aesgcm:
          keys:
            - name: key1
              secret: {KEY1}
      - identity: {{}}
"""


def test_load_a_kubernetes_file(tmp_path: Path) -> None:
    path = tmp_path / "enc.yaml"
    path.write_text(GOOD)
    cfg = encryption.load(path)
    assert cfg.source == str(path)
    assert cfg.by_resource["secrets"].writer == 'aesgcm key "key1"'


def _doc(providers: str, resources: str = "[secrets]") -> str:
    return ("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
            f"resources:\n  - resources: {resources}\n    providers: {providers}\n")


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("a: [b", "not valid YAML at line 1", id="yaml"),
    pytest.param("apiVersion: v1\nkind: ConfigMap\n", "expected apiVersion: "
                 "apiserver.config.k8s.io/v1 and kind: EncryptionConfiguration", id="kind"),
    pytest.param("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n",
                 "resources: Required value", id="no-resources"),
    pytest.param(_doc("[]"), "resources[0].providers: Required value", id="no-providers"),
    pytest.param(_doc("[{identity: {}}]", "[]"), "resources[0].resources: Required value",
                 id="no-resource-names"),
    pytest.param(_doc("[{identity: {}}]", "[secretz]"),
                 'resources[0].resources[0]: Invalid value: "secretz": unknown resource',
                 id="unknown-resource"),
    pytest.param(_doc("[{secretbox: {keys: [{name: k, secret: x}]}}]"),
                 "the secretbox provider is not supported by kemu (supported: aesgcm, "
                 "identity)", id="secretbox"),
    pytest.param(_doc("[{rot13: {}}]"), "unknown provider 'rot13'", id="unknown-provider"),
    pytest.param(_doc("[{aesgcm: {keys: []}}]"),
                 "providers[0].aesgcm.keys: Required value", id="no-keys"),
    pytest.param(_doc("[{aesgcm: {keys: [{name: k1, secret: '%%%'}]}}]"),
                 "keys[0].secret: Invalid value: not valid base64", id="base64"),
    pytest.param(_doc("[{aesgcm: {keys: [{name: k1, secret: c2hvcnQ=}]}}]"),
                 "keys[0].secret: Invalid value: the key is 5 bytes; aesgcm needs 16, 24 or "
                 "32", id="key-length"),
    pytest.param(_doc(f"[{{aesgcm: {{keys: [{{name: k1, secret: {KEY1}}}, "
                      f"{{name: k1, secret: {KEY2}}}]}}}}]"),
                 'keys[1].name: Duplicate value: "k1"', id="duplicate-key"),
    pytest.param(_doc(f"[{{aesgcm: {{keys: [{{name: 'a:b', secret: {KEY1}}}]}}}}]"),
                 "must not contain ':'", id="colon"),
    pytest.param(_doc("[{identity: {}, aesgcm: {}}]"), "exactly one provider type",
                 id="two-in-one"),
])
def test_bad_files_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "enc.yaml"
    path.write_text(text)
    with pytest.raises(EncryptionConfigError) as exc:
        encryption.load(path)
    assert str(exc.value).startswith(f"--encryption-provider-config {path}: ")
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EncryptionConfigError, match="No such file or directory"):
        encryption.load(tmp_path / "absent.yaml")


def test_kemu_apiserver_refuses_a_bad_file_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kemu.cli import kemu_main

    path = tmp_path / "enc.yaml"
    path.write_text(_doc("[{aescbc: {}}]"))
    assert kemu_main.main(["apiserver", "--encryption-provider-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: --encryption-provider-config {path}: resources[0].providers[0]: "
                   "the aescbc provider is not supported by kemu (supported: aesgcm, "
                   "identity)\n")


def test_a_new_config_encrypts_secrets_with_its_own_key(tmp_path: Path) -> None:
    path = tmp_path / "pki" / "encryption.yaml"
    encryption.write_new_config(path)
    assert path.stat().st_mode & 0o777 == 0o600, "it holds the key: owner only"
    config = encryption.load(path)
    stored = encryption.to_storage(config, b"value", "/registry/secrets/default/s")
    assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:") and b"value" not in stored
    assert encryption.from_storage(config, stored, "/registry/secrets/default/s") == \
        (b"value", False)
    assert encryption.to_storage(config, b"v", "/registry/configmaps/default/c") == b"v"
    other = tmp_path / "other.yaml"
    encryption.write_new_config(other)
    assert other.read_text() != path.read_text(), "every config has a fresh key"
    with pytest.raises(FileExistsError):
        encryption.write_new_config(path)  # never overwrites a key in use
