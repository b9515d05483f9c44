"""delete by name, TYPE/NAME, -l, --all and -f, with kubectl's output and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.kemuctl.conftest import Kemuctl

pytestmark = pytest.mark.integration


def make(ctl: Kemuctl, ns: str, *names: str, tier: str = "web") -> None:
    docs = [f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\n  labels: {{tier: {tier}}}\n"
            for n in names]
    ctl.ok("apply", "-n", ns, "-f", "-", stdin="---\n".join(docs))


def names(ctl: Kemuctl, ns: str) -> list[str]:
    return sorted(ctl.ok("get", "cm", "-n", ns, "-o", "name").out.split())


@pytest.mark.parametrize(("args", "printed", "left"), [
    pytest.param(["cm", "a", "b"], ['configmap "a" deleted', 'configmap "b" deleted'], ["c", "d"],
                 id="names"),
    pytest.param(["configmap/a", "cm/c"], ['configmap "a" deleted', 'configmap "c" deleted'],
                 ["b", "d"], id="type-slash-name"),
    pytest.param(["cm", "-l", "tier=db"], ['configmap "c" deleted', 'configmap "d" deleted'],
                 ["a", "b"], id="selector"),
    pytest.param(["cm", "--all"], [f'configmap "{n}" deleted' for n in "abcd"], [], id="all"),
])
def test_delete(ctl: Kemuctl, ns: str, args: list[str], printed: list[str],
                left: list[str]) -> None:
    make(ctl, ns, "a", "b")
    make(ctl, ns, "c", "d", tier="db")
    result = ctl.ok("delete", "-n", ns, *args)
    assert result.lines == printed
    assert names(ctl, ns) == [f"configmap/{n}" for n in left]


def test_delete_from_file(ctl: Kemuctl, ns: str, tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text((Path(__file__).resolve().parents[3] / "examples" / "web.yaml").read_text())
    ctl.ok("apply", "-n", ns, "-f", str(path))
    result = ctl.ok("delete", "-n", ns, "-f", str(path))
    assert result.lines == ['deployment.apps "web" deleted', 'service "web" deleted']
    assert ctl("get", "deploy,svc", "-n", ns).err_lines == [
        f"No resources found in {ns} namespace."]


def test_not_found(ctl: Kemuctl, ns: str) -> None:
    result = ctl("delete", "deploy", "nope", "-n", ns)
    assert result.code == 1
    assert result.err_lines == ['Error from server (NotFound): deployments.apps "nope" not found']
    quiet = ctl("delete", "deploy", "nope", "-n", ns, "--ignore-not-found")
    assert (quiet.code, quiet.out, quiet.err) == (0, "", "")


def test_type_without_name_or_selector_is_refused(ctl: Kemuctl, ns: str) -> None:
    make(ctl, ns, "keep")
    result = ctl("delete", "cm", "-n", ns)
    assert result.code == 1 and len(result.err_lines) == 1
    assert "no name was specified" in result.err
    assert names(ctl, ns) == ["configmap/keep"]


@pytest.mark.parametrize(("cascade", "finalizer"), [
    pytest.param("orphan", "orphan", id="orphan"),
    pytest.param("false", "orphan", id="legacy-false"),
    pytest.param("foreground", "foregroundDeletion", id="foreground"),
])
def test_cascade_policies_reach_the_server(ctl: Kemuctl, ns: str, cascade: str,
                                           finalizer: str) -> None:
    # No garbage collector runs in this cluster, so the finalizer the policy adds stays.
    make(ctl, ns, "held")
    ctl.ok("delete", "cm", "held", "-n", ns, f"--cascade={cascade}")
    finalizers = ctl.ok("get", "cm", "held", "-n", ns, "-o",
                        "jsonpath={.metadata.finalizers}").out
    assert finalizer in finalizers


def test_bad_cascade(ctl: Kemuctl, ns: str) -> None:
    result = ctl("delete", "cm", "x", "-n", ns, "--cascade=sideways")
    assert result.code == 1
    assert result.err_lines == ['error: invalid cascade value (sideways). Must be "background", '
                                '"foreground", or "orphan"']


def test_protected_namespace(ctl: Kemuctl) -> None:
    result = ctl("delete", "ns", "default")
    assert result.code == 1
    assert result.err_lines == ['Error from server (Forbidden): namespaces "default" is '
                                "forbidden: this namespace may not be deleted"]
