"""Property tests: whatever the runtime (env, stdin) or the daemon (bytes on the socket) sends,
``parse_request`` raises only CniError, and the plugin prints exactly one JSON document carrying a
valid CNI error code, or exits 0."""
from __future__ import annotations

import io
import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cni_testlib import ARGS, CID, NETNS, PREV_RESULT, VERSIONS, RawDaemon, make_config, make_env, rmtree, short_tmp
from vpcnet.cni import plugin, spec
from vpcnet.cni.spec import CniError, Request

FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------------
# strategies
leaf = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12))
json_any = st.recursive(leaf, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids,
                                                                                         max_size=3), max_leaves=8)
commands = st.sampled_from(["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION", "", "add", "FROB"]) | st.text(max_size=6)
env_values = {
    "CNI_COMMAND": commands,
    "CNI_CONTAINERID": st.sampled_from([CID, "", "-x", "a", "a b", "x" * 300]) | st.text(max_size=70),
    "CNI_NETNS": st.sampled_from([NETNS, "", "/proc/1/ns/net"]) | st.text(max_size=30),
    "CNI_IFNAME": st.sampled_from(["eth0", "x" * 15, "x" * 16, ".", "..", "", "a:b", "é" * 8]) | st.text(max_size=20),
    "CNI_ARGS": st.sampled_from([ARGS, "", "FOO", "=", ";;", "K8S_POD_NAME=x", "IgnoreUnknown=1;A=b",
                                 "IgnoreUnknown=x"]) | st.text(max_size=40),
    "CNI_PATH": st.sampled_from(["/opt/cni/bin", "", ":"]) | st.text(max_size=20),
    "CNI_NETNS_OVERRIDE": st.text(max_size=5),
}
envs = st.fixed_dictionaries({}, optional=env_values)


config_values = {
    "cniVersion": st.sampled_from(VERSIONS + ["9.9.9", "", "0.2.0"]) | json_any,
    "name": st.sampled_from(["vpcnet", "", "bad name", "-x"]) | json_any,
    "type": st.just("vpcnet-cni") | json_any,
    "daemonTimeout": st.sampled_from([0.3, 0, -1, "5", True, None, 2**80, 10**400, 3600, 3601]),
    "runtimeConfig": st.fixed_dictionaries({}, optional={
        "ips": st.lists(st.sampled_from(["10.0.0.1/24", "fd00::1", "10.0.0.500", "x"]) | leaf, max_size=3) | json_any,
        "mac": st.sampled_from(["02:00:00:00:00:01", "02:00", "zz:00:00:00:00:00"]) | leaf,
        "portMappings": json_any}) | json_any,
    "prevResult": st.just(PREV_RESULT) | json_any,
    "cni.dev/valid-attachments": st.lists(st.fixed_dictionaries({}, optional={
        "containerID": st.sampled_from([CID, "-x", ""]) | leaf,
        "ifname": st.sampled_from(["eth0", "x" * 16]) | leaf}) | json_any, max_size=3) | json_any,
    "ipam": json_any, "dns": json_any, "args": json_any, "capabilities": json_any,
}
# keep most of a well-formed invocation, drop or fuzz a few parts: this reaches every validation
# step and the daemon round trip instead of stopping at the first missing variable
action = st.sampled_from(["keep"] * 20 + ["drop", "fuzz"])
config_action = st.sampled_from(["keep"] * 50 + ["drop", "fuzz"])


@st.composite
def invocations(draw, socket_paths):
    """(env, stdin) as a runtime might send them, mostly well-formed, partly hostile."""
    command = draw(st.sampled_from(["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"] * 3 + [None]))
    if command is None:
        command = draw(commands)
    version = draw(st.sampled_from(VERSIONS + ["1.1.0"] * 3))
    known = command if command in spec.COMMANDS and command != "VERSION" else "ADD"
    env = make_env(known, CNI_COMMAND=command)
    for var, values in env_values.items():
        what = draw(action)
        if what == "drop":
            env.pop(var, None)
        elif what == "fuzz":
            env[var] = draw(values)
    config = make_config(known, version)
    # never a random string for the socket: the plugin would really connect to it
    socket_choice = draw(st.sampled_from(socket_paths + [None, "", "/" + "s" * 120, 7, "/tmp/\ud800", "@" + "a" * 120]))
    if socket_choice is not None:
        config["daemonSocket"] = socket_choice
    config["daemonTimeout"] = 2
    for key, values in config_values.items():
        what = draw(config_action)
        if what == "drop":
            config.pop(key, None)
        elif what == "fuzz":
            config[key] = draw(values)
    for key, value in draw(st.dictionaries(st.text(max_size=8), json_any, max_size=1)).items():
        if key not in config:
            config[key] = value
    text = json.dumps(config)
    form = draw(st.sampled_from(["text"] * 8 + ["bytes"] * 4 + ["cut", "binary", "random", "odd"]))
    stdin = {"text": st.just(text), "bytes": st.just(text.encode()),
             "cut": st.integers(0, max(0, len(text) - 1)).map(lambda i: text[:i]),
             "binary": st.binary(max_size=120), "random": st.text(max_size=120),
             "odd": st.sampled_from(["", "null", "[]", '{"cniVersion": NaN}', "[" * 5000, '{"a":1e999}'])}[form]
    stdin = draw(stdin)
    return env, stdin


# ---------------------------------------------------------------------------------------------
@FUZZ
@given(invocation=st.one_of(invocations(["/nonexistent/vpcnet-fuzz.sock"]), invocations(["/nonexistent/x.sock"]),
                            invocations(["/nonexistent/y.sock"]), st.tuples(envs, st.binary(max_size=80))))
def test_parse_request_raises_only_cni_error(invocation):
    env, stdin = invocation
    try:
        req = spec.parse_request(env, stdin)
    except CniError as exc:
        event(f"code {exc.code}")
        assert spec.valid_error_code(exc.code) and exc.code < 100
        assert isinstance(exc.msg, str) and exc.msg and isinstance(exc.details, str)
        json.dumps(exc.to_json())
        return
    event(f"accepted {req.command}")
    assert req.command in spec.COMMANDS
    if req.command == "VERSION":
        return
    assert req.cni_version in spec.SUPPORTED_VERSIONS
    assert req.command == env["CNI_COMMAND"]
    if req.command in spec.ATTACHMENT_COMMANDS:
        assert spec.valid_container_id(req.container_id) and spec.valid_ifname(req.ifname)
    # the daemon sees exactly the same request after the wire round trip
    assert Request.from_wire(json.dumps(req.to_wire())) == req


@pytest.fixture(scope="module")
def fuzz_daemon():
    d = short_tmp()
    daemon = RawDaemon(d / "raw.sock")
    yield daemon, str(d / "missing.sock")
    daemon.close()
    rmtree(d)


http_status = st.sampled_from([200, 204, 400, 404, 500, 503, 100]) | st.integers(100, 599)
bodies = st.one_of(
    st.binary(max_size=80),
    json_any.map(lambda o: json.dumps(o).encode()),
    st.fixed_dictionaries({"result": st.none() | st.just({"cniVersion": "1.1.0", "ips": []}) | json_any}).map(
        lambda o: json.dumps(o).encode()),
    st.fixed_dictionaries({"code": st.sampled_from([1, 4, 7, 11, 50, 51, 100, 999, 0, 9, -1, True]) | leaf},
                          optional={"msg": st.text(max_size=10) | leaf, "details": st.text(max_size=10) | leaf}).map(
        lambda o: json.dumps(o).encode()),
)


@st.composite
def http_responses(draw):
    if draw(st.integers(0, 5)) == 0:
        return draw(st.binary(max_size=200))
    status, body = draw(http_status), draw(bodies)
    framing = draw(st.sampled_from(["length", "chunked", "eof", "badlength", "short"]))
    head = f"HTTP/1.1 {status} X\r\n".encode()
    if framing == "length":
        return head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    if framing == "chunked":
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    if framing == "badlength":
        return head + b"Content-Length: nope\r\n\r\n" + body
    if framing == "short":
        return head + f"Content-Length: {len(body) + 5}\r\n\r\n".encode() + body
    return head + b"\r\n" + body


def check_plugin_output(rc: int, stdout: str, req_command) -> None:
    assert rc in (0, 1)
    text = stdout.strip()
    if rc == 0 and not text:
        assert req_command not in ("ADD", "VERSION")       # only null results print nothing
        return
    obj, end = json.JSONDecoder().raw_decode(text)
    assert text[end:].strip() == "", "more than one JSON document"
    assert stdout.count("\n") == 1
    assert isinstance(obj, dict)
    if rc == 1:
        assert spec.valid_error_code(obj["code"]) and isinstance(obj["msg"], str)
        assert isinstance(obj["details"], str) and isinstance(obj["cniVersion"], str)
        assert set(obj) == {"cniVersion", "code", "msg", "details"}


@FUZZ
@given(data=st.data())
def test_plugin_always_prints_one_json_document(fuzz_daemon, data):
    daemon, missing = fuzz_daemon
    env, stdin = data.draw(invocations([str(daemon.path), missing, "@vpcnet-fuzz-nothing-here"]))
    env["VPCNET_CNI_SOCKET"] = data.draw(st.sampled_from([str(daemon.path), missing]))
    daemon.response = data.draw(http_responses())
    out, err = io.StringIO(), io.StringIO()
    rc = plugin.run(env, stdin, out, err)
    event(f"rc={rc} " + (str(json.loads(out.getvalue()).get("code", "ok")) if out.getvalue() else "empty"))
    check_plugin_output(rc, out.getvalue(), env.get("CNI_COMMAND"))
    if rc == 1:
        assert "internal error" not in err.getvalue(), err.getvalue()


@FUZZ
@given(chunks=st.lists(st.binary(max_size=40), max_size=8) | http_responses().flatmap(
    lambda raw: st.lists(st.integers(1, 30), max_size=20).map(lambda cuts: _cut(raw, cuts))))
def test_read_response_returns_or_raises_malformed(chunks):
    feed = iter(chunks)
    try:
        status, headers, body = plugin.read_response(lambda: next(feed, b""))
    except plugin.Malformed:
        return
    assert 200 <= status <= 999 and isinstance(headers, dict) and isinstance(body, bytes)


def _cut(raw: bytes, cuts: list[int]) -> list[bytes]:
    out, i = [], 0
    for n in cuts:
        if i >= len(raw):
            break
        out.append(raw[i:i + n])
        i += n
    if i < len(raw):
        out.append(raw[i:])
    return [c for c in out if c]


@FUZZ
@given(command=st.sampled_from(["ADD", "DEL", "CHECK", "STATUS", "GC"]),
       status=st.sampled_from([200, 204, 400, 404, 500, 503]) | st.integers(200, 599), payload=bodies)
def test_interpret_response_is_total(command, status, payload):
    try:
        result = plugin.interpret_response(command, status, payload)
    except CniError as exc:
        assert status != 200 and spec.valid_error_code(exc.code)
        return
    except plugin.Malformed:
        return
    assert result is None or isinstance(result, dict)
    if result is None:
        assert command != "ADD"
    else:
        assert status == 200
