"""vpcnet.cni.spec: request parsing/validation and result formatting, table-driven over every
supported spec version x every command (as the reference plugins' suites do)."""
from __future__ import annotations

import json

import pytest

from cni_testlib import ARGS, CID, COMMANDS, NETNS, PREV_RESULT, VERSIONS, allowed, make_config, make_env
from vpcnet.cni import spec
from vpcnet.cni.spec import CniError, Request, parse_request

VERSION_X_COMMAND = [(v, c) for v in VERSIONS for c in COMMANDS]


def parse(env, config):
    return parse_request(env, config if isinstance(config, (str, bytes)) else json.dumps(config))


def fails(env, stdin) -> CniError:
    with pytest.raises(CniError) as info:
        parse(env, stdin)
    err = info.value
    assert spec.valid_error_code(err.code)
    json.dumps(err.to_json())
    return err


# --------------------------------------------------------------------------------------------
# the happy path, every version x every command
@pytest.mark.parametrize("version,command", VERSION_X_COMMAND)
def test_valid_request_every_version_and_command(version, command):
    env, config = make_env(command), make_config(command, version)
    if not allowed(command, version):
        err = fails(env, config)
        assert err.code == spec.ERR_INCOMPATIBLE_VERSION
        assert command in err.msg and version in err.msg
        assert err.to_json()["cniVersion"] == version
        return
    req = parse(env, config)
    assert isinstance(req, Request)
    assert req.command == command and req.cni_version == version and req.config == config
    assert req.network == "vpcnet" and req.path == "/opt/cni/bin" and req.path_dirs == ["/opt/cni/bin"]
    assert req.env == env
    if command in ("ADD", "DEL", "CHECK"):
        assert (req.container_id, req.netns, req.ifname) == (CID, NETNS, "eth0")
        assert req.key == ("vpcnet", CID, "eth0")
        assert req.args == {"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "trading", "K8S_POD_NAME": "web-0",
                            "K8S_POD_INFRA_CONTAINER_ID": CID}
        assert (req.pod_namespace, req.pod_name) == ("trading", "web-0")
    else:
        assert (req.container_id, req.netns, req.ifname, req.args) == ("", "", "", {})
    assert req.runtime_config == {"ips": [], "mac": None}
    assert req.prev_result == config.get("prevResult")
    if command == "GC":
        assert req.valid_attachments == [{"containerID": CID, "ifname": "eth0"}]
    else:
        assert req.valid_attachments is None
    # the daemon rebuilds exactly the same request from the wire body
    assert Request.from_wire(req.to_wire()) == req
    assert Request.from_wire(json.dumps(req.to_wire()).encode()) == req


@pytest.mark.parametrize("version", VERSIONS + ["9.9.9", "0.1.0"])
def test_version_command_echoes_requested_version(version):
    req = parse({"CNI_COMMAND": "VERSION"}, {"cniVersion": version})
    assert req.command == "VERSION" and req.cni_version == version
    assert spec.version_info(req.cni_version) == {"cniVersion": version,
                                                  "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}


@pytest.mark.parametrize("stdin", ["", "   ", "{}", '{"cniVersion": 3}', "[]", b""])
def test_version_without_a_usable_cni_version_answers_1_1_0(stdin):
    assert parse_request({"CNI_COMMAND": "VERSION"}, stdin).cni_version == "1.1.0"


def test_version_with_undecodable_stdin_is_code_6():
    err = fails({"CNI_COMMAND": "VERSION"}, "{nope")
    assert err.code == spec.ERR_DECODE


# --------------------------------------------------------------------------------------------
# environment variables (code 4, naming the variable)
MISSING = [(v, c, var) for v in VERSIONS for c in COMMANDS if allowed(c, v) for var in spec.REQUIRED_ENV[c]]


@pytest.mark.parametrize("version,command,var", MISSING)
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_missing_required_env_var_is_code_4_naming_it(version, command, var, how):
    env = make_env(command, **{var: None if how == "unset" else ""})
    err = fails(env, make_config(command, version))
    assert err.code == spec.ERR_INVALID_ENV
    assert var in err.msg and command in err.msg
    assert err.msg == f"required environment variable {var} missing for {command}"


def test_several_missing_env_vars_are_all_named():
    err = fails({"CNI_COMMAND": "ADD"}, make_config("ADD"))
    assert err.msg == "required environment variables CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME missing for ADD"


OPTIONAL = [(c, var) for c in COMMANDS for var in spec.ENV_VARS
            if var != "CNI_COMMAND" and var not in spec.REQUIRED_ENV[c]]


@pytest.mark.parametrize("command,var", OPTIONAL)
def test_optional_env_var_may_be_absent(command, var):
    req = parse(make_env(command, **{var: None}), make_config(command))
    assert req.command == command
    if command == "DEL" and var == "CNI_NETNS":
        assert req.netns == ""


@pytest.mark.parametrize("value", [None, ""])
def test_missing_cni_command_is_code_4(value):
    err = fails(make_env("ADD", CNI_COMMAND=value), make_config("ADD"))
    assert err.code == 4 and err.msg == "required environment variable CNI_COMMAND missing"


@pytest.mark.parametrize("value", ["FROB", "add", " ADD", "ADD\n"])
def test_unknown_cni_command_is_code_4(value):
    err = fails(make_env("ADD", CNI_COMMAND=value), make_config("ADD"))
    assert err.code == 4 and err.msg.startswith("CNI_COMMAND: unknown command ") and json.dumps(value) in err.msg


BAD_IFNAMES = [
    ("x" * 16, "is 16 bytes long, the limit is 15"),
    ("eth0123456789012", "is 16 bytes long, the limit is 15"),
    ("é" * 8, "is 16 bytes long, the limit is 15"),
    (".", "must not be '.' or '..'"),
    ("..", "must not be '.' or '..'"),
    ("a/b", "must not contain '/', ':' or whitespace"),
    ("eth0:1", "must not contain '/', ':' or whitespace"),
    ("eth 0", "must not contain '/', ':' or whitespace"),
    ("eth\t0", "must not contain '/', ':' or whitespace"),
    ("eth0\n", "must not contain '/', ':' or whitespace"),
    ("eth\u00a00", "must not contain '/', ':' or whitespace"),
]


@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
@pytest.mark.parametrize("ifname,problem", BAD_IFNAMES)
def test_bad_ifname_is_code_4_naming_cni_ifname(command, ifname, problem):
    err = fails(make_env(command, CNI_IFNAME=ifname), make_config(command))
    assert err.code == spec.ERR_INVALID_ENV
    assert err.msg == f"CNI_IFNAME: invalid interface name {json.dumps(ifname)}: {problem}"


@pytest.mark.parametrize("ifname", ["eth0", "x" * 15, "net1", "é" * 7, "a.b-c_d", "..."])
def test_good_ifnames(ifname):
    assert spec.valid_ifname(ifname)
    assert parse(make_env("ADD", CNI_IFNAME=ifname), make_config("ADD")).ifname == ifname


@pytest.mark.parametrize("value", [None, 3, "", "\ud800", "a\x00b"])
def test_valid_ifname_rejects_non_names(value):
    assert not spec.valid_ifname(value)


BAD_CIDS = ["-bad", "_x", ".x", "bad id", "-bad id", "a/b", "ä1", "abc\n", "a:b", "a;b", " a"]


@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
@pytest.mark.parametrize("cid", BAD_CIDS)
def test_bad_container_id_is_code_4_naming_cni_containerid(command, cid):
    err = fails(make_env(command, CNI_CONTAINERID=cid), make_config(command))
    assert err.code == spec.ERR_INVALID_ENV
    assert err.msg == f"CNI_CONTAINERID: invalid container id {json.dumps(cid)}"


@pytest.mark.parametrize("cid", ["a", "0", "abc_def.ghi-jkl", CID, "A" * 300, "x-"])
def test_good_container_ids(cid):
    assert spec.valid_container_id(cid)
    assert parse(make_env("DEL", CNI_CONTAINERID=cid), make_config("DEL")).container_id == cid


def test_gc_and_status_ignore_attachment_env():
    env = {"CNI_COMMAND": "STATUS", "CNI_CONTAINERID": "-not checked", "CNI_IFNAME": "x" * 40}
    req = parse(env, make_config("STATUS"))
    assert (req.container_id, req.ifname, req.args) == ("", "", {})


# --------------------------------------------------------------------------------------------
# CNI_ARGS
@pytest.mark.parametrize("text,expected", [
    ("", {}),
    ("A=1", {"A": "1"}),
    ("A=1;B=2", {"A": "1", "B": "2"}),
    ("A=1;;B=2;", {"A": "1", "B": "2"}),
    ("A=", {"A": ""}),
    ("A=b=c", {"A": "b=c"}),
    ("A=1;A=2", {"A": "2"}),
    (ARGS, {"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "trading", "K8S_POD_NAME": "web-0",
            "K8S_POD_INFRA_CONTAINER_ID": CID}),
])
def test_parse_cni_args(text, expected):
    assert spec.parse_cni_args(text) == expected


@pytest.mark.parametrize("args,msg", [
    ("FOO", 'CNI_ARGS: invalid pair "FOO", want KEY=VALUE'),
    ("A=1;FOO", 'CNI_ARGS: invalid pair "FOO", want KEY=VALUE'),
    ("=v", 'CNI_ARGS: invalid key "" in pair "=v"'),
    ("a b=1", 'CNI_ARGS: invalid key "a b" in pair "a b=1"'),
    ("FOO=bar", "CNI_ARGS: unknown args FOO (set IgnoreUnknown=1 to allow)"),
    ("IgnoreUnknown=0;FOO=bar;BAZ=1", "CNI_ARGS: unknown args BAZ, FOO (set IgnoreUnknown=1 to allow)"),
    ("IgnoreUnknown=maybe", 'CNI_ARGS: IgnoreUnknown="maybe" is not a boolean (1/0/true/false)'),
    ("K8S_POD_NAMESPACE=trading", "CNI_ARGS: K8S_POD_NAME missing (K8S_POD_NAMESPACE is set; they come as a pair)"),
    ("K8S_POD_NAME=web", "CNI_ARGS: K8S_POD_NAMESPACE missing (K8S_POD_NAME is set; they come as a pair)"),
    ("K8S_POD_NAMESPACE=;K8S_POD_NAME=web", "CNI_ARGS: K8S_POD_NAMESPACE is empty"),
])
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_bad_cni_args_is_code_4(command, args, msg):
    err = fails(make_env(command, CNI_ARGS=args), make_config(command))
    assert err.code == spec.ERR_INVALID_ENV and err.msg == msg


@pytest.mark.parametrize("args", ["IgnoreUnknown=1;FOO=bar", "IgnoreUnknown=true;X=1", "IgnoreUnknown=TRUE;X=",
                                  "IP=10.0.0.5;MAC=02:00:00:00:00:01", "K8S_POD_UID=1234"])
def test_acceptable_cni_args(args):
    assert parse(make_env("ADD", CNI_ARGS=args), make_config("ADD")).args == spec.parse_cni_args(args)


# --------------------------------------------------------------------------------------------
# stdin decoding (code 6) and cniVersion (code 1)
@pytest.mark.parametrize("stdin,fragment", [
    ("{not json", "failed to decode network configuration on stdin"),
    ("", "stdin is empty"),
    ("  \n", "stdin is empty"),
    (b"\xff\xfe{}", "not UTF-8"),
    ('{"cniVersion": NaN}', "failed to decode network configuration on stdin"),
    ('{"a": Infinity}', "failed to decode network configuration on stdin"),
    ("[" * 100000, "failed to decode network configuration on stdin"),
    ('{"a": 1} {"b": 2}', "failed to decode network configuration on stdin"),
    ("[]", "must be a JSON object, got list"),
    ("null", "must be a JSON object, got NoneType"),
    ('"ADD"', "must be a JSON object, got str"),
])
@pytest.mark.parametrize("command", COMMANDS)
def test_undecodable_stdin_is_code_6(command, stdin, fragment):
    err = fails(make_env(command), stdin)
    assert err.code == spec.ERR_DECODE and fragment in err.msg


@pytest.mark.parametrize("version", ["9.9.9", "0.2.0", "0.1.0", "", "1.1", "v1.1.0"])
@pytest.mark.parametrize("command", COMMANDS)
def test_unknown_cni_version_is_code_1(command, version):
    err = fails(make_env(command), make_config(command, version))
    assert err.code == spec.ERR_INCOMPATIBLE_VERSION
    assert err.msg == f"incompatible CNI versions: cniVersion {json.dumps(version)} is not supported"
    assert err.details == "plugin supports 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_cni_version_is_code_1_and_non_string_is_code_7(command):
    config = make_config(command)
    del config["cniVersion"]
    err = fails(make_env(command), config)
    assert err.code == spec.ERR_INCOMPATIBLE_VERSION and "no cniVersion" in err.msg
    err = fails(make_env(command), dict(config, cniVersion=1.1))
    assert err.code == spec.ERR_INVALID_CONFIG and '"cniVersion"' in err.msg


# --------------------------------------------------------------------------------------------
# network configuration (code 7, naming the key)
BAD_CONFIG = [
    ({"name": None}, 'network configuration: "name" is required'),
    ({"type": None}, 'network configuration: "type" is required'),
    ({"name": ""}, 'network configuration: "name" must be a non-empty string, got ""'),
    ({"name": 5}, 'network configuration: "name" must be a non-empty string, got 5'),
    ({"type": ["x"]}, 'network configuration: "type" must be a non-empty string, got ["x"]'),
    ({"name": "bad name"}, "network configuration: \"name\" must start with a letter or digit and contain only "
                           "letters, digits, '_', '.' and '-', got \"bad name\""),
    ({"ipam": "host-local"}, 'network configuration: "ipam" must be an object, got "host-local"'),
    ({"dns": []}, 'network configuration: "dns" must be an object, got []'),
    ({"args": "x"}, 'network configuration: "args" must be an object, got "x"'),
    ({"daemonSocket": ""}, 'network configuration: "daemonSocket" must be a non-empty path, got ""'),
    ({"daemonSocket": 7}, 'network configuration: "daemonSocket" must be a non-empty path, got 7'),
    ({"daemonSocket": "/" + "s" * 107}, 'network configuration: "daemonSocket" is longer than 107 bytes'),
    ({"daemonTimeout": 0}, 'network configuration: "daemonTimeout" must be a number of seconds in (0, 3600], got 0'),
    ({"daemonTimeout": -1.5}, 'network configuration: "daemonTimeout" must be a number of seconds in (0, 3600]'),
    ({"daemonTimeout": "5"}, 'network configuration: "daemonTimeout" must be a number of seconds in (0, 3600]'),
    ({"daemonTimeout": True}, 'network configuration: "daemonTimeout" must be a number of seconds in (0, 3600]'),
    ({"daemonTimeout": 3601}, 'network configuration: "daemonTimeout" must be a number of seconds in (0, 3600]'),
    ({"daemonSocket": "/run/\ud800.sock"}, 'network configuration: "daemonSocket" must be a non-empty path'),
    ({"runtimeConfig": []}, 'network configuration: "runtimeConfig" must be an object, got []'),
    ({"runtimeConfig": {"ips": "10.0.0.5"}}, 'network configuration: "runtimeConfig.ips" must be a list'),
    ({"runtimeConfig": {"ips": ["10.0.0.500/24"]}},
     'network configuration: "runtimeConfig.ips[0]" must be an IP address or CIDR, got "10.0.0.500/24"'),
    ({"runtimeConfig": {"ips": ["10.0.0.5/24", 7]}},
     'network configuration: "runtimeConfig.ips[1]" must be an IP address or CIDR, got 7'),
    ({"runtimeConfig": {"mac": "02:00:00:00:00"}},
     'network configuration: "runtimeConfig.mac" must be a MAC address like 02:00:00:00:00:01, got "02:00:00:00:00"'),
    ({"prevResult": "x"}, 'network configuration: "prevResult" must be an object, got "x"'),
]


@pytest.mark.parametrize("version,command", [(v, c) for v, c in VERSION_X_COMMAND if allowed(c, v)])
@pytest.mark.parametrize("change,msg", BAD_CONFIG)
def test_bad_config_is_code_7_naming_the_key(version, command, change, msg):
    config = make_config(command, version)
    for key, value in change.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    err = fails(make_env(command), config)
    assert err.code == spec.ERR_INVALID_CONFIG
    assert err.msg.startswith(msg), err.msg
    assert err.to_json()["cniVersion"] == version


@pytest.mark.parametrize("literal,shown", [("1e999", "Infinity"), ("1" + "0" * 400, "1" + "0" * 100)])
def test_absurd_daemon_timeout_is_code_7(literal, shown):
    stdin = '{"cniVersion": "1.1.0", "name": "n", "type": "t", "daemonTimeout": %s}' % literal
    err = fails(make_env("ADD"), stdin)
    assert err.code == 7
    assert err.msg.startswith('network configuration: "daemonTimeout" must be a number of seconds in (0, 3600], got '
                              + shown)


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_check_needs_prev_result(version):
    config = make_config("CHECK", version)
    del config["prevResult"]
    err = fails(make_env("CHECK"), config)
    assert err.code == 7 and err.msg == 'network configuration: "prevResult" is required for CHECK'


@pytest.mark.parametrize("value,msg", [
    (None, '"cni.dev/valid-attachments" is required for GC'),
    ({}, '"cni.dev/valid-attachments" must be a list, got {}'),
    (["x"], '"cni.dev/valid-attachments[0]" must be an object with containerID and ifname, got "x"'),
    ([{"ifname": "eth0"}], '"cni.dev/valid-attachments[0].containerID" must be a valid container id, got null'),
    ([{"containerID": CID, "ifname": "eth0"}, {"containerID": "-x", "ifname": "eth0"}],
     '"cni.dev/valid-attachments[1].containerID" must be a valid container id, got "-x"'),
    ([{"containerID": CID, "ifname": "x" * 16}],
     '"cni.dev/valid-attachments[0].ifname" must be a valid interface name'),
])
def test_gc_valid_attachments_are_required_and_checked(value, msg):
    config = make_config("GC", **{"cni.dev/valid-attachments": value})
    if value is None:
        config.pop("cni.dev/valid-attachments", None)
    err = fails(make_env("GC"), config)
    assert err.code == 7 and err.msg.startswith("network configuration: " + msg), err.msg


def test_gc_with_no_valid_attachments_is_an_empty_list():
    req = parse(make_env("GC"), make_config("GC", **{"cni.dev/valid-attachments": []}))
    assert req.valid_attachments == []


def test_runtime_config_ips_mac_and_other_capabilities():
    rc = {"ips": ["10.20.0.77/24", "fd00::5"], "mac": "02:00:00:00:77:77", "portMappings": [{"hostPort": 80}]}
    req = parse(make_env("ADD"), make_config("ADD", runtimeConfig=rc))
    assert req.runtime_config == rc
    req = parse(make_env("ADD"), make_config("ADD", runtimeConfig={"portMappings": []}))
    assert req.runtime_config == {"portMappings": [], "ips": [], "mac": None}


def test_validation_order_env_before_stdin_before_version_before_config():
    assert fails({"CNI_COMMAND": "ADD"}, "{bad").code == 4
    assert fails(make_env("ADD"), "{bad").code == 6
    assert fails(make_env("ADD"), {"cniVersion": "9", "name": ""}).code == 1
    assert fails(make_env("ADD", CNI_IFNAME="x" * 20), {"cniVersion": "1.1.0", "name": ""}).code == 7


def test_error_messages_bound_hostile_values():
    err = fails(make_env("ADD", CNI_CONTAINERID="-" + "x" * 10000), make_config("ADD"))
    assert len(err.msg) < 250 and "(truncated)" in err.msg


# --------------------------------------------------------------------------------------------
# the wire form the daemon receives
@pytest.mark.parametrize("body,code,fragment", [
    (b"{nope", 6, "failed to decode request body"),
    (b"[]", 6, "request body must be a JSON object"),
    ({"env": {}, "config": {}}, 6, '"command" must be a string'),
    ({"command": "ADD", "env": {"CNI_IFNAME": 5}, "config": {}}, 6, '"env" must be an object of strings'),
    ({"command": "ADD", "env": {}}, 6, '"config" missing'),
    ({"command": "ADD", "env": {"CNI_COMMAND": "DEL"}, "config": {}}, 4,
     'command "ADD" does not match CNI_COMMAND "DEL"'),
    ({"command": "ADD", "env": {}, "config": {}}, 4, "CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME missing for ADD"),
    ({"command": "ADD", "env": make_env("ADD"), "config": []}, 6, "must be a JSON object, got list"),
    ({"command": "ADD", "env": make_env("ADD", CNI_IFNAME="x" * 16), "config": make_config("ADD")}, 4, "CNI_IFNAME"),
])
def test_from_wire_validates_like_parse_request(body, code, fragment):
    with pytest.raises(CniError) as info:
        Request.from_wire(body)
    assert info.value.code == code and fragment in info.value.msg


def test_wire_body_shape():
    env = dict(make_env("ADD"), CNI_NETNS_OVERRIDE="1")
    req = parse(dict(env, PATH="/usr/bin", HOME="/root"), make_config("ADD"))
    assert req.to_wire() == {"command": "ADD", "env": env, "config": make_config("ADD")}


# --------------------------------------------------------------------------------------------
# CniError and the protocol helpers
def test_cni_error_forms():
    err = CniError(100, "no address", "subnet 10.0.0.0/24 exhausted")
    assert err.to_json("0.4.0") == {"cniVersion": "0.4.0", "code": 100, "msg": "no address",
                                    "details": "subnet 10.0.0.0/24 exhausted"}
    assert err.to_json() == dict(err.to_json("0.4.0"), cniVersion="1.1.0")
    assert err.to_wire() == {"code": 100, "msg": "no address", "details": "subnet 10.0.0.0/24 exhausted"}
    back = CniError.from_wire(err.to_wire())
    assert (back.code, back.msg, back.details) == (100, "no address", "subnet 10.0.0.0/24 exhausted")
    assert CniError.from_wire({"code": 7, "msg": "x"}).details == ""
    assert str(err) == "CNI error 100: no address (subnet 10.0.0.0/24 exhausted)"
    assert [CniError(c, "").http_status for c in (11, 50, 51, 3, 4, 7, 100, 999)] == \
           [503, 503, 503, 404, 400, 400, 500, 500]
    for bad in ([], {"code": 0, "msg": ""}, {"code": 9, "msg": ""}, {"code": True, "msg": ""},
                {"code": "7", "msg": ""}, {"code": 7}, {"code": 7, "msg": 1}, {"code": 7, "msg": "", "details": 1}):
        with pytest.raises(ValueError):
            CniError.from_wire(bad)


def test_error_code_constants():
    assert (spec.ERR_INCOMPATIBLE_VERSION, spec.ERR_UNSUPPORTED_FIELD, spec.ERR_UNKNOWN_CONTAINER,
            spec.ERR_INVALID_ENV, spec.ERR_IO, spec.ERR_DECODE, spec.ERR_INVALID_CONFIG, spec.ERR_TRY_AGAIN,
            spec.ERR_NOT_AVAILABLE, spec.ERR_LIMITED) == (1, 2, 3, 4, 5, 6, 7, 11, 50, 51)
    assert (spec.ERR_IPAM, spec.ERR_PLUMBING, spec.ERR_FLOWS_NOT_READY, spec.ERR_BRIDGE) == (100, 101, 102, 103)
    assert spec.SUPPORTED_VERSIONS == ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
    assert all(spec.valid_error_code(c) for c in (1, 2, 3, 4, 5, 6, 7, 8, 11, 50, 51, 100, 103, 999))
    assert not any(spec.valid_error_code(c) for c in (0, -1, 9, 10, 12, 99, True, "4", 4.0, None))


def test_daemon_socket_and_timeout_precedence():
    env = {spec.SOCKET_ENV: "/run/x/env.sock"}
    assert spec.daemon_socket({"daemonSocket": "/run/x/conf.sock"}, env) == "/run/x/conf.sock"
    assert spec.daemon_socket({}, env) == "/run/x/env.sock"
    assert spec.daemon_socket({}, {}) == spec.DEFAULT_SOCKET == "/run/vpcnet/cni.sock"
    assert spec.daemon_socket({}, {spec.SOCKET_ENV: ""}) == spec.DEFAULT_SOCKET
    assert spec.daemon_timeout({"daemonTimeout": 0.5}) == 0.5
    assert spec.daemon_timeout({}) == spec.DEFAULT_TIMEOUT == 30.0
    assert spec.WIRE_METHOD == "POST" and spec.WIRE_PATH == "/v1/cni"


# --------------------------------------------------------------------------------------------
# result formatting, every version
INTERNAL = {
    "interfaces": [
        {"name": "vpc1a2b3c4d", "mac": "ee:ee:ee:ee:ee:ee", "mtu": 1450},
        {"name": "eth0", "mac": "02:00:0a:0a:00:05", "mtu": 1450, "sandbox": NETNS,
         "socketPath": "", "pciID": ""},
    ],
    "ips": [
        {"address": "10.10.0.5/24", "gateway": "10.10.0.1", "interface": 1},
        {"address": "fd00:10::5/64", "gateway": "fd00:10::1", "interface": 1},
    ],
    "routes": [
        {"dst": "0.0.0.0/0", "gw": "10.10.0.1", "mtu": 1400, "table": 0, "scope": 0, "priority": 0},
        {"dst": "::/0", "gw": "fd00:10::1", "advmss": 1300},
    ],
    "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"], "domain": "", "options": []},
}
OLD_INTERFACES = [{"name": "vpc1a2b3c4d", "mac": "ee:ee:ee:ee:ee:ee"},
                  {"name": "eth0", "mac": "02:00:0a:0a:00:05", "sandbox": NETNS}]
V1_IPS = [{"interface": 1, "address": "10.10.0.5/24", "gateway": "10.10.0.1"},
          {"interface": 1, "address": "fd00:10::5/64", "gateway": "fd00:10::1"}]
OLD_IPS = [dict(V1_IPS[0], version="4"), dict(V1_IPS[1], version="6")]
OLD_ROUTES = [{"dst": "0.0.0.0/0", "gw": "10.10.0.1"}, {"dst": "::/0", "gw": "fd00:10::1"}]
DNS = {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]}
EXPECTED = {
    "0.3.0": {"interfaces": OLD_INTERFACES, "ips": OLD_IPS, "routes": OLD_ROUTES, "dns": DNS},
    "0.3.1": {"interfaces": OLD_INTERFACES, "ips": OLD_IPS, "routes": OLD_ROUTES, "dns": DNS},
    "0.4.0": {"interfaces": OLD_INTERFACES, "ips": OLD_IPS, "routes": OLD_ROUTES, "dns": DNS},
    "1.0.0": {"interfaces": OLD_INTERFACES, "ips": V1_IPS, "routes": OLD_ROUTES, "dns": DNS},
    "1.1.0": {"interfaces": [{"name": "vpc1a2b3c4d", "mac": "ee:ee:ee:ee:ee:ee", "mtu": 1450},
                             {"name": "eth0", "mac": "02:00:0a:0a:00:05", "mtu": 1450, "sandbox": NETNS}],
              "ips": V1_IPS,
              "routes": [{"dst": "0.0.0.0/0", "gw": "10.10.0.1", "mtu": 1400, "table": 0, "scope": 0},
                         {"dst": "::/0", "gw": "fd00:10::1", "advmss": 1300}],
              "dns": DNS},
}


@pytest.mark.parametrize("version", VERSIONS)
def test_format_result_per_version(version):
    out = spec.format_result(INTERNAL, version)
    assert out == dict(EXPECTED[version], cniVersion=version)
    json.dumps(out)
    # and back: parse_result (used for prevResult) gives the internal shape that version can carry
    back = spec.parse_result(out)
    assert spec.format_result(back, version) == out
    assert all("version" not in ip for ip in back["ips"])


@pytest.mark.parametrize("version", VERSIONS)
def test_format_minimal_result_omits_empty_members(version):
    out = spec.format_result({"interfaces": [], "ips": [{"address": "10.0.0.2/24"}], "routes": [], "dns": {}},
                             version)
    ip = {"address": "10.0.0.2/24"} if version >= "1" else {"version": "4", "address": "10.0.0.2/24"}
    assert out == {"cniVersion": version, "ips": [ip]}


@pytest.mark.parametrize("bad", [
    [], {"interfaces": {}}, {"interfaces": [{"mac": "x"}]}, {"ips": [{"address": "10.0.0.1"}]},
    {"ips": [{"address": "10.0.0.1/24", "interface": 0}]}, {"routes": [{"gw": "1.1.1.1"}]}, {"dns": []},
])
def test_format_result_rejects_malformed_internal_results(bad):
    with pytest.raises(ValueError):
        spec.format_result(bad, "1.1.0")


@pytest.mark.parametrize("version", ["0.2.0", "2.0.0", ""])
def test_format_result_unknown_version_is_code_1(version):
    with pytest.raises(CniError) as info:
        spec.format_result(INTERNAL, version)
    assert info.value.code == 1


def test_parse_result_rejects_malformed():
    for bad in ([], {"ips": {}}, {"ips": ["x"]}, {"dns": []}):
        with pytest.raises(CniError) as info:
            spec.parse_result(bad)
        assert info.value.code == 7 and info.value.msg.startswith("prevResult")


def test_prev_result_round_trip_from_old_version():
    old = spec.format_result(PREV_RESULT, "0.3.1")
    assert old["ips"][0]["version"] == "4"
    assert spec.parse_result(old)["ips"] == [{"interface": 1, "address": "10.10.0.5/24", "gateway": "10.10.0.1"}]
