"""Encryption at rest, as kube-apiserver's `--encryption-provider-config`.

Anyone who can read the store (a backup, a copied data dir, `etcdctl get`) would otherwise
read every Secret. The file is Kubernetes' EncryptionConfiguration: for each list of
resources, an ordered list of providers. The first provider (its first key) encrypts every
write; every listed provider and key may decrypt a read, so keys rotate without downtime:
add the new key first, restart, rewrite every object (`kemuctl get secrets -A -o json |
kemuctl replace -f -`), then drop the old key.

Providers: `aesgcm` (AES-GCM from `cryptography`, a random 12-byte nonce per write) and
`identity` (plain values, so objects written before encryption was turned on still read).
A stored aesgcm value is Kubernetes' `k8s:enc:aesgcm:v1:<key name>:` + nonce + ciphertext
and tag, with the store key as authenticated data: a value copied under another key does
not decrypt. `secretbox`, `aescbc` and `kms` are refused by name.

A read reports whether the value was written by anything but the current writer (stale);
the registry then rewrites an update even when the object is unchanged, as Kubernetes'
GuaranteedUpdate does, which is what makes the replace-everything rotation work.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kemu.api import kinds
from kemu.services.apiserver.errors import APIError

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
ENCRYPTED = b"k8s:enc:"  # every encrypted value starts so; a protobuf value never does
AESGCM_PREFIX = b"k8s:enc:aesgcm:v1:"
NONCE_SIZE = 12
SUPPORTED = ("aesgcm", "identity")
REFUSED = ("aescbc", "secretbox", "kms")


class EncryptionConfigError(ValueError):
    """The encryption provider config file cannot be used."""


class TransformError(APIError):
    """A stored value cannot be decrypted (unknown key, tampered, wrong store key)."""


class Transformer(Protocol):
    """Turns one resource's values between their API form and their stored form."""

    def to_storage(self, data: bytes, key: str) -> bytes: ...

    def from_storage(self, data: bytes, key: str) -> tuple[bytes, bool]:
        """The plain value and whether it was written by anything but the current writer."""
        ...


@dataclass(frozen=True)
class _Entry:
    """One way to read a value: a prefix and what removes it, or identity (no prefix)."""

    name: str  # `aesgcm key1` or `identity`, for messages
    prefix: bytes
    cipher: AESGCM | None  # None: identity


class ProviderChain:
    """The providers of one resources entry, flattened to their keys in order."""

    def __init__(self, entries: list[_Entry]) -> None:
        if not entries:
            raise ValueError("a provider chain needs at least one provider")
        self.entries = entries

    @property
    def writer(self) -> str:
        return self.entries[0].name

    def to_storage(self, data: bytes, key: str) -> bytes:
        first = self.entries[0]
        if first.cipher is None:
            return data
        nonce = os.urandom(NONCE_SIZE)
        return first.prefix + nonce + first.cipher.encrypt(nonce, data, key.encode())

    def from_storage(self, data: bytes, key: str) -> tuple[bytes, bool]:
        if not data.startswith(ENCRYPTED):
            for i, entry in enumerate(self.entries):
                if entry.cipher is None:
                    return data, i != 0
            raise TransformError(f'unable to transform key "{key}": it is stored unencrypted '
                                 "and the encryption config lists no identity provider "
                                 "for it")
        for i, entry in enumerate(self.entries):
            if entry.cipher is not None and data.startswith(entry.prefix):
                sealed = data[len(entry.prefix):]
                try:
                    plain = entry.cipher.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:],
                                                 key.encode())
                except InvalidTag:
                    raise TransformError(
                        f'unable to transform key "{key}": {entry.name} cannot decrypt it '
                        "(tampered, or copied from another key)") from None
                return plain, i != 0
        known = ", ".join(e.name for e in self.entries)
        raise TransformError(f'unable to transform key "{key}": it was encrypted with '
                             f"{describe(data)}, which the encryption config does not list "
                             f"(it has: {known})")


def describe(data: bytes) -> str:
    """`aesgcm key "key1"` for a value stored as `k8s:enc:aesgcm:v1:key1:...`."""
    fields = data.split(b":", 5)
    if len(fields) < 6:
        return "an unknown provider"
    provider, name = fields[2].decode(errors="replace"), fields[4].decode(errors="replace")
    return f'{provider} key "{name}"'


@dataclass(frozen=True)
class EncryptionConfig:
    """The transformers by resource (plural), as the store sees them."""

    by_resource: Mapping[str, ProviderChain]
    source: str = ""

    def for_key(self, key: str) -> ProviderChain | None:
        """The chain for a store key `/registry/<resource>/...`, or None (stored as is)."""
        return self.by_resource.get(resource_of(key))


def resource_of(key: str) -> str:
    parts = key.split("/", 3)
    return parts[2] if len(parts) > 3 and parts[1] == "registry" else ""


def from_storage(config: EncryptionConfig | None, data: bytes, key: str) -> tuple[bytes, bool]:
    """A stored value as the API sees it, and whether it is stale (see the module doc).

    A value under a resource no provider covers is passed through, unless it is encrypted:
    then the error says so instead of handing ciphertext to the decoder."""
    chain = config.for_key(key) if config is not None else None
    if chain is not None:
        return chain.from_storage(data, key)
    if data.startswith(ENCRYPTED):
        raise TransformError(f'unable to transform key "{key}": it was encrypted with '
                             f"{describe(data)}, but no --encryption-provider-config covers "
                             f"{resource_of(key) or 'it'}")
    return data, False


def to_storage(config: EncryptionConfig | None, data: bytes, key: str) -> bytes:
    chain = config.for_key(key) if config is not None else None
    return chain.to_storage(data, key) if chain is not None else data


# ---- the file ------------------------------------------------------------------------------


def load(path: Path) -> EncryptionConfig:
    """Read and check an EncryptionConfiguration file; every problem is one line."""
    where = f"--encryption-provider-config {path}"
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise EncryptionConfigError(f"{where}: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise EncryptionConfigError(f"{where}: not valid YAML{at}") from e
    try:
        return parse(doc, source=str(path))
    except EncryptionConfigError as e:
        raise EncryptionConfigError(f"{where}: {e}") from e


def new_config(*, key_name: str = "key1", resources: tuple[str, ...] = ("secrets",)) -> str:
    """A fresh EncryptionConfiguration (YAML): `resources` encrypted with a new random
    AES-256 key, and identity after it so values written before still read."""
    doc = {"apiVersion": API_VERSION, "kind": KIND, "resources": [{
        "resources": list(resources),
        "providers": [
            {"aesgcm": {"keys": [{"name": key_name,
                                  "secret": base64.b64encode(os.urandom(32)).decode()}]}},
            {"identity": {}}]}]}
    text: str = yaml.safe_dump(doc, sort_keys=False)
    parse(yaml.safe_load(text))  # what is written must be what load() accepts
    return text


def write_new_config(path: Path, **kw: Any) -> None:
    """Write `new_config()` to `path`, readable by its owner only (it holds the key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(new_config(**kw))


def parse(doc: Any, *, source: str = "") -> EncryptionConfig:
    """An EncryptionConfiguration document (already loaded) as an EncryptionConfig."""
    if not isinstance(doc, dict):
        raise EncryptionConfigError(f"expected a {KIND} document")
    if doc.get("kind") != KIND or doc.get("apiVersion") != API_VERSION:
        raise EncryptionConfigError(f"expected apiVersion: {API_VERSION} and kind: {KIND}, "
                                    f"got {doc.get('apiVersion')!r} and {doc.get('kind')!r}")
    entries = doc.get("resources")
    if not isinstance(entries, list) or not entries:
        raise EncryptionConfigError("resources: Required value: at least one entry")
    by_resource: dict[str, ProviderChain] = {}
    for i, entry in enumerate(entries):
        path = f"resources[{i}]"
        if not isinstance(entry, dict):
            raise EncryptionConfigError(f"{path}: expected a mapping with resources and "
                                        "providers")
        chain = _chain(entry.get("providers"), f"{path}.providers")
        names = entry.get("resources")
        if not isinstance(names, list) or not names:
            raise EncryptionConfigError(f"{path}.resources: Required value: at least one "
                                        "resource")
        for j, name in enumerate(names):
            for plural in _resources(name, f"{path}.resources[{j}]"):
                # As Kubernetes: the first entry that names a resource wins (a wildcard
                # after an explicit entry covers only what is left).
                by_resource.setdefault(plural, chain)
    return EncryptionConfig(by_resource, source)


def _resources(name: Any, path: str) -> list[str]:
    """The store resource names (plurals) a config resource name covers."""
    if not isinstance(name, str) or not name:
        raise EncryptionConfigError(f"{path}: Invalid value: {name!r}: expected a resource "
                                    "name such as secrets or deployments.apps")
    if name == "*.*":
        return [k.plural for k in kinds.KINDS]
    if name.startswith("*."):
        group = name[2:]
        found = [k.plural for k in kinds.KINDS if k.group == group]
        if not found:
            raise EncryptionConfigError(f'{path}: Invalid value: "{name}": no resources in '
                                        f'the group "{group}"')
        return found
    try:
        kind = kinds.resolve(name)
    except kinds.UnknownResourceError:
        raise EncryptionConfigError(f'{path}: Invalid value: "{name}": unknown '
                                    "resource") from None
    return [kind.plural]


def _chain(providers: Any, path: str) -> ProviderChain:
    if not isinstance(providers, list) or not providers:
        raise EncryptionConfigError(f"{path}: Required value: at least one provider")
    entries: list[_Entry] = []
    for i, provider in enumerate(providers):
        where = f"{path}[{i}]"
        if not isinstance(provider, dict) or len(provider) != 1:
            raise EncryptionConfigError(f"{where}: exactly one provider type is required "
                                        f"({', '.join(SUPPORTED)})")
        ((kind, body),) = provider.items()
        if kind == "identity":
            entries.append(_Entry("identity", b"", None))
        elif kind == "aesgcm":
            entries.extend(_aesgcm_keys(body, f"{where}.aesgcm"))
        elif kind in REFUSED:
            raise EncryptionConfigError(f"{where}: the {kind} provider is not supported by "
                                        f"kemu (supported: {', '.join(SUPPORTED)})")
        else:
            raise EncryptionConfigError(f"{where}: unknown provider {kind!r} (supported: "
                                        f"{', '.join(SUPPORTED)})")
    return ProviderChain(entries)


def _aesgcm_keys(body: Any, path: str) -> list[_Entry]:
    keys = body.get("keys") if isinstance(body, dict) else None
    if not isinstance(keys, list) or not keys:
        raise EncryptionConfigError(f"{path}.keys: Required value: at least one key")
    out: list[_Entry] = []
    for i, item in enumerate(keys):
        where = f"{path}.keys[{i}]"
        name = item.get("name") if isinstance(item, dict) else None
        secret = item.get("secret") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise EncryptionConfigError(f"{where}.name: Required value")
        if ":" in name:
            raise EncryptionConfigError(f'{where}.name: Invalid value: "{name}": must not '
                                        "contain ':'")
        if any(e.name == f'aesgcm key "{name}"' for e in out):
            raise EncryptionConfigError(f'{where}.name: Duplicate value: "{name}"')
        if not isinstance(secret, str) or not secret:
            raise EncryptionConfigError(f"{where}.secret: Required value")
        try:
            raw = base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            raise EncryptionConfigError(f"{where}.secret: Invalid value: not valid "
                                        "base64") from None
        if len(raw) not in (16, 24, 32):
            raise EncryptionConfigError(f"{where}.secret: Invalid value: the key is "
                                        f"{len(raw)} bytes; aesgcm needs 16, 24 or 32 "
                                        "(32 for AES-256)")
        out.append(_Entry(f'aesgcm key "{name}"', AESGCM_PREFIX + name.encode() + b":",
                          AESGCM(raw)))
    return out
