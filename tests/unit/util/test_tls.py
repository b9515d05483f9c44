"""TLS settings from flags, the environment and ~/.kemu/config; the plaintext warning;
incomplete flag combinations refused with one line rather than served in plaintext."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from kemu.cli import kemu_main
from kemu.client.config import resolve_tls
from kemu.util.certs import CertificateAuthority, write_pair
from kemu.util.tls import ClientTLS, ServerTLS, TLSConfigError, server_tls, warn_insecure


def test_config_fields_resolve_relative_to_the_file_and_flags_win(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "kemu" / "config"
    config.parent.mkdir()
    config.write_text("current-cluster: c\nclusters:\n  c:\n    server: 127.0.0.1:1\n"
                      "    certificate-authority: pki/ca.crt\n"
                      "    client-certificate: /abs/admin.crt\n    client-key: admin.key\n")
    monkeypatch.setenv("KEMU_CONFIG", str(config))
    for var in ("KEMU_CERTIFICATE_AUTHORITY", "KEMU_CLIENT_CERTIFICATE", "KEMU_CLIENT_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert resolve_tls() == ClientTLS(config.parent / "pki/ca.crt", Path("/abs/admin.crt"),
                                      config.parent / "admin.key")
    monkeypatch.setenv("KEMU_CERTIFICATE_AUTHORITY", "/env/ca.crt")
    got = resolve_tls(cert="/flag/me.crt", key="/flag/me.key")
    assert got == ClientTLS(Path("/env/ca.crt"), Path("/flag/me.crt"), Path("/flag/me.key"))
    config.write_text("current-cluster: c\nclusters:\n  c:\n    server: 127.0.0.1:1\n")
    monkeypatch.delenv("KEMU_CERTIFICATE_AUTHORITY")
    assert resolve_tls() is None


@pytest.mark.parametrize(("cert", "key", "ca", "error"), [
    pytest.param(None, None, None, None, id="plaintext"),
    pytest.param("c", "k", None, None, id="server-only-tls"),
    pytest.param("c", "k", "ca", None, id="mutual-tls"),
    pytest.param(None, None, "ca", "needs --tls-cert-file", id="ca-without-cert"),
    pytest.param("c", None, None, "go together", id="cert-without-key"),
])
def test_server_flags(cert: str | None, key: str | None, ca: str | None,
                      error: str | None) -> None:
    def p(x: str | None) -> Path | None:
        return Path(x) if x else None
    if error:
        with pytest.raises(TLSConfigError, match=error):
            server_tls(p(cert), p(key), p(ca))
        return
    got = server_tls(p(cert), p(key), p(ca))
    assert (got is None) == (cert is None)
    assert got is None or got.requires_client_cert == bool(ca)


def test_a_client_certificate_without_its_key_is_refused() -> None:
    with pytest.raises(TLSConfigError, match="give both"):
        ClientTLS(Path("ca"), Path("c.crt"), None)


def test_unreadable_or_non_pem_files_name_the_flag(tmp_path: Path) -> None:
    pair = CertificateAuthority.create().pair
    crt, key = write_pair(tmp_path, "x", pair)
    assert isinstance(ServerTLS(crt, key).credentials(), grpc.ServerCredentials)
    with pytest.raises(TLSConfigError, match=r"--tls-private-key-file .*missing"):
        ServerTLS(crt, tmp_path / "missing").credentials()
    (tmp_path / "junk").write_text("hello")
    with pytest.raises(TLSConfigError, match=r"--certificate-authority .*not a PEM"):
        ClientTLS(tmp_path / "junk").credentials()


def test_the_plaintext_warning_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    warn_insecure("store", ["0.0.0.0:2379"], explicit=True)
    err = capsys.readouterr().err
    assert err == ("WARNING: store serving without TLS or authentication (--insecure): "
                   "anyone who can reach 0.0.0.0:2379 has full access\n")


@pytest.mark.parametrize("argv", [
    pytest.param(["apiserver", "--client-ca-file", "ca.crt"], id="apiserver-ca-only"),
    pytest.param(["store", "--client-cert-auth", "--cert-file", "c", "--key-file", "k"],
                 id="store-client-auth-without-ca"),
    pytest.param(["store", "--cert-file", "c"], id="store-cert-without-key"),
])
def test_incomplete_tls_flags_fail_with_one_line(argv: list[str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert kemu_main.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err


@pytest.mark.parametrize(("argv", "needle"), [
    pytest.param(["store", "--data-dir", "d"], "store serves TLS", id="store"),
    pytest.param(["apiserver"], "apiserver serves TLS", id="apiserver"),
    pytest.param(["store", "--data-dir", "d", "--insecure", "--cert-file", "c", "--key-file",
                  "k"], "--insecure contradicts", id="both"),
])
def test_plaintext_needs_insecure(argv: list[str], needle: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert kemu_main.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "--insecure" in err[0], err


def test_an_agent_without_tls_needs_insecure(capsys: pytest.CaptureFixture[str]) -> None:
    from kemu.nodeagent import cli as agent_cli

    assert agent_cli.main(["--apiserver", "127.0.0.1:1", "--node-name", "n",
                           "--node-ip", "127.0.0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--insecure to serve plaintext" in err[0], err


def test_the_store_module_entry_point_needs_insecure_too(
        capsys: pytest.CaptureFixture[str]) -> None:
    from kemu.services.store.__main__ import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--data-dir", "d"])
    assert "store serves TLS" in capsys.readouterr().err
    assert parse_args(["--data-dir", "d", "--insecure"]).tls is None
