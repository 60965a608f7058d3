"""CNI 1.1 facts shared by `vpcnet-cni` (the exec'd plugin) and the node daemon.

Standard library only, and cheap to import: the plugin is exec'd once per CNI call and imports
nothing else. Everything here is pure (no I/O).

What is in here
---------------
* Error codes and :class:`CniError` (the spec's error object, plus the daemon<->plugin wire form).
* :func:`parse_request` validates what the runtime hands a plugin (``CNI_*`` environment and the
  network configuration on stdin) and returns a :class:`Request`. ``Request.from_wire`` rebuilds
  the same Request, with the same validation, from the body the plugin POSTs to the daemon.
* :func:`format_result` renders the internal (1.1.0-shaped) result in any supported spec version;
  :func:`parse_result` goes the other way (e.g. for ``prevResult``).
* The daemon protocol constants (path, socket, timeout) and helpers that both sides use.

Daemon protocol (HTTP/1.1 over a unix socket)
---------------------------------------------
``POST /v1/cni`` with body ``{"command": "ADD", "env": {<every CNI_* variable present>},
"config": <the network configuration object from stdin>}``. Answers:

* ``200 {"result": <object>}`` - printed verbatim by the plugin. ADD must carry an object;
  DEL/CHECK/STATUS/GC may answer ``{"result": null}`` (or ``204`` with no body): print nothing.
* any other status with ``{"code": N, "msg": "...", "details": "..."}`` - printed as the CNI error
  (``cniVersion`` added), exit status 1. ``CniError.http_status`` suggests the status to use.

Socket: config ``daemonSocket``, else env ``VPCNET_CNI_SOCKET``, else ``/run/vpcnet/cni.sock``
(a leading ``@`` means a Linux abstract socket). Timeout: config ``daemonTimeout`` seconds
(default 30) for the whole request. No answer in time, no socket, refused, reset, or a malformed
answer -> code 11 (try again later).
"""
from __future__ import annotations

import json
import math

# ---------------------------------------------------------------------------------------------
# versions and commands
SPEC_VERSION = "1.1.0"
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION")
# A command may only be used with a configuration of at least this spec version (as libcni's skel).
MIN_VERSION = {"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}
# CNI_COMMAND is required for every command; these are required in addition (SPEC.md section 2).
REQUIRED_ENV = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "GC": ("CNI_PATH",),
    "STATUS": (),
    "VERSION": (),
}
# Commands that address one attachment (container id + interface); GC/STATUS/VERSION do not.
ATTACHMENT_COMMANDS = ("ADD", "DEL", "CHECK")
ENV_VARS = ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH")

# ---------------------------------------------------------------------------------------------
# error codes (SPEC.md "Error codes"; 1-99 reserved for the spec, 100+ plugin specific)
ERR_INCOMPATIBLE_VERSION = 1
ERR_UNSUPPORTED_FIELD = 2
ERR_UNKNOWN_CONTAINER = 3
ERR_INVALID_ENV = 4
ERR_IO = 5
ERR_DECODE = 6
ERR_INVALID_CONFIG = 7
ERR_INVALID_NETNS = 8          # libcni constant, not in SPEC.md's table
ERR_TRY_AGAIN = 11
ERR_NOT_AVAILABLE = 50         # STATUS: not ready for ADD
ERR_LIMITED = 51               # STATUS: not ready, existing pods may have limited connectivity
ERR_IPAM = 100                 # vpcnet: no address could be obtained
ERR_PLUMBING = 101             # vpcnet: veth/netns/port plumbing failed
ERR_FLOWS_NOT_READY = 102      # vpcnet: the pod's flows were not installed in time
ERR_BRIDGE = 103               # vpcnet: br-int / OVSDB problem
ERR_INTERNAL = 999             # libcni's "internal error"; unexpected failures

ERROR_NAMES = {
    ERR_INCOMPATIBLE_VERSION: "incompatible CNI version",
    ERR_UNSUPPORTED_FIELD: "unsupported field in network configuration",
    ERR_UNKNOWN_CONTAINER: "container unknown or does not exist",
    ERR_INVALID_ENV: "invalid necessary environment variables",
    ERR_IO: "I/O failure",
    ERR_DECODE: "failed to decode content",
    ERR_INVALID_CONFIG: "invalid network config",
    ERR_INVALID_NETNS: "invalid network namespace",
    ERR_TRY_AGAIN: "try again later",
    ERR_NOT_AVAILABLE: "plugin not available",
    ERR_LIMITED: "plugin not available, existing containers may have limited connectivity",
    ERR_IPAM: "address could not be obtained",
    ERR_PLUMBING: "interface plumbing failed",
    ERR_FLOWS_NOT_READY: "flows not installed in time",
    ERR_BRIDGE: "integration bridge failure",
    ERR_INTERNAL: "internal error",
}
WELL_KNOWN_CODES = frozenset(c for c in ERROR_NAMES if c < 100)

# ---------------------------------------------------------------------------------------------
# daemon protocol
WIRE_METHOD = "POST"
WIRE_PATH = "/v1/cni"
SOCKET_ENV = "VPCNET_CNI_SOCKET"
DEFAULT_SOCKET = "/run/vpcnet/cni.sock"
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 3600             # daemonTimeout above an hour is a configuration mistake
MAX_UNIX_PATH = 107            # sun_path is 108 bytes including the terminating NUL

# CNI_ARGS keys we understand; others need IgnoreUnknown=1 (libcni's LoadArgs rule).
KNOWN_CNI_ARGS = frozenset({"IgnoreUnknown", "K8S_POD_NAMESPACE", "K8S_POD_NAME",
                            "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID", "IP", "MAC"})

# No `re` and no `dataclasses` here: importing them costs ~35 ms of every plugin exec (measured
# with -X importtime), more than the rest of the plugin. Plain character-set checks instead.
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_CHARS = _ALNUM | frozenset("_.-")
_HEX = frozenset("0123456789ABCDEFabcdef")


def _is_id(text: str) -> bool:
    """[A-Za-z0-9][A-Za-z0-9_.-]*: a container id or network name (the spec's rule)."""
    return bool(text) and text[0] in _ALNUM and all(c in _ID_CHARS for c in text)


def _is_arg_key(text: str) -> bool:
    """[A-Za-z0-9_.-]+: a CNI_ARGS key."""
    return bool(text) and all(c in _ID_CHARS for c in text)


def _is_mac(text: str) -> bool:
    """Six colon-separated pairs of hex digits."""
    parts = text.split(":")
    return len(parts) == 6 and all(len(p) == 2 and p[0] in _HEX and p[1] in _HEX for p in parts)


def _q(value, limit: int = 120) -> str:
    """Quote a (possibly hostile) value for an error message: JSON-style, ASCII, bounded."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = repr(type(value))
    return text if len(text) <= limit else text[:limit] + "...(truncated)"


def _vkey(version: str) -> tuple:
    return tuple(int(p) for p in version.split("."))


# ---------------------------------------------------------------------------------------------
class CniError(Exception):
    """A CNI error: printed by the plugin as ``{"cniVersion", "code", "msg", "details"}``."""

    def __init__(self, code: int, msg: str, details: str = "", cni_version: str | None = None):
        super().__init__(code, msg, details)
        self.code = int(code)
        self.msg = str(msg)
        self.details = str(details or "")
        self.cni_version = cni_version   # the request's version, once known

    def __str__(self) -> str:
        return f"CNI error {self.code}: {self.msg}" + (f" ({self.details})" if self.details else "")

    def to_json(self, version: str | None = None) -> dict:
        """The object the plugin prints on stdout (SPEC.md "Error")."""
        return {"cniVersion": version or self.cni_version or SPEC_VERSION, "code": self.code,
                "msg": self.msg, "details": self.details}

    def to_wire(self) -> dict:
        """The daemon's HTTP error body."""
        return {"code": self.code, "msg": self.msg, "details": self.details}

    @classmethod
    def from_wire(cls, obj) -> "CniError":
        """Rebuild from a daemon error body; ValueError if it is not a valid one."""
        if not isinstance(obj, dict):
            raise ValueError("error body is not a JSON object")
        code, msg, details = obj.get("code"), obj.get("msg"), obj.get("details", "")
        if not valid_error_code(code):
            raise ValueError(f"invalid error code {_q(code)}")
        if not isinstance(msg, str):
            raise ValueError(f"error msg must be a string, got {_q(msg)}")
        if details is None:
            details = ""
        if not isinstance(details, str):
            raise ValueError(f"error details must be a string, got {_q(details)}")
        return cls(code, msg, details)

    @property
    def http_status(self) -> int:
        """The HTTP status the daemon should answer with (the plugin only needs non-2xx)."""
        if self.code in (ERR_TRY_AGAIN, ERR_NOT_AVAILABLE, ERR_LIMITED):
            return 503
        if self.code == ERR_UNKNOWN_CONTAINER:
            return 404
        if self.code in (ERR_INCOMPATIBLE_VERSION, ERR_UNSUPPORTED_FIELD, ERR_INVALID_ENV, ERR_DECODE,
                         ERR_INVALID_CONFIG, ERR_INVALID_NETNS):
            return 400
        return 500


def valid_error_code(code) -> bool:
    """A code a plugin may print: a spec'd 1-99 code, or any plugin-specific code >= 100."""
    return isinstance(code, int) and not isinstance(code, bool) and (code in WELL_KNOWN_CODES or code >= 100)


# ---------------------------------------------------------------------------------------------
# field validators
def valid_ifname(name) -> bool:
    """Linux interface name rules as SPEC.md states them: non-empty, at most 15 bytes, not '.' or
    '..', no '/', ':' or whitespace (nor NUL or unpaired surrogates)."""
    if not isinstance(name, str) or not name or name in (".", ".."):
        return False
    for ch in name:
        if ch in "/:\x00" or ch.isspace() or "\ud800" <= ch <= "\udfff":
            return False
    return len(name.encode("utf-8")) <= 15


def valid_container_id(cid) -> bool:
    """Non-empty; starts alphanumeric; then alphanumerics, '_', '.', '-' (ASCII)."""
    return isinstance(cid, str) and _is_id(cid)


def valid_network_name(name) -> bool:
    return isinstance(name, str) and _is_id(name)


def _ifname_problem(name: str) -> str:
    if not name:
        return "is empty"
    if name in (".", ".."):
        return "must not be '.' or '..'"
    if any(ch in "/:\x00" or ch.isspace() or "\ud800" <= ch <= "\udfff" for ch in name):
        return "must not contain '/', ':' or whitespace"
    return f"is {len(name.encode('utf-8'))} bytes long, the limit is 15"


def parse_cni_args(text) -> dict:
    """Parse ``CNI_ARGS`` (``KEY=VALUE;KEY=VALUE``). Empty segments are skipped; a value may be
    empty and may contain '='. Raises CniError(4) naming CNI_ARGS."""
    if text is None or text == "":
        return {}
    if not isinstance(text, str):
        raise CniError(ERR_INVALID_ENV, f"CNI_ARGS: must be a string, got {_q(text)}")
    out: dict = {}
    for pair in text.split(";"):
        if pair == "":
            continue
        key, sep, value = pair.partition("=")
        if not sep:
            raise CniError(ERR_INVALID_ENV, f"CNI_ARGS: invalid pair {_q(pair)}, want KEY=VALUE",
                           f"CNI_ARGS={_q(text)}")
        if not _is_arg_key(key):
            raise CniError(ERR_INVALID_ENV, f"CNI_ARGS: invalid key {_q(key)} in pair {_q(pair)}",
                           f"CNI_ARGS={_q(text)}")
        out[key] = value
    return out


def _parse_bool_arg(key: str, value: str) -> bool:
    low = value.lower()
    if low in ("1", "true"):
        return True
    if low in ("0", "false"):
        return False
    raise CniError(ERR_INVALID_ENV, f"CNI_ARGS: {key}={_q(value)} is not a boolean (1/0/true/false)")


def _check_cni_args(args: dict) -> None:
    ignore_unknown = _parse_bool_arg("IgnoreUnknown", args["IgnoreUnknown"]) if "IgnoreUnknown" in args else False
    unknown = sorted(k for k in args if k not in KNOWN_CNI_ARGS)
    if unknown and not ignore_unknown:
        raise CniError(ERR_INVALID_ENV, f"CNI_ARGS: unknown args {', '.join(unknown)} (set IgnoreUnknown=1 to allow)")
    has_ns, has_name = "K8S_POD_NAMESPACE" in args, "K8S_POD_NAME" in args
    if has_ns != has_name:
        missing = "K8S_POD_NAME" if has_ns else "K8S_POD_NAMESPACE"
        given = "K8S_POD_NAMESPACE" if has_ns else "K8S_POD_NAME"
        raise CniError(ERR_INVALID_ENV, f"CNI_ARGS: {missing} missing ({given} is set; they come as a pair)")
    for key in ("K8S_POD_NAMESPACE", "K8S_POD_NAME"):
        if key in args and args[key] == "":
            raise CniError(ERR_INVALID_ENV, f"CNI_ARGS: {key} is empty")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def decode_json(data, what: str = "network configuration on stdin"):
    """Strict JSON (no NaN/Infinity, valid UTF-8); CniError(6) otherwise."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CniError(ERR_DECODE, f"failed to decode {what}: not UTF-8", str(exc)) from None
    if not isinstance(data, str):
        raise CniError(ERR_DECODE, f"failed to decode {what}: got {type(data).__name__}")
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        raise CniError(ERR_DECODE, f"failed to decode {what}: nested too deeply") from None
    except ValueError as exc:
        raise CniError(ERR_DECODE, f"failed to decode {what}", str(exc)) from None


# ---------------------------------------------------------------------------------------------
class Request:
    """One validated CNI invocation.

    Strings are "" when absent (e.g. ``netns`` on a DEL without CNI_NETNS; ``container_id`` and
    ``ifname`` for GC/STATUS/VERSION). ``runtime_config`` is the config's ``runtimeConfig`` with
    ``ips`` (list of str, default []) and ``mac`` (str or None) always present.
    ``valid_attachments`` is a list of ``{"containerID", "ifname"}`` for GC, None otherwise.
    ``env`` holds every ``CNI_*`` variable that was present (what goes on the wire)."""

    __slots__ = ("command", "container_id", "netns", "ifname", "args", "path", "config", "cni_version",
                 "runtime_config", "prev_result", "valid_attachments", "env")

    def __init__(self, command: str, container_id: str, netns: str, ifname: str, args: dict, path: str,
                 config: dict, cni_version: str, runtime_config: dict | None = None,
                 prev_result: dict | None = None, valid_attachments: list | None = None,
                 env: dict | None = None):
        # a plain class, not a dataclass: see the note on imports above
        values = (command, container_id, netns, ifname, args, path, config, cni_version,
                  {"ips": [], "mac": None} if runtime_config is None else runtime_config,
                  prev_result, valid_attachments, {} if env is None else env)
        for name, value in zip(self.__slots__, values):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"Request is immutable (tried to set {name})")

    def _values(self) -> tuple:
        return tuple(getattr(self, n) for n in self.__slots__)

    def __eq__(self, other):
        return isinstance(other, Request) and self._values() == other._values()

    __hash__ = None   # holds dicts, like the frozen dataclass it replaces: not hashable

    def __repr__(self) -> str:
        return "Request(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"

    @property
    def network(self) -> str:
        return self.config.get("name", "")

    @property
    def pod_namespace(self) -> str | None:
        return self.args.get("K8S_POD_NAMESPACE")

    @property
    def pod_name(self) -> str | None:
        return self.args.get("K8S_POD_NAME")

    @property
    def key(self) -> tuple:
        """The spec's attachment key: (network name, container id, interface name)."""
        return (self.network, self.container_id, self.ifname)

    @property
    def path_dirs(self) -> list:
        return [p for p in self.path.split(":") if p]

    def to_wire(self) -> dict:
        """The body the plugin POSTs to the daemon."""
        return {"command": self.command, "env": dict(self.env), "config": self.config}

    @classmethod
    def from_wire(cls, body) -> "Request":
        """Rebuild (and re-validate) a Request from the plugin's POST body (dict, str or bytes)."""
        if not isinstance(body, dict):
            body = decode_json(body, "request body")
        if not isinstance(body, dict):
            raise CniError(ERR_DECODE, f"request body must be a JSON object, got {type(body).__name__}")
        command, env, config = body.get("command"), body.get("env"), body.get("config")
        if not isinstance(command, str):
            raise CniError(ERR_DECODE, f"request body: \"command\" must be a string, got {_q(command)}")
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise CniError(ERR_DECODE, "request body: \"env\" must be an object of strings")
        if "config" not in body:
            raise CniError(ERR_DECODE, "request body: \"config\" missing")
        if env.get("CNI_COMMAND", command) != command:
            raise CniError(ERR_INVALID_ENV, f"request body: command {_q(command)} does not match "
                                            f"CNI_COMMAND {_q(env['CNI_COMMAND'])}")
        env = dict(env, CNI_COMMAND=command)
        return _parse(env, config)


def parse_request(env, stdin) -> Request:
    """Validate a plugin invocation: ``env`` is the process environment (only CNI_* is read),
    ``stdin`` the network configuration (str or bytes). Raises CniError, nothing else."""
    command = _command(env)
    if command == "VERSION":
        return _parse_version(env, stdin)
    _required_env(env, command)
    if _blank(stdin):
        raise CniError(ERR_DECODE, "failed to decode network configuration on stdin: stdin is empty")
    return _parse(env, decode_json(stdin))


def _blank(stdin) -> bool:
    if isinstance(stdin, (bytes, bytearray, memoryview)):
        return not bytes(stdin).strip()
    return stdin is None or (isinstance(stdin, str) and not stdin.strip())


def _env(env, name: str) -> str:
    value = env.get(name)
    return value if isinstance(value, str) else ""


def _command(env) -> str:
    command = _env(env, "CNI_COMMAND")
    if not command:
        raise CniError(ERR_INVALID_ENV, "required environment variable CNI_COMMAND missing")
    if command not in COMMANDS:
        raise CniError(ERR_INVALID_ENV, f"CNI_COMMAND: unknown command {_q(command)}",
                       f"supported: {', '.join(COMMANDS)}")
    return command


def _required_env(env, command: str) -> None:
    missing = [name for name in REQUIRED_ENV[command] if not _env(env, name)]
    if missing:
        raise CniError(ERR_INVALID_ENV, f"required environment variable{'s' if len(missing) > 1 else ''} "
                                        f"{', '.join(missing)} missing for {command}")


def _parse_version(env, stdin) -> Request:
    version = SPEC_VERSION
    config: dict = {}
    if not _blank(stdin):
        obj = decode_json(stdin)
        if isinstance(obj, dict):
            config = obj
            if isinstance(obj.get("cniVersion"), str) and obj["cniVersion"]:
                version = obj["cniVersion"]
    return Request("VERSION", "", "", "", {}, _env(env, "CNI_PATH"), config, version,
                   env={k: v for k, v in env.items() if isinstance(k, str) and k.startswith("CNI_")
                        and isinstance(v, str)})


def version_info(requested: str | None = None) -> dict:
    """The VERSION answer."""
    return {"cniVersion": requested or SPEC_VERSION, "supportedVersions": list(SUPPORTED_VERSIONS)}


def _parse(env, config) -> Request:
    command = _command(env)
    if command == "VERSION":
        return _parse_version(env, json.dumps(config) if isinstance(config, dict) else "")
    _required_env(env, command)
    if not isinstance(config, dict):
        raise CniError(ERR_DECODE, f"network configuration must be a JSON object, got {type(config).__name__}")
    version = _config_version(config, command)
    try:
        return _parse_validated(env, config, command, version)
    except CniError as exc:
        exc.cni_version = exc.cni_version or version
        raise


def _config_version(config: dict, command: str) -> str:
    supported = ", ".join(SUPPORTED_VERSIONS)
    if "cniVersion" not in config:
        raise CniError(ERR_INCOMPATIBLE_VERSION, "incompatible CNI versions: network configuration has no "
                       "cniVersion (implies 0.1.0)", f"plugin supports {supported}")
    version = config["cniVersion"]
    if not isinstance(version, str):
        raise CniError(ERR_INVALID_CONFIG, f"network configuration: \"cniVersion\" must be a string, got {_q(version)}")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(ERR_INCOMPATIBLE_VERSION, f"incompatible CNI versions: cniVersion {_q(version)} is "
                       "not supported", f"plugin supports {supported}")
    need = MIN_VERSION.get(command)
    if need and _vkey(version) < _vkey(need):
        raise CniError(ERR_INCOMPATIBLE_VERSION, f"cniVersion {_q(version)} does not allow {command} "
                       f"(needs {need} or later)", cni_version=version)
    return version


_NO_VALUE = object()


def _bad_config(key: str, problem: str, value=_NO_VALUE) -> CniError:
    text = f"network configuration: {_q(key)} {problem}"
    if value is not _NO_VALUE:
        text += f", got {_q(value)}"
    return CniError(ERR_INVALID_CONFIG, text)


def _parse_validated(env, config: dict, command: str, version: str) -> Request:
    # -- configuration keys (code 7, naming the key) --------------------------------------------
    for key in ("name", "type"):
        if key not in config:
            raise _bad_config(key, "is required")
        if not isinstance(config[key], str) or not config[key]:
            raise _bad_config(key, "must be a non-empty string", config[key])
    if not valid_network_name(config["name"]):
        raise _bad_config("name", "must start with a letter or digit and contain only letters, digits, "
                          "'_', '.' and '-'", config["name"])
    for key in ("ipam", "dns", "args", "capabilities"):
        if key in config and not isinstance(config[key], dict):
            raise _bad_config(key, "must be an object", config[key])
    if "daemonSocket" in config:
        sock = config["daemonSocket"]
        if not isinstance(sock, str) or not sock or "\x00" in sock or any("\ud800" <= c <= "\udfff" for c in sock):
            raise _bad_config("daemonSocket", "must be a non-empty path", sock)
        if len(sock.encode("utf-8", "surrogatepass")) > MAX_UNIX_PATH:
            raise _bad_config("daemonSocket", f"is longer than {MAX_UNIX_PATH} bytes", sock)
    if "daemonTimeout" in config and not _valid_timeout(config["daemonTimeout"]):
        raise _bad_config("daemonTimeout", f"must be a number of seconds in (0, {MAX_TIMEOUT}]",
                          config["daemonTimeout"])
    runtime_config = _runtime_config(config)
    prev = config.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise _bad_config("prevResult", "must be an object", prev)
    if command == "CHECK" and prev is None:
        raise _bad_config("prevResult", "is required for CHECK")
    attachments = _valid_attachments(config) if command == "GC" else None
    # -- environment (code 4, naming the variable) -------------------------------------------
    container_id = netns = ifname = ""
    if command in ATTACHMENT_COMMANDS:
        container_id = _env(env, "CNI_CONTAINERID")
        if not valid_container_id(container_id):
            raise CniError(ERR_INVALID_ENV, f"CNI_CONTAINERID: invalid container id {_q(container_id)}",
                           "must start with a letter or digit and contain only letters, digits, '_', '.' and '-'")
        ifname = _env(env, "CNI_IFNAME")
        if not valid_ifname(ifname):
            raise CniError(ERR_INVALID_ENV, f"CNI_IFNAME: invalid interface name {_q(ifname)}: "
                           f"{_ifname_problem(ifname)}")
        netns = _env(env, "CNI_NETNS")
        if netns and "\x00" in netns:
            raise CniError(ERR_INVALID_ENV, f"CNI_NETNS: invalid path {_q(netns)}")
    args = parse_cni_args(_env(env, "CNI_ARGS")) if command in ATTACHMENT_COMMANDS else {}
    _check_cni_args(args)
    cni_env = {k: v for k, v in env.items() if isinstance(k, str) and k.startswith("CNI_") and isinstance(v, str)}
    return Request(command, container_id, netns, ifname, args, _env(env, "CNI_PATH"), config, version,
                   runtime_config, prev, attachments, cni_env)


def _runtime_config(config: dict) -> dict:
    rc = config.get("runtimeConfig")
    if rc is None:
        return {"ips": [], "mac": None}
    if not isinstance(rc, dict):
        raise _bad_config("runtimeConfig", "must be an object", rc)
    out = dict(rc)
    ips = rc.get("ips", [])
    if ips is None:
        ips = []
    if not isinstance(ips, list):
        raise _bad_config("runtimeConfig.ips", "must be a list of addresses", ips)
    for i, ip in enumerate(ips):
        if not isinstance(ip, str) or not _valid_ip_or_cidr(ip):
            raise _bad_config(f"runtimeConfig.ips[{i}]", "must be an IP address or CIDR", ip)
    mac = rc.get("mac")
    if mac is not None and (not isinstance(mac, str) or not _is_mac(mac)):
        raise _bad_config("runtimeConfig.mac", "must be a MAC address like 02:00:00:00:00:01", mac)
    out["ips"], out["mac"] = list(ips), mac
    return out


def _valid_ip_or_cidr(text: str) -> bool:
    import ipaddress  # lazy: only when runtimeConfig.ips is used
    try:
        if "/" in text:
            ipaddress.ip_interface(text)
        else:
            ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _valid_attachments(config: dict) -> list:
    key = "cni.dev/valid-attachments"
    if key not in config:
        # Never read "absent" as "nothing is valid": that would garbage-collect every pod.
        raise _bad_config(key, "is required for GC")
    items = config[key]
    if not isinstance(items, list):
        raise _bad_config(key, "must be a list", items)
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _bad_config(f"{key}[{i}]", "must be an object with containerID and ifname", item)
        cid, ifname = item.get("containerID"), item.get("ifname")
        if not valid_container_id(cid):
            raise _bad_config(f"{key}[{i}].containerID", "must be a valid container id", cid)
        if not valid_ifname(ifname):
            raise _bad_config(f"{key}[{i}].ifname", "must be a valid interface name", ifname)
        out.append({"containerID": cid, "ifname": ifname})
    return out


# ---------------------------------------------------------------------------------------------
# daemon protocol helpers
def daemon_socket(config: dict | None, env) -> str:
    """config ``daemonSocket``, else env VPCNET_CNI_SOCKET, else /run/vpcnet/cni.sock."""
    sock = (config or {}).get("daemonSocket")
    if isinstance(sock, str) and sock:
        return sock
    sock = env.get(SOCKET_ENV) if env is not None else None
    return sock if isinstance(sock, str) and sock else DEFAULT_SOCKET


def _valid_timeout(t) -> bool:
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        return False
    if isinstance(t, float) and not math.isfinite(t):
        return False
    return 0 < t <= MAX_TIMEOUT          # compares huge ints without converting them to float


def daemon_timeout(config: dict | None) -> float:
    """config ``daemonTimeout`` in seconds, else 30."""
    t = (config or {}).get("daemonTimeout")
    return float(t) if _valid_timeout(t) else DEFAULT_TIMEOUT


# ---------------------------------------------------------------------------------------------
# results
_IFACE_KEYS = {"0": ("name", "mac", "sandbox"), "1.0": ("name", "mac", "sandbox"),
               "1.1": ("name", "mac", "mtu", "sandbox", "socketPath", "pciID")}
_ROUTE_KEYS = {"0": ("dst", "gw"), "1.0": ("dst", "gw"),
               "1.1": ("dst", "gw", "mtu", "advmss", "priority", "table", "scope")}
_DNS_KEYS = ("nameservers", "domain", "search", "options")


def _family(version: str) -> str:
    return "1.1" if version == "1.1.0" else "1.0" if version == "1.0.0" else "0"


_ZERO_IS_EMPTY = ("mtu", "advmss", "priority")   # libcni: int omitempty; table/scope are *int (0 kept)


def _present(value, key: str = "") -> bool:
    if value is None or value == "" or value == [] or value == {}:
        return False
    return not (key in _ZERO_IS_EMPTY and value == 0 and not isinstance(value, bool))


def format_result(result: dict, version: str) -> dict:
    """Render the internal (1.1.0-shaped) result for ``version``:

    * 0.3.0 / 0.3.1 / 0.4.0: ``ips[]`` carry ``"version": "4"|"6"``; interfaces {name, mac, sandbox};
      routes {dst, gw}.
    * 1.0.0: no ``version`` in ``ips[]``; interfaces {name, mac, sandbox}; routes {dst, gw}.
    * 1.1.0: interfaces add mtu, socketPath, pciID; routes add mtu, advmss, priority, table, scope.

    Empty lists/objects and empty values are omitted (libcni's omitempty). Raises CniError(1) for
    an unsupported version and ValueError for a malformed internal result.
    """
    if version not in SUPPORTED_VERSIONS:
        raise CniError(ERR_INCOMPATIBLE_VERSION, f"cannot render a result as cniVersion {_q(version)}",
                       f"supported: {', '.join(SUPPORTED_VERSIONS)}")
    if not isinstance(result, dict):
        raise ValueError(f"result must be an object, got {type(result).__name__}")
    fam = _family(version)
    out: dict = {"cniVersion": version}
    interfaces = _list(result, "interfaces")
    if interfaces:
        out["interfaces"] = []
        for i, iface in enumerate(interfaces):
            if not isinstance(iface, dict) or not isinstance(iface.get("name"), str) or not iface["name"]:
                raise ValueError(f"interfaces[{i}] needs a name")
            out["interfaces"].append({k: iface[k] for k in _IFACE_KEYS[fam] if _present(iface.get(k), k)})
    ips = _list(result, "ips")
    if ips:
        out["ips"] = []
        for i, ip in enumerate(ips):
            if not isinstance(ip, dict) or not isinstance(ip.get("address"), str) or "/" not in ip["address"]:
                raise ValueError(f"ips[{i}] needs an address in CIDR form")
            entry = {}
            if fam == "0":
                entry["version"] = "6" if ":" in ip["address"] else "4"
            if "interface" in ip and ip["interface"] is not None:
                idx = ip["interface"]
                if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < len(interfaces):
                    raise ValueError(f"ips[{i}].interface {_q(idx)} is not an index into interfaces")
                entry["interface"] = idx
            entry["address"] = ip["address"]
            if _present(ip.get("gateway")):
                entry["gateway"] = ip["gateway"]
            out["ips"].append(entry)
    routes = _list(result, "routes")
    if routes:
        out["routes"] = []
        for i, route in enumerate(routes):
            if not isinstance(route, dict) or not isinstance(route.get("dst"), str):
                raise ValueError(f"routes[{i}] needs a dst")
            out["routes"].append({k: route[k] for k in _ROUTE_KEYS[fam] if _present(route.get(k), k)})
    dns = result.get("dns")
    if dns is not None and not isinstance(dns, dict):
        raise ValueError("dns must be an object")
    dns = {k: dns[k] for k in _DNS_KEYS if dns and _present(dns.get(k))}
    if dns:
        out["dns"] = dns
    return out


def _list(result: dict, key: str) -> list:
    value = result.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{key} must be a list")
    return value


def parse_result(obj, what: str = "prevResult") -> dict:
    """Bring a result of any supported version (e.g. ``prevResult``) to the internal 1.1.0 shape:
    drops ``ips[].version`` and ``cniVersion``. Raises CniError(7) naming ``what`` if malformed."""
    if not isinstance(obj, dict):
        raise CniError(ERR_INVALID_CONFIG, f"{what}: must be an object, got {_q(obj)}")
    out: dict = {}
    for key in ("interfaces", "ips", "routes"):
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
            raise CniError(ERR_INVALID_CONFIG, f"{what}: {_q(key)} must be a list of objects")
        out[key] = [{k: v for k, v in x.items() if not (key == "ips" and k == "version")} for x in value]
    dns = obj.get("dns")
    if dns is not None:
        if not isinstance(dns, dict):
            raise CniError(ERR_INVALID_CONFIG, f"{what}: \"dns\" must be an object")
        out["dns"] = dict(dns)
    return out
