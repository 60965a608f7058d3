"""The plugin as containerd runs it: the real `vpcnet-cni` console script is exec'd with CNI_*
env + the network configuration on stdin; JSON on stdout, the spec's exit codes.

The daemons here (cni_testlib.FakeHttpDaemon / SilentDaemon) are stand-ins for the TRANSPORT
only (HTTP/1.1 over a unix socket, time-outs, malformed answers); they contain no CNI logic.
"""
from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys

import pytest

from cni_testlib import (CID, COMMANDS, PREV_RESULT, VERSIONS, FakeHttpDaemon, SilentDaemon, allowed, exec_plugin,
                         make_config, make_env, one_json, plugin_cmd)
from vpcnet.cni import spec


@pytest.fixture
def http_daemon(sockdir):
    daemon = FakeHttpDaemon(sockdir / "cni.sock")
    yield daemon
    daemon.close()


def env_for(command: str, sock, **override) -> dict:
    return dict(make_env(command, **override), VPCNET_CNI_SOCKET=str(sock))


# --------------------------------------------------------------------------------------------
def test_the_console_script_is_what_we_exec():
    assert plugin_cmd()[0].endswith("/vpcnet-cni")


def test_plugin_imports_only_the_standard_library():
    probe = ("import sys; before = set(sys.modules); import vpcnet.cni.plugin; "
             "print(sorted(set(sys.modules) - before))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    new = json.loads(done.stdout.replace("'", '"'))
    ours = {m for m in new if m == "vpcnet" or m.startswith("vpcnet.")}
    assert ours == {"vpcnet", "vpcnet.cni", "vpcnet.cni.spec", "vpcnet.cni.plugin"}
    foreign = [m for m in new if m not in ours and m.split(".")[0] not in sys.stdlib_module_names]
    assert foreign == []
    heavy = {"http", "email", "ssl", "asyncio", "logging", "subprocess", "urllib", "ipaddress", "socket", "eventlet"}
    assert heavy.isdisjoint(m.split(".")[0] for m in new), new


def test_python_dash_m_entry_point_works_too():
    done = subprocess.run([sys.executable, "-m", "vpcnet.cni.plugin"], input=b'{"cniVersion": "0.3.1"}',
                          capture_output=True, env={"PATH": "/usr/bin:/bin", "CNI_COMMAND": "VERSION"})
    assert done.returncode == 0 and one_json(done.stdout.decode())["cniVersion"] == "0.3.1"


@pytest.mark.parametrize("version", VERSIONS)
def test_version_for_every_version(version):
    rc, out, err, _ = exec_plugin({"CNI_COMMAND": "VERSION"}, {"cniVersion": version})
    assert rc == 0 and err == ""
    assert one_json(out) == {"cniVersion": version, "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}


def test_version_with_empty_stdin_and_with_garbage():
    rc, out, _, _ = exec_plugin({"CNI_COMMAND": "VERSION"}, b"")
    assert rc == 0 and one_json(out)["cniVersion"] == "1.1.0"
    rc, out, _, _ = exec_plugin({"CNI_COMMAND": "VERSION"}, "{not json")
    assert rc == 1 and one_json(out)["code"] == 6


def test_local_validation_errors_never_reach_the_daemon(http_daemon):
    cases = [
        ({"CNI_COMMAND": "FROB"}, make_config("ADD"), 4, "CNI_COMMAND"),
        (make_env("ADD", CNI_IFNAME="x" * 16), make_config("ADD"), 4, "CNI_IFNAME"),
        (make_env("ADD", CNI_CONTAINERID="-bad id"), make_config("ADD"), 4, "CNI_CONTAINERID"),
        (make_env("ADD", CNI_NETNS=None), make_config("ADD"), 4, "CNI_NETNS"),
        (make_env("ADD", CNI_ARGS="K8S_POD_NAMESPACE=trading"), make_config("ADD"), 4, "K8S_POD_NAME"),
        (make_env("ADD"), "{not json", 6, "decode"),
        (make_env("ADD"), make_config("ADD", "9.9.9"), 1, "9.9.9"),
        (make_env("CHECK"), make_config("CHECK", "0.3.1"), 1, "CHECK"),
        (make_env("ADD"), make_config("ADD", name=None), 7, '"name"'),
    ]
    for env, stdin, code, word in cases:
        rc, out, err, _ = exec_plugin(dict(env, VPCNET_CNI_SOCKET=str(http_daemon.path)), stdin)
        doc = one_json(out)
        assert rc == 1 and doc["code"] == code and word in doc["msg"], (env, doc)
        assert set(doc) == {"cniVersion", "code", "msg", "details"}
        assert "error" in err                          # one log line on stderr
    assert http_daemon.requests == []


# --------------------------------------------------------------------------------------------
# the daemon is missing / refusing / hanging: code 11, promptly
def test_missing_daemon_socket_is_code_11_quickly(sockdir):
    sock = sockdir / "absent.sock"
    rc, out, _, took = exec_plugin(env_for("ADD", sock), make_config("ADD"))
    doc = one_json(out)
    assert rc == 1 and doc["code"] == spec.ERR_TRY_AGAIN
    assert doc["msg"] == f"vpcnet node daemon socket {sock} does not exist"
    assert doc["cniVersion"] == "1.1.0"
    assert took < 5


def test_stale_socket_file_is_code_11_refused(sockdir):
    sock = sockdir / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(sock))
    s.close()                                          # the file stays, nobody listens
    rc, out, _, took = exec_plugin(env_for("DEL", sock), make_config("DEL", "0.4.0"))
    doc = one_json(out)
    assert rc == 1 and doc["code"] == 11 and doc["msg"] == f"vpcnet node daemon at {sock} refused the connection"
    assert doc["cniVersion"] == "0.4.0" and took < 5


@pytest.mark.parametrize("mode", ["mute", "partial", "trickle"])
def test_daemon_that_never_answers_is_code_11_after_daemon_timeout(sockdir, mode):
    daemon = SilentDaemon(sockdir / "silent.sock", mode)
    try:
        rc, out, _, took = exec_plugin(env_for("ADD", daemon.path),
                                       make_config("ADD", daemonTimeout=0.5), timeout=20)
    finally:
        daemon.close()
    doc = one_json(out)
    assert rc == 1 and doc["code"] == 11, doc
    assert doc["msg"] == f"vpcnet node daemon at {daemon.path} did not answer within 0.5s"
    assert daemon.accepted == 1
    assert 0.5 <= took < 4.0, took                     # the deadline covers the whole exchange


def test_daemon_socket_from_config_beats_env(sockdir, http_daemon):
    http_daemon.answer(200, {"result": None})
    env = env_for("DEL", sockdir / "wrong.sock")
    rc, out, _, _ = exec_plugin(env, make_config("DEL", daemonSocket=str(http_daemon.path)))
    assert rc == 0 and out == "" and len(http_daemon.requests) == 1


# --------------------------------------------------------------------------------------------
# a daemon that answers: the body we send, and the answer printed faithfully
@pytest.mark.parametrize("version", VERSIONS)
def test_add_sends_the_documented_body_and_prints_the_result_verbatim(http_daemon, version):
    result = spec.format_result(PREV_RESULT, version)
    http_daemon.answer(200, {"result": result})
    env = env_for("ADD", http_daemon.path, CNI_NETNS_OVERRIDE="1")
    config = make_config("ADD", version, runtimeConfig={"ips": ["10.20.0.77/24"], "mac": "02:00:00:00:77:77"})
    rc, out, err, _ = exec_plugin(env, config)
    assert rc == 0 and err == ""
    assert one_json(out) == result and out.count("\n") == 1
    (req,) = http_daemon.requests
    assert req["method"] == "POST" and req["path"] == "/v1/cni"
    assert req["headers"]["Content-Type"] == "application/json"
    cni_env = {k: v for k, v in env.items() if k.startswith("CNI_")}
    assert req["body"] == {"command": "ADD", "env": cni_env, "config": config}
    # and the daemon can rebuild the very request the plugin validated
    rebuilt = spec.Request.from_wire(req["body"])
    assert rebuilt == spec.parse_request(cni_env, json.dumps(config))
    assert rebuilt.runtime_config["ips"] == ["10.20.0.77/24"] and rebuilt.pod_name == "web-0"


@pytest.mark.parametrize("version,command", [(v, c) for v in VERSIONS for c in COMMANDS
                                             if c != "ADD" and allowed(c, v)])
def test_null_result_prints_nothing_and_exits_0(http_daemon, version, command):
    http_daemon.answer(200, {"result": None})
    rc, out, err, _ = exec_plugin(env_for(command, http_daemon.path), make_config(command, version))
    assert (rc, out, err) == (0, "", "")
    assert http_daemon.requests[-1]["body"]["command"] == command


def test_204_for_del_is_success(http_daemon):
    http_daemon.answer(204)
    rc, out, _, _ = exec_plugin(env_for("DEL", http_daemon.path), make_config("DEL"))
    assert (rc, out) == (0, "")


def test_status_result_object_is_printed(http_daemon):
    http_daemon.answer(200, {"result": {"cniVersion": "1.1.0"}})
    rc, out, _, _ = exec_plugin(env_for("STATUS", http_daemon.path), make_config("STATUS"))
    assert rc == 0 and one_json(out) == {"cniVersion": "1.1.0"}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("status,code", [(500, spec.ERR_IPAM), (503, spec.ERR_TRY_AGAIN),
                                         (400, spec.ERR_INVALID_CONFIG), (503, spec.ERR_NOT_AVAILABLE),
                                         (500, spec.ERR_FLOWS_NOT_READY)])
def test_daemon_error_is_printed_as_the_cni_error(http_daemon, version, status, code):
    http_daemon.answer(status, {"code": code, "msg": "no address left in 10.10.0.0/24",
                                "details": "subnet trading/web exhausted"})
    rc, out, err, _ = exec_plugin(env_for("ADD", http_daemon.path), make_config("ADD", version))
    assert rc == 1
    assert one_json(out) == {"cniVersion": version, "code": code, "msg": "no address left in 10.10.0.0/24",
                             "details": "subnet trading/web exhausted"}
    assert f"error {code}" in err


@pytest.mark.parametrize("answer,fragment", [
    ({"status": 200, "body": b"not json"}, "HTTP 200 with a body that is not JSON"),
    ({"status": 200, "body": {"ips": []}}, 'HTTP 200 without a "result" member'),
    ({"status": 200, "body": {"result": None}}, "HTTP 200 with a null result for ADD"),
    ({"status": 200, "body": {"result": [1]}}, "result is not a JSON object"),
    ({"status": 502, "body": b"<html>bad gateway</html>"}, "HTTP 502 with a body that is not JSON"),
    ({"status": 500, "body": {"code": 9, "msg": "x"}}, "HTTP 500, not a CNI error body (invalid error code 9)"),
    ({"status": 500, "body": {"error": "boom"}}, "HTTP 500, not a CNI error body"),
    ({"raw": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}"}, "connection closed after 2 of 100 body bytes"),
    ({"raw": b"SSH-2.0-OpenSSH\r\n\r\n"}, "bad status line"),
    ({"raw": b""}, "connection closed without a response"),
])
def test_malformed_daemon_answers_are_code_11(http_daemon, answer, fragment):
    http_daemon.answer(**answer)
    rc, out, _, _ = exec_plugin(env_for("ADD", http_daemon.path), make_config("ADD"))
    doc = one_json(out)
    assert rc == 1 and doc["code"] == 11
    assert doc["msg"] == f"malformed response from vpcnet node daemon at {http_daemon.path}"
    assert fragment in doc["details"], doc["details"]


def test_gc_forwards_valid_attachments(http_daemon):
    http_daemon.answer(200, {"result": None})
    config = make_config("GC", **{"cni.dev/valid-attachments": [{"containerID": CID, "ifname": "eth0"}]})
    rc, out, _, _ = exec_plugin({"CNI_COMMAND": "GC", "CNI_PATH": "/opt/cni/bin",
                                 "VPCNET_CNI_SOCKET": str(http_daemon.path)}, config)
    assert (rc, out) == (0, "")
    req = spec.Request.from_wire(http_daemon.requests[0]["body"])
    assert req.command == "GC" and req.valid_attachments == [{"containerID": CID, "ifname": "eth0"}]


# --------------------------------------------------------------------------------------------
def test_startup_time_version_median_of_20(record_property, capsys):
    times = []
    for _ in range(20):
        rc, out, _, took = exec_plugin({"CNI_COMMAND": "VERSION"}, {"cniVersion": "1.1.0"})
        assert rc == 0
        times.append(took)
    median = statistics.median(times)
    record_property("vpcnet_cni_version_median_s", median)
    with capsys.disabled():
        print(f"\nvpcnet-cni VERSION exec: median {median * 1000:.1f} ms, min {min(times) * 1000:.1f} ms, "
              f"max {max(times) * 1000:.1f} ms over 20 runs")
    assert median < 2.0                                # generous: CI machines vary; the number is reported
