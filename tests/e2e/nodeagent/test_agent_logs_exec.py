"""Logs and exec through the NodeAgent gRPC service, called directly on the agent's port."""

from __future__ import annotations

import threading

import grpc
import pytest

from kemu.api.v1 import api_pb2, nodeagent_pb2_grpc
from kemu.client import Client
from tests.e2e.nodeagent.helpers import (
    TOOLS_IMAGE,
    AgentHandle,
    create_pod,
    exec_,
    follow_logs,
    logs,
    status_of,
    wait_for,
    wait_pod,
    wait_ready,
)

pytestmark = pytest.mark.e2e


def test_logs_tail_timestamps_and_follow(api: Client, agent: AgentHandle,
                                         namespace: str) -> None:
    create_pod(api, "talk", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE,
         "command": ["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 1; "
                                 "echo oops >&2; trap 'exit 0' TERM; "
                                 "while true; do sleep 1; done"]}])
    wait_ready(api, namespace, "talk")
    out = wait_for(lambda: logs(agent.grpc_address, namespace, "talk")
                   if b"oops" in logs(agent.grpc_address, namespace, "talk") else b"",
                   10, "all lines logged")
    assert out.split() == [b"line1", b"line2", b"line3", b"line4", b"line5", b"oops"]
    assert logs(agent.grpc_address, namespace, "talk", tail_lines=2).split() == [
        b"line5", b"oops"]
    stamped = logs(agent.grpc_address, namespace, "talk", tail_lines=1, timestamps=True)
    stamp, _, text = stamped.decode().partition(" ")
    assert stamp[:4].isdigit() and stamp[10] == "T" and stamp.endswith("Z")
    assert text.strip() == "oops"
    assert logs(agent.grpc_address, namespace, "talk", since_seconds=3600).count(b"line") == 5

    ch, stream = follow_logs(agent.grpc_address, namespace, "talk")
    got = bytearray()
    done = threading.Event()

    def reader() -> None:
        try:
            for chunk in stream:
                got.extend(chunk.data)
                if b"followed" in got:
                    done.set()
                    return
        except grpc.RpcError:
            pass

    threading.Thread(target=reader, daemon=True).start()
    wait_for(lambda: b"oops" in got, 10, "the followed stream to replay the log")
    exec_(agent.grpc_address, namespace, "talk", ["sh", "-c", "echo followed > /proc/1/fd/1"])
    assert done.wait(10), f"follow did not deliver the new line: {bytes(got)!r}"
    stream.cancel()
    ch.close()


def test_logs_previous_instance(api: Client, agent: AgentHandle, namespace: str) -> None:
    create_pod(api, "twice", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE,
         "command": ["sh", "-c", "if [ -f /s/x ]; then echo second; exec sleep 3600; fi; "
                                 "touch /s/x; echo first; exit 1"],
         "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
        volumes=[{"name": "s", "emptyDir": {}}])
    wait_pod(api, namespace, "twice", lambda p: status_of(p, "app") is not None
             and status_of(p, "app").restart_count == 1
             and status_of(p, "app").state.HasField("running"), 20, "one restart")
    wait_for(lambda: logs(agent.grpc_address, namespace, "twice") == b"second\n", 10,
             "the current log")
    assert logs(agent.grpc_address, namespace, "twice", previous=True) == b"first\n"


def test_logs_errors(api: Client, agent: AgentHandle, namespace: str) -> None:
    with grpc.insecure_channel(agent.grpc_address) as ch:
        stub = nodeagent_pb2_grpc.NodeAgentStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Logs(api_pb2.LogsRequest(namespace=namespace, name="nope"), timeout=10))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert err.value.details() == 'pods "nope" not found'
    create_pod(api, "two", namespace, agent.node, [
        {"name": "a", "image": TOOLS_IMAGE, "command": ["sleep", "3600"]},
        {"name": "b", "image": TOOLS_IMAGE, "command": ["sleep", "3600"]}])
    wait_for(lambda: api.get("pods", "two", namespace), 5, "pod")
    wait_ready(api, namespace, "two")
    with grpc.insecure_channel(agent.grpc_address) as ch:
        stub = nodeagent_pb2_grpc.NodeAgentStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Logs(api_pb2.LogsRequest(namespace=namespace, name="two"), timeout=10))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "a container name must be specified for pod two, choose one of: [a b]" in \
            err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Logs(api_pb2.LogsRequest(namespace=namespace, name="two", container="a",
                                               previous=True), timeout=10))
        assert 'previous terminated container "a" in pod "two" not found' in \
            err.value.details()


def test_exec_exit_code_stdin_and_stderr(api: Client, agent: AgentHandle,
                                         namespace: str) -> None:
    create_pod(api, "shell", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": ["sleep", "3600"]}])
    wait_ready(api, namespace, "shell")
    assert exec_(agent.grpc_address, namespace, "shell", ["sh", "-c", "exit 42"])[0] == 42
    code, out, err = exec_(agent.grpc_address, namespace, "shell",
                           ["sh", "-c", "echo out; echo err >&2"])
    assert (code, out, err) == (0, b"out\n", b"err\n")
    code, out, _ = exec_(agent.grpc_address, namespace, "shell", ["sh", "-c", "tr a-z A-Z"],
                         stdin=b"hello stdin\n")
    assert (code, out) == (0, b"HELLO STDIN\n")
    code, out, _ = exec_(agent.grpc_address, namespace, "shell", ["cat"], stdin=b"x" * 200_000)
    assert (code, len(out)) == (0, 200_000)
    code, out, _ = exec_(agent.grpc_address, namespace, "shell", ["sh", "-c", "tty"],
                         tty=True)
    assert code == 0 and out.strip().startswith(b"/dev/pts/")
    code, out, err = exec_(agent.grpc_address, namespace, "shell", ["no-such-binary"])
    assert code != 0


def test_exec_tty_resize(api: Client, agent: AgentHandle, namespace: str) -> None:
    create_pod(api, "term", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": ["sleep", "3600"]}])
    wait_ready(api, namespace, "term")
    # The shell waits for a line on stdin, sent after the resize: no race.
    code, out, _ = exec_(agent.grpc_address, namespace, "term",
                         ["sh", "-c", "read x; stty size"], tty=True, stdin=b"go\n",
                         resize=(123, 45))
    assert code == 0 and b"45 123" in out
