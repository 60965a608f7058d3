"""NETCONF session driver for the leaves (ncclient over SSH): read the running configuration and
apply an edit-config atomically, so a leaf is never left half-configured.

    target = LeafTarget("lf1", "172.30.0.1", key_file="/etc/vpcnet/id_ed25519", netns="lab-mgmt")
    running = read_running(target)                      # lxml <data>
    plan = diff_leaf(state, running)
    if not plan.empty:
        report = apply(target, plan.edit_config())      # ApplyReport (timings, what was used)

**apply** (one SSH session, every step bounded by ``LeafTarget.rpc_timeout``):

1. connect; ``:candidate`` is required (:class:`NetconfError` otherwise). ``:confirmed-commit``
   and ``:rollback-on-error`` are used when the server offers them.
2. ``lock candidate``; then ``lock running`` (the server may refuse it as unsupported: then the
   candidate lock alone guards us). A lock held by another session is retried until
   ``lock_wait`` seconds have passed, then refused naming the holder's session id. A candidate
   that another session edited *without* holding the lock cannot be locked (netconfd:
   ``resource-denied``, "discard-changes needed"): nobody protects those edits, so they are
   discarded and the lock is retried.
3. ``discard-changes`` (start from running, whatever was left in the candidate), then
   ``edit-config`` to the candidate with ``default-operation merge`` and, when offered,
   ``error-option rollback-on-error``. The payload may also be a function of the running
   configuration, called with a ``get-config`` read *under the locks* ("plan under the lock":
   nobody can change the leaf between the read and the commit; one SSH session instead of two).
4. ``commit`` with ``<confirmed/>`` and a short ``confirm-timeout`` (``confirm_timeout``), then
   the confirming ``commit``. If the controller dies or the session drops in between, the
   leaf rolls back by itself after the timeout (or at once when the session ends, RFC 6241
   8.4.1): a commit that cannot be confirmed never sticks. Without the capability: one plain
   ``commit``.
5. ``copy-config running -> startup`` when ``:startup`` is offered (``save_startup``), so the
   leaf restarts with what vpcnet configured; then unlock (running, candidate).

On **any** error: ``cancel-commit`` if a confirmed commit is pending (``:confirmed-commit:1.1``;
on 1.0 the session is dropped, which makes the server revert), ``discard-changes``, unlock what
was locked; then :class:`NetconfError` naming the leaf, the step, the error-tag, the error-path
and the message, e.g. ``leaf lf1: netconf edit-config refused: invalid-value at
/vl:leaf/vl:mac-vrf[vl:name='x']/vl:vlan: value not in range (bad-value 5000)``.

**No ``<validate>``**: netconfd 2.13 turns a ``<commit>`` sent right after ``<validate>`` into a
silent no-op (reply ``<ok/>``, running unchanged); ``commit`` validates anyway.

**Management namespace** (``LeafTarget.netns``): the TCP connection is opened inside
``/var/run/netns/<netns>`` by a short-lived helper thread that calls ``setns(CLONE_NEWNET)``
(a network namespace is per thread on Linux), creates and connects the socket and exits; a
socket keeps the namespace it was created in, so the connected socket is handed to ncclient
(``sock=``) and the process itself never changes namespace. Lab management namespaces have no
default route, so lab traffic cannot leak onto the real network.

**Host keys**: ``host_key`` (``"ssh-ed25519 AAAA..."`` or the base64 part) or ``known_hosts``
(an OpenSSH file, looked up as ``host`` and ``[host]:port``) pins the server key; with neither
the key is not checked (lab only). Only ``key_file``/``password`` are used for authentication,
never an agent or ``~/.ssh`` keys.

**Timeouts**: connect (TCP + SSH + hello) is bounded by ``connect_timeout`` through a watchdog
that shuts the socket down (paramiko's own negotiation has no overall deadline); each RPC by
``rpc_timeout``; lock waits by ``lock_wait``.

**Latency**: ncclient's session thread looks at its send queue only when its ``select`` times
out, every ``ncclient.transport.session.TICK`` (0.1 s), so every RPC costs up to 100 ms of
idle waiting: ~1 s for the ten RPCs of an apply. Importing this module lowers TICK to
:data:`NCCLIENT_TICK` (process-wide; the cost is a 100 Hz wake-up per open session). Measured
against netconfd: lock/discard/unlock 100 ms -> 7 ms each.
"""
from __future__ import annotations

import ctypes
import logging
import os
import re
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Union

from lxml import etree

from .xmlutil import parse

__all__ = ["LeafTarget", "NetconfError", "NetconfConnectError", "RpcErrorInfo", "ApplyReport",
           "Payload", "connect", "read_running", "apply", "netns_socket",
           "DEFAULT_CONFIRM_TIMEOUT", "DEFAULT_LOCK_WAIT", "NCCLIENT_TICK"]

LOG = logging.getLogger(__name__)

Config = Union[str, etree._Element]
Payload = Union[Config, Callable[[etree._Element], Union[Config, None]]]

DEFAULT_CONFIRM_TIMEOUT = 30      # seconds the leaf waits for the confirming commit
DEFAULT_LOCK_WAIT = 10.0          # seconds to wait for a lock another session holds
NCCLIENT_TICK = 0.01              # see "Latency" above
CLONE_NEWNET = 0x40000000
_NETNS_DIR = "/var/run/netns"
_NETNS_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CAP = "urn:ietf:params:netconf:capability:"
_RPC_PREFIX_RE = re.compile(r"^/nc:rpc/nc:[\w-]+/nc:config(?=/)")

try:
    import ncclient.transport.session as _nc_session
    _nc_session.TICK = min(_nc_session.TICK, NCCLIENT_TICK)
except ImportError:   # ncclient is an install requirement; connect() reports it if missing
    pass


# ---------------------------------------------------------------------------- values
@dataclass(frozen=True)
class LeafTarget:
    """How to reach one leaf's NETCONF server."""
    leaf: str
    host: str
    port: int = 830
    username: str = "root"
    key_file: str | None = None
    password: str | None = None
    known_hosts: str | None = None
    host_key: str | None = None
    netns: str | None = None
    connect_timeout: float = 10.0
    rpc_timeout: float = 30.0

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def where(self) -> str:
        return self.address + (f" (from netns {self.netns})" if self.netns else "")


@dataclass(frozen=True)
class RpcErrorInfo:
    """One ``<rpc-error>``: what the leaf said, with the edit-config prefix of the path cut."""
    tag: str | None
    path: str | None
    message: str | None
    app_tag: str | None = None
    severity: str | None = None
    bad_value: str | None = None
    session_id: str | None = None      # lock-denied: the session holding the lock

    def text(self) -> str:
        out = self.tag or "error"
        if self.path:
            out += f" at {self.path}"
        out += f": {self.message or 'no error-message'}"
        if self.bad_value is not None:
            out += f" (bad-value {self.bad_value})"
        if self.session_id is not None:
            out += f" (held by session {self.session_id})"
        return out


class NetconfError(Exception):
    """A NETCONF operation on a leaf failed; the message names the leaf, the step and, for
    an ``<rpc-error>``, its tag, path and message. The leaf was left as it was before."""

    def __init__(self, message: str, *, leaf: str, step: str = "",
                 errors: tuple[RpcErrorInfo, ...] = ()):
        super().__init__(message)
        self.leaf = leaf
        self.step = step
        self.errors = errors


class NetconfConnectError(NetconfError):
    """The leaf could not be reached (TCP, SSH, authentication, host key or hello)."""


@dataclass
class ApplyReport:
    """What one :func:`apply` did and how long it took (seconds)."""
    leaf: str
    session_id: str | None = None
    connect_s: float = 0.0
    apply_s: float = 0.0
    total_s: float = 0.0
    confirmed_commit: bool = False
    rollback_on_error: bool = False
    running_locked: bool = False
    saved_startup: bool = False
    discarded_foreign_edits: bool = False
    steps: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- sockets
def _setns(fd: int) -> None:
    if hasattr(os, "setns"):          # Python >= 3.12
        os.setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns(CLONE_NEWNET): {os.strerror(err)}")


def _connect_tcp(host: str, port: int, timeout: float) -> socket.socket:
    last: OSError | None = None
    for family, kind, proto, _, addr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(addr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError(f"no address for {host}")


def netns_socket(netns: str | None, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP socket connected to ``host:port`` from inside network namespace ``netns`` (a name
    under /var/run/netns; ``None``: this process's own namespace). The namespace switch happens
    in a helper thread only; the caller's thread and process stay where they are."""
    if netns is None:
        return _connect_tcp(host, port, timeout)
    if not _NETNS_RE.fullmatch(netns) or netns in (".", ".."):
        raise OSError(f"netns name {netns!r} is not a plain name")
    path = os.path.join(_NETNS_DIR, netns)
    result: dict = {}

    def worker() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            result["sock"] = _connect_tcp(host, port, timeout)
        except BaseException as exc:          # handed to the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=worker, name=f"netns-connect-{netns}", daemon=True)
    thread.start()
    thread.join(timeout + 5.0)
    if thread.is_alive():
        raise TimeoutError(f"connect from netns {netns} did not finish in {timeout:.0f}s")
    if "error" in result:
        raise result["error"]
    return result["sock"]


# ---------------------------------------------------------------------------- sessions
def _host_key_b64(target: LeafTarget) -> str | None:
    if target.host_key:
        parts = target.host_key.split()
        return parts[1] if len(parts) >= 2 else parts[0]
    if target.known_hosts:
        import paramiko
        try:
            keys = paramiko.HostKeys(target.known_hosts)
        except OSError as exc:
            raise NetconfConnectError(f"leaf {target.leaf}: known_hosts {target.known_hosts}: "
                                      f"{exc}", leaf=target.leaf, step="connect") from None
        for name in (target.host, f"[{target.host}]:{target.port}"):
            found = keys.lookup(name)
            if found:
                for kind in ("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "ssh-rsa"):
                    if kind in found:
                        return found[kind].get_base64()
                return next(iter(found.values())).get_base64()
        raise NetconfConnectError(f"leaf {target.leaf}: no host key for {target.address} in "
                                  f"{target.known_hosts}", leaf=target.leaf, step="connect")
    return None


def connect(target: LeafTarget):
    """An ncclient ``Manager`` connected to the leaf (use it as a context manager). Every
    failure raises :class:`NetconfConnectError` naming the leaf and the address."""
    from ncclient import manager

    hostkey = _host_key_b64(target)
    try:
        sock = netns_socket(target.netns, target.host, target.port, target.connect_timeout)
    except (OSError, TimeoutError) as exc:
        raise NetconfConnectError(f"leaf {target.leaf}: cannot connect to {target.where()}: "
                                  f"{exc}", leaf=target.leaf, step="connect") from exc
    fired = threading.Event()

    def watchdog() -> None:     # paramiko's negotiation has no overall deadline: cut it
        fired.set()
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    timer = threading.Timer(target.connect_timeout, watchdog)
    timer.daemon = True
    timer.start()
    try:
        return manager.connect(
            host=target.host, port=target.port, sock=sock, username=target.username,
            key_filename=target.key_file, password=target.password,
            hostkey_verify=hostkey is not None, hostkey_b64=hostkey,
            allow_agent=False, look_for_keys=False, timeout=target.connect_timeout,
            device_params={"name": "default"},
            manager_params={"timeout": target.rpc_timeout})
    except Exception as exc:
        sock.close()
        why = f"timed out after {target.connect_timeout:.0f}s" if fired.is_set() else \
            f"{type(exc).__name__}: {exc}"
        raise NetconfConnectError(f"leaf {target.leaf}: cannot connect to {target.where()}: "
                                  f"ssh/netconf session failed: {why}",
                                  leaf=target.leaf, step="connect") from exc
    finally:
        timer.cancel()


@contextmanager
def _session(target: LeafTarget):
    m = connect(target)
    try:
        yield m
    finally:
        _close(m)


def _close(m) -> None:
    try:
        if m.connected:
            m.close_session()
    except Exception as exc:            # the session is going away anyway
        LOG.debug("close-session: %s", exc)
    try:
        m._session.close()
    except Exception as exc:
        LOG.debug("transport close: %s", exc)


# ---------------------------------------------------------------------------- errors
def _rpc_errors(exc) -> tuple[RpcErrorInfo, ...]:
    out = []
    for err in (getattr(exc, "errlist", None) or [exc]):
        found: dict[str, str] = {}
        info = getattr(err, "info", None)
        if info:
            try:
                for e in etree.fromstring(info.encode()).iter():
                    if isinstance(e.tag, str) and e.text:
                        found.setdefault(etree.QName(e).localname, e.text.strip())
            except etree.XMLSyntaxError:
                pass
        bad = found.get("bad-value")
        path = (getattr(err, "path", None) or "").strip() or None
        if path:
            path = _RPC_PREFIX_RE.sub("", path)
            # netconfd names the node, not a value, in bad-value of instance-required errors
            if bad is not None and re.split(r"[/:]", path.rsplit("/", 1)[-1])[-1] == bad:
                bad = None
        out.append(RpcErrorInfo(tag=getattr(err, "tag", None), path=path,
                                message=(getattr(err, "message", None) or "").strip() or None,
                                app_tag=getattr(err, "app_tag", None),
                                severity=getattr(err, "severity", None), bad_value=bad,
                                session_id=found.get("session-id")))
    return tuple(out)


def _error(target: LeafTarget, step: str, exc: BaseException) -> NetconfError:
    from ncclient.operations import RPCError, TimeoutExpiredError
    from ncclient.transport import TransportError

    if isinstance(exc, NetconfError):
        return exc
    if isinstance(exc, RPCError):
        errors = _rpc_errors(exc)
        text = "; ".join(e.text() for e in errors)
        return NetconfError(f"leaf {target.leaf}: netconf {step} refused: {text}",
                            leaf=target.leaf, step=step, errors=errors)
    if isinstance(exc, TimeoutExpiredError):
        return NetconfError(f"leaf {target.leaf}: netconf {step} timed out after "
                            f"{target.rpc_timeout:.0f}s ({target.address})",
                            leaf=target.leaf, step=step)
    if isinstance(exc, (TransportError, OSError)):
        return NetconfConnectError(f"leaf {target.leaf}: netconf {step}: connection to "
                                   f"{target.address} lost: {exc}", leaf=target.leaf, step=step)
    return NetconfError(f"leaf {target.leaf}: netconf {step} failed: {type(exc).__name__}: {exc}",
                        leaf=target.leaf, step=step)


def _has(caps, name: str) -> bool:
    return any(c.startswith(_CAP + name) for c in caps)


# ---------------------------------------------------------------------------- operations
def read_running(target: LeafTarget, subtree: str | etree._Element | None = None
                 ) -> etree._Element:
    """The leaf's running configuration: the ``<data>`` element of ``get-config``, optionally
    limited by a subtree filter (``'<leaf xmlns="urn:vpcnet:yang:leaf"/>'``)."""
    step = "get-config running"
    with _session(target) as m:
        try:
            flt = None
            if subtree is not None:
                if isinstance(subtree, etree._Element):
                    subtree = etree.tostring(subtree, encoding="unicode")
                flt = ("subtree", subtree)
            reply = m.get_config(source="running", filter=flt)
            return parse(etree.tostring(reply.data_ele))
        except Exception as exc:
            raise _error(target, step, exc) from exc


def _lock(m, name: str, deadline: float, report: ApplyReport, optional: bool) -> bool:
    """Lock ``name``; True when locked, False when the server does not support it (optional)."""
    from ncclient.operations import RPCError

    discarded = False
    while True:
        try:
            m.lock(name)
            return True
        except RPCError as exc:
            tag = getattr(exc, "tag", None)
            if optional and tag in ("operation-not-supported", "operation-failed",
                                    "access-denied"):
                return False
            if tag == "resource-denied" and name == "candidate" and not discarded:
                m.discard_changes()           # unlocked edits of another session: unprotected
                discarded = report.discarded_foreign_edits = True
                continue
            if tag == "lock-denied" and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            raise


def _cleanup(m, caps, report: ApplyReport, locked: list[str], pending_confirm: bool) -> None:
    """Best effort, every RPC bounded: leave the leaf as it was before :func:`apply`."""
    if pending_confirm:
        if _has(caps, "confirmed-commit:1.1"):
            try:
                m.cancel_commit()
                report.steps.append("cancel-commit")
            except Exception as exc:
                LOG.warning("leaf %s: cancel-commit failed (%s); dropping the session so the "
                            "leaf reverts the confirmed commit", report.leaf, exc)
                _close(m)
                return
        else:       # 1.0: no cancel-commit; ending the session reverts (RFC 6241 8.4.1)
            _close(m)
            report.steps.append("close-session (reverts the confirmed commit)")
            return
    if "candidate" in locked:      # never discard a candidate someone else holds
        try:
            m.discard_changes()
            report.steps.append("discard-changes")
        except Exception as exc:
            LOG.warning("leaf %s: discard-changes after an error failed: %s", report.leaf, exc)
    for name in reversed(locked):
        try:
            m.unlock(name)
            report.steps.append(f"unlock {name}")
        except Exception as exc:
            LOG.warning("leaf %s: unlock %s after an error failed: %s", report.leaf, name, exc)


def _text(payload) -> str:
    if isinstance(payload, etree._Element):
        return etree.tostring(payload, encoding="unicode")
    return payload


def apply(target: LeafTarget, payload: Payload, *,
          confirm_timeout: int = DEFAULT_CONFIRM_TIMEOUT, lock_wait: float = DEFAULT_LOCK_WAIT,
          save_startup: bool = True, subtree: str | None = None) -> ApplyReport:
    """Apply ``payload`` to the leaf atomically; see the module docstring for the sequence.
    Raises :class:`NetconfError` (the leaf unchanged) or :class:`NetconfConnectError`.

    ``payload`` is a ``<config>`` (text or element: ``LeafPlan.edit_config()``, a rendered
    document), or a function ``running -> <config> | None`` that plans *under the locks*: it
    gets the running configuration (``get-config``, ``subtree`` filter) read after both locks
    are held, so nobody can change the leaf between the read and the commit. ``None`` means
    in sync: nothing is edited (``report.steps == ["in sync"]``). An exception raised by the
    function is re-raised unchanged after the locks are released."""
    report = ApplyReport(target.leaf)
    t0 = time.monotonic()
    m = connect(target)
    report.connect_s = time.monotonic() - t0
    report.session_id = m.session_id
    caps = list(m.server_capabilities)
    locked: list[str] = []
    pending_confirm = False
    step = "capabilities"
    t1 = time.monotonic()
    try:
        if not _has(caps, "candidate"):
            raise NetconfError(f"leaf {target.leaf}: netconf server at {target.address} does not "
                               "offer :candidate; vpcnet only configures through a candidate",
                               leaf=target.leaf, step=step)
        report.confirmed_commit = _has(caps, "confirmed-commit")
        report.rollback_on_error = _has(caps, "rollback-on-error")
        deadline = time.monotonic() + lock_wait
        step = "lock candidate"
        _lock(m, "candidate", deadline, report, optional=False)
        locked.append("candidate")
        step = "lock running"
        if _lock(m, "running", deadline, report, optional=True):
            locked.append("running")
            report.running_locked = True
        step = "discard-changes"
        m.discard_changes()
        if callable(payload):
            step = "get-config running"
            flt = ("subtree", subtree) if subtree is not None else None
            running = parse(etree.tostring(m.get_config(source="running", filter=flt).data_ele))
            step = "plan"
            payload = payload(running)
        if payload is None:
            report.steps.append("in sync")
            step = "unlock"
            _unlock(m, locked, report)
            return _done(m, report, t0, t1)
        step = "edit-config"
        m.edit_config(target="candidate", config=_text(payload), default_operation="merge",
                      error_option="rollback-on-error" if report.rollback_on_error else None)
        if report.confirmed_commit:
            step = "commit (confirmed)"
            m.commit(confirmed=True, timeout=str(int(confirm_timeout)))
            pending_confirm = True
            step = "commit (confirming)"
            m.commit()
            pending_confirm = False
        else:
            step = "commit"
            m.commit()
        if save_startup and _has(caps, "startup"):
            step = "copy-config running->startup"
            m.copy_config(source="running", target="startup")
            report.saved_startup = True
        report.steps.append("committed")
    except BaseException as exc:
        report.steps.append(f"failed at {step}")
        try:
            _cleanup(m, caps, report, locked, pending_confirm)
        finally:
            _close(m)
        if step == "plan" or not isinstance(exc, Exception):
            raise
        raise _error(target, step, exc) from exc
    _unlock(m, locked, report)
    return _done(m, report, t0, t1)


def _unlock(m, locked: list[str], report: ApplyReport) -> None:
    """After a successful commit (or nothing to do): an unlock that fails is only logged, the
    change is in; closing the session releases the lock anyway."""
    for name in reversed(locked):
        try:
            m.unlock(name)
        except Exception as exc:
            LOG.warning("leaf %s: unlock %s after commit failed: %s", report.leaf, name, exc)
    locked.clear()


def _done(m, report: ApplyReport, t0: float, t1: float) -> ApplyReport:
    _close(m)
    report.apply_s = time.monotonic() - t1
    report.total_s = time.monotonic() - t0
    return report
