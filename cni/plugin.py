"""`vpcnet-cni`: the CNI plugin executable, exec'd by the container runtime once per call.

Standard library + :mod:`vpcnet.cni.spec` only (start-up time matters; nothing stateful lives
here). It answers VERSION itself, validates everything that can be validated locally with
``spec.parse_request``, and forwards ADD/DEL/CHECK/STATUS/GC to the node daemon:
``POST /v1/cni`` (HTTP/1.1 over a unix socket) with ``{"command", "env", "config"}``; see
``vpcnet.cni.spec`` for the full wire contract.

stdout carries exactly one JSON document (the result, the VERSION answer or the CNI error) or
nothing (successful DEL/CHECK/STATUS/GC); exit status 0 on success, 1 on error; logs go to
stderr. Whatever the daemon does (absent, refusing, hanging, crashing mid-answer, talking
nonsense) the plugin answers code 11 within ``daemonTimeout`` seconds and never invents a result.
"""
from __future__ import annotations

import _socket  # the C module: `socket` would add selectors + enum set-up (~5 ms) to every exec
import json
import os
import sys
import time

from vpcnet.cni import spec

USER_AGENT = "vpcnet-cni"
MAX_HEADER = 64 * 1024
MAX_BODY = 16 * 1024 * 1024


class Malformed(Exception):
    """The daemon's answer is not the documented HTTP/JSON response."""


# ---------------------------------------------------------------------------------------------
# HTTP/1.1, just enough of it (http.client costs start-up time and cannot bound a whole request)
def build_request(body: bytes, path: str = spec.WIRE_PATH) -> bytes:
    head = (f"{spec.WIRE_METHOD} {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {USER_AGENT}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body


def _parse_head(head: bytes) -> tuple[int, dict]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise Malformed(f"bad status line {lines[0][:80]!r}")
    status = int(parts[1])
    headers: dict = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name.strip():
            raise Malformed(f"bad header line {line[:80]!r}")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return status, headers


def read_response(recv) -> tuple[int, dict, bytes]:
    """Read one HTTP/1.x response; ``recv()`` returns the next bytes, b"" at EOF. Handles interim
    1xx responses, Content-Length, chunked transfer coding and read-to-EOF bodies."""
    buf = b""

    def more(what: str) -> None:
        nonlocal buf
        chunk = recv()
        if not chunk:
            raise Malformed(f"connection closed {what}")
        buf += chunk

    while True:
        while b"\r\n\r\n" not in buf:
            if len(buf) > MAX_HEADER:
                raise Malformed("response headers too large")
            more("before a complete response header" if buf else "without a response")
        head, _, buf = buf.partition(b"\r\n\r\n")
        status, headers = _parse_head(head)
        if status >= 200:
            break
    if status in (204, 304):
        return status, headers, b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            while b"\r\n" not in buf:
                if len(buf) > MAX_HEADER:
                    raise Malformed("bad chunk header")
                more("inside a chunked body")
            line, _, buf = buf.partition(b"\r\n")
            size_text = line.split(b";")[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise Malformed(f"bad chunk size {line[:40]!r}") from None
            if size < 0 or len(body) + size > MAX_BODY:
                raise Malformed("response body too large")
            if size == 0:
                return status, headers, body
            while len(buf) < size + 2:
                more("inside a chunked body")
            if buf[size:size + 2] != b"\r\n":
                raise Malformed("chunk not terminated by CRLF")
            body, buf = body + buf[:size], buf[size + 2:]
    if "content-length" in headers:
        text = headers["content-length"]
        if not text.isdigit() or not text.isascii():
            raise Malformed(f"bad Content-Length {text[:40]!r}")
        length = int(text)
        if length > MAX_BODY:
            raise Malformed("response body too large")
        while len(buf) < length:
            more(f"after {len(buf)} of {length} body bytes")
        return status, headers, buf[:length]
    while True:                                   # no length: the body runs to EOF
        if len(buf) > MAX_BODY:
            raise Malformed("response body too large")
        chunk = recv()
        if not chunk:
            return status, headers, buf
        buf += chunk


def interpret_response(command: str, status: int, payload: bytes):
    """Map the daemon's answer to the result to print (dict, or None for "print nothing");
    raises CniError for a daemon-reported CNI error and Malformed for anything undocumented."""
    if status == 204 and command != "ADD" and not payload.strip():
        return None
    try:
        obj = json.loads(payload.decode("utf-8")) if payload.strip() else None
    except (ValueError, RecursionError):
        raise Malformed(f"HTTP {status} with a body that is not JSON: {payload[:120]!r}") from None
    if status == 200:
        if not isinstance(obj, dict) or "result" not in obj:
            raise Malformed(f'HTTP 200 without a "result" member: {payload[:120]!r}')
        result = obj["result"]
        if result is None:
            if command == "ADD":
                raise Malformed("HTTP 200 with a null result for ADD")
            return None
        if not isinstance(result, dict):
            raise Malformed(f"result is not a JSON object: {payload[:120]!r}")
        return result
    try:
        raise spec.CniError.from_wire(obj)
    except ValueError as exc:
        raise Malformed(f"HTTP {status}, not a CNI error body ({exc}): {payload[:120]!r}") from None


def post(address: str, body: bytes, timeout: float) -> tuple[int, dict, bytes]:
    """POST the request over the unix socket ``address``; the whole exchange ends by ``timeout``."""
    deadline = time.monotonic() + timeout

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        return left

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(remaining())
        sock.connect("\0" + address[1:] if address.startswith("@") else address)
        sock.settimeout(remaining())
        sock.sendall(build_request(body))

        def recv() -> bytes:
            sock.settimeout(remaining())
            return sock.recv(65536)

        return read_response(recv)
    finally:
        sock.close()


def forward(req: spec.Request, env) -> dict | None:
    """Send ``req`` to the node daemon; returns the result to print (or None) or raises CniError."""
    address = spec.daemon_socket(req.config, env)
    timeout = spec.daemon_timeout(req.config)
    body = json.dumps(req.to_wire(), ensure_ascii=True).encode("ascii")
    where = f"vpcnet node daemon at {address}"
    stage = "connect"
    try:
        status, _headers, payload = post(address, body, timeout)
        stage = "answer"
        return interpret_response(req.command, status, payload)
    except spec.CniError:
        raise
    except Malformed as exc:
        raise spec.CniError(spec.ERR_TRY_AGAIN, f"malformed response from {where}", str(exc)) from None
    except TimeoutError:
        raise spec.CniError(spec.ERR_TRY_AGAIN, f"{where} did not answer within {timeout:g}s",
                            f"{req.command} {req.container_id}/{req.ifname}: the daemon may still be working; "
                            "the runtime will retry or DEL") from None
    except FileNotFoundError:
        raise spec.CniError(spec.ERR_TRY_AGAIN, f"vpcnet node daemon socket {address} does not exist",
                            "is `vpcnet node` running on this node?") from None
    except ConnectionRefusedError:
        raise spec.CniError(spec.ERR_TRY_AGAIN, f"{where} refused the connection",
                            "the socket exists but nothing accepts on it (daemon stopped or restarting?)") from None
    except OSError as exc:
        raise spec.CniError(spec.ERR_TRY_AGAIN, f"cannot talk to {where}: {exc.strerror or exc}",
                            f"during {stage}: {exc!r}") from None
    except ValueError as exc:            # e.g. a socket path the OS cannot encode
        raise spec.CniError(spec.ERR_TRY_AGAIN, f"cannot talk to {where}: {exc}", f"during {stage}") from None


# ---------------------------------------------------------------------------------------------
def _emit(stdout, obj) -> None:
    stdout.write(json.dumps(obj, ensure_ascii=True) + "\n")
    stdout.flush()


def _log(stderr, text: str) -> None:
    if stderr is not None:
        try:
            stderr.write(f"vpcnet-cni: {text}\n")
            stderr.flush()
        except (OSError, ValueError):
            pass


def run(env, stdin, stdout, stderr=None) -> int:
    """One plugin invocation: ``env`` mapping, ``stdin`` (bytes or str), text ``stdout``/``stderr``.
    Returns the exit status."""
    req = None
    try:
        try:
            req = spec.parse_request(env, stdin)
            if req.command == "VERSION":
                _emit(stdout, spec.version_info(req.cni_version))
                return 0
            result = forward(req, env)
        except spec.CniError as exc:
            version = req.cni_version if req is not None else None
            _log(stderr, f"{env.get('CNI_COMMAND', '?')} {env.get('CNI_CONTAINERID', '')}/"
                         f"{env.get('CNI_IFNAME', '')}: error {exc.code}: {exc.msg}"
                         + (f" ({exc.details})" if exc.details else ""))
            _emit(stdout, exc.to_json(version))
            return 1
        if result is not None:
            _emit(stdout, result)
        return 0
    except Exception as exc:  # noqa: BLE001 - the runtime must still get one JSON error document
        import traceback
        _log(stderr, "internal error:\n" + traceback.format_exc())
        err = spec.CniError(spec.ERR_INTERNAL, "vpcnet-cni internal error", repr(exc))
        _emit(stdout, err.to_json(req.cni_version if req is not None else None))
        return 1


def main() -> int:
    stdin = b""
    if sys.stdin is not None:
        try:
            if not sys.stdin.isatty():
                stdin = sys.stdin.buffer.read()
        except (OSError, ValueError):
            stdin = b""
    return run(os.environ, stdin, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
