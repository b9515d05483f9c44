"""~/.kemu/config: which cluster kemuctl talks to, written by `kemu up`.

Resolution order for the server address, as kubectl's for its cluster: `--server`, then
the KEMU_SERVER environment variable, then the current cluster in the config file
(KEMU_CONFIG names another file). The bearer token for an apiserver started with
`--token-file` resolves the same way: `--token`, KEMU_TOKEN, the current cluster's `token:`.
So does TLS, as kubeconfig's fields: `--certificate-authority` / KEMU_CERTIFICATE_AUTHORITY /
`certificate-authority:`, and likewise `client-certificate` and `client-key`; paths in the
file are relative to the file's directory, as kubectl reads them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kemu.util.tls import ENV_CA, ENV_CERT, ENV_KEY, ClientTLS

DEFAULT_SERVER = "127.0.0.1:6443"


class ConfigError(ValueError):
    """The config file exists but cannot be used."""


def config_path() -> Path:
    return Path(os.environ.get("KEMU_CONFIG") or Path.home() / ".kemu" / "config")


@dataclass(frozen=True)
class ClusterEntry:
    name: str
    server: str
    store: str = ""
    token: str = ""
    certificate_authority: str = ""
    client_certificate: str = ""
    client_key: str = ""


def load(path: Path | None = None) -> dict[str, Any]:
    path = path or config_path()
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def current_cluster(path: Path | None = None) -> ClusterEntry | None:
    data = load(path)
    name = data.get("current-cluster")
    clusters = data.get("clusters") or {}
    entry = clusters.get(name) if isinstance(clusters, dict) else None
    if not isinstance(entry, dict) or not entry.get("server"):
        return None
    base = (path or config_path()).parent

    def file(field: str) -> str:
        value = str(entry.get(field) or "")  # type: ignore[union-attr]
        return str(base / value) if value else ""

    return ClusterEntry(str(name), str(entry["server"]), str(entry.get("store", "")),
                        str(entry.get("token") or ""), file("certificate-authority"),
                        file("client-certificate"), file("client-key"))


def _resolve(flag: str | None, env: str, field: str) -> str:
    """The flag, then the environment variable, then the current cluster's entry."""
    if flag:
        return flag
    value = os.environ.get(env)
    if value:
        return value
    entry = current_cluster()
    return str(getattr(entry, field)) if entry else ""


def resolve_server(flag: str | None) -> str:
    return _resolve(flag, "KEMU_SERVER", "server") or DEFAULT_SERVER


def resolve_token(flag: str | None) -> str:
    """The bearer token to send, or "" for none."""
    return _resolve(flag, "KEMU_TOKEN", "token")


def resolve_tls(ca: str | Path | None = None, cert: str | Path | None = None,
                key: str | Path | None = None) -> ClientTLS | None:
    """TLS to the apiserver from the flags, else the environment, else the current
    cluster's entry; each of the three files resolves on its own, as kubectl's."""
    tls = ClientTLS.of(_resolve(str(ca) if ca else None, ENV_CA, "certificate_authority"),
                       _resolve(str(cert) if cert else None, ENV_CERT, "client_certificate"),
                       _resolve(str(key) if key else None, ENV_KEY, "client_key"))
    return tls


def save_cluster(entry: ClusterEntry, path: Path | None = None) -> Path:
    """Add or replace a cluster entry and make it current."""
    path = path or config_path()
    data = load(path)
    clusters = data.setdefault("clusters", {})
    clusters[entry.name] = {"server": entry.server,
                            **({"store": entry.store} if entry.store else {}),
                            **({"token": entry.token} if entry.token else {}),
                            **{k: v for k, v in (
                                ("certificate-authority", entry.certificate_authority),
                                ("client-certificate", entry.client_certificate),
                                ("client-key", entry.client_key)) if v}}
    data["current-cluster"] = entry.name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    tmp.replace(path)
    return path


def remove_cluster(name: str, path: Path | None = None) -> None:
    path = path or config_path()
    data = load(path)
    clusters = data.get("clusters") or {}
    clusters.pop(name, None)
    if data.get("current-cluster") == name:
        data["current-cluster"] = next(iter(clusters), None)
    if path.exists():
        path.write_text(yaml.safe_dump(data, sort_keys=False))
