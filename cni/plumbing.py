"""Pod plumbing over rtnetlink: one veth pair per attachment, host end on br-int's side.

The host end lives in the network namespace of Open vSwitch (``host_netns``: a name under
/var/run/netns or a path; None = the daemon's own), named after the pod (``pod_port_name``), and
is created up; the pod end is created directly inside the pod's namespace under CNI_IFNAME with
its MAC and MTU, in the same netlink request, so a name clash there fails the ADD before anything
exists. On a netdev (userspace) datapath the pod end gets TX checksum offload off, or userspace
conntrack sees bad TCP checksums and marks the connection invalid.

Why it is built this way (an ADD's plumbing costs a few milliseconds, most of it the kernel's):

* A netlink socket belongs to the namespace it was opened in, whichever thread uses it later.
  Sockets are therefore opened by a short-lived thread that joined the namespace with setns(2)
  (per-thread for network namespaces; Python 3.11 has no os.setns, so libc's through ctypes) and
  then ends: no thread that runs anything else, and no pooled thread, is ever in a pod's
  namespace. pyroute2's ``NetNS`` instead forks a helper process per handle (tens of ms each).
* host side: one persistent NETLINK_ROUTE socket per host namespace, opened once, shared by all
  requests one at a time (the kernel serialises link changes under RTNL anyway); it is re-opened
  if that namespace is deleted and re-created under the same name.
* pod side: per attachment a NETLINK_ROUTE socket and an ioctl socket opened in CNI_NETNS.
* the messages are packed here (a dozen attributes): pyroute2 spends ~1 ms of CPU per request,
  which on a small node is the whole budget when ten ADDs run at once. pyroute2 still parses
  what CHECK reads back (``inspect``), which is not on the ADD path.
* TX checksum offload goes off with the SIOCETHTOOL ioctl (ETHTOOL_STXCSUM, data 0) on the pod
  namespace's socket, checked with ETHTOOL_GTXCSUM: the kernel then drops the features that
  depend on it (TSO, ...) exactly as ``ethtool -K IF tx off`` does, without nsenter + ethtool.

Two steps, so the node daemon can create the pair while the controller is still allocating
the address: ``create`` (veth pair, pod end named and sized, TX checksum off, lo up: nothing of
it depends on the address) returns a ``Pending`` attachment, whose ``configure`` then sets the
MAC, the addresses, link up and the default routes once they are known. ``attach`` does both.

Errors are PlumbingError naming CNI_IFNAME / CNI_NETNS; a failed ``attach`` (``create`` or
``configure``) leaves nothing behind. ``detach`` is idempotent (False when already gone), as the
CNI spec needs for DEL.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
import threading
from dataclasses import dataclass

import netaddr

IFA_F_NODAD = 0x02
LOOPBACK_IFINDEX = 1          # every network namespace's lo (include/net/flow.h)
CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/var/run/netns"
NETLINK_TIMEOUT_S = 10.0

# ethtool ioctl (linux/sockios.h, linux/ethtool.h)
SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x16
ETHTOOL_STXCSUM = 0x17
IFNAMSIZ = 16
IFREQ_SIZE = 40

# netlink (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/veth.h, linux/if_addr.h)
NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLMSGERR_ATTR_MSG = 1
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
IFF_UP = 0x1
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_OIF, RTA_GATEWAY = 4, 5
RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 4, 0, 1

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBi")
_RTMSG = struct.Struct("=BBBBBBBBI")
_NLATTR = struct.Struct("=HH")

_libc = ctypes.CDLL(None, use_errno=True)


class PlumbingError(RuntimeError):
    pass


class NetlinkFailure(OSError):
    """The kernel refused a request: ``errno`` as the kernel said, the extended ack if any."""


@dataclass
class Attachment:
    host_ifname: str
    ifname: str
    mac: str
    mtu: int
    sandbox: str


# --- rtnetlink, just what plumbing needs --------------------------------------------------------
def _attr(kind: int, payload: bytes) -> bytes:
    size = _NLATTR.size + len(payload)
    return _NLATTR.pack(size, kind) + payload + b"\0" * (-size % 4)


def _name(text: str) -> bytes:
    return text.encode() + b"\0"


def _u32(value: int) -> bytes:
    return struct.pack("=I", value)


def _attrs(data: bytes, offset: int):
    """(type, payload) of the attributes in ``data`` from ``offset`` on."""
    while offset + _NLATTR.size <= len(data):
        size, kind = _NLATTR.unpack_from(data, offset)
        if size < _NLATTR.size:
            return
        yield kind & 0x3FFF, data[offset + _NLATTR.size:offset + size]
        offset += (size + 3) & ~3


class _Rtnl:
    """A NETLINK_ROUTE socket: bound to the namespace it was opened in; one request at a time."""

    def __init__(self):
        """Opens the socket in the calling thread's network namespace."""
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        try:
            for opt in (NETLINK_EXT_ACK, NETLINK_CAP_ACK):     # the kernel's reason, without an echo
                try:
                    self.sock.setsockopt(SOL_NETLINK, opt, 1)
                except OSError:
                    pass
            self.sock.bind((0, 0))
            self.sock.settimeout(NETLINK_TIMEOUT_S)
        except BaseException:
            self.sock.close()
            raise
        self.lock = threading.Lock()
        self.seq = 0

    def close(self) -> None:
        with self.lock:
            self.sock.close()

    def request(self, msg_type: int, flags: int, body: bytes, dump: bool = False) -> list[tuple[int, bytes]]:
        """Send one request; returns the (type, payload) answers before the ack / end of dump.
        Raises NetlinkFailure with the kernel's errno (and extended ack message)."""
        with self.lock:
            self.seq = self.seq % 0x7FFFFFFF + 1
            seq = self.seq
            flags |= NLM_F_REQUEST | (NLM_F_DUMP if dump else NLM_F_ACK)
            self.sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type, flags, seq, 0) + body)
            out: list[tuple[int, bytes]] = []
            while True:
                data = self.sock.recv(1 << 16)
                offset = 0
                while offset + _NLMSGHDR.size <= len(data):
                    length, kind, mflags, mseq, _pid = _NLMSGHDR.unpack_from(data, offset)
                    if length < _NLMSGHDR.size:
                        raise OSError(errno.EPROTO, "malformed netlink message")
                    payload = data[offset + _NLMSGHDR.size:offset + length]
                    offset += (length + 3) & ~3
                    if mseq != seq:
                        continue                      # a late answer to an earlier request
                    if kind == NLMSG_ERROR:
                        code = -struct.unpack_from("=i", payload)[0]
                        if code == 0:
                            return out
                        raise self._failure(code, mflags, payload)
                    if kind == NLMSG_DONE:
                        code = -struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
                        if code > 0:
                            raise NetlinkFailure(code, os.strerror(code))
                        return out
                    out.append((kind, payload))

    @staticmethod
    def _failure(code: int, mflags: int, payload: bytes) -> NetlinkFailure:
        text = os.strerror(code)
        if mflags & NLM_F_ACK_TLVS and len(payload) >= 4 + _NLMSGHDR.size:
            start = 4 + (_NLMSGHDR.size if mflags & NLM_F_CAPPED else _NLMSGHDR.unpack_from(payload, 4)[0])
            for kind, value in _attrs(payload, start):
                if kind == NLMSGERR_ATTR_MSG:
                    message = value.rstrip(b"\0").decode(errors="replace")
                    text += f" ({message})"
        return NetlinkFailure(code, text)

    # --- the requests ---------------------------------------------------------------------
    def create_veth(self, ifname: str, peer: str, peer_netns_fd: int, peer_mac: bytes | None, mtu: int) -> None:
        """``ifname`` here, up; ``peer`` in the namespace open as ``peer_netns_fd``, with its MAC
        (None: the kernel's random one, until ``set_mac_up``)."""
        peer_msg = (_IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(peer))
                    + _attr(IFLA_MTU, _u32(mtu)) + (_attr(IFLA_ADDRESS, peer_mac) if peer_mac else b"")
                    + _attr(IFLA_NET_NS_FD, _u32(peer_netns_fd)))
        linkinfo = _attr(IFLA_INFO_KIND, _name("veth")) + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_msg))
        body = (_IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, IFF_UP, IFF_UP) + _attr(IFLA_IFNAME, _name(ifname))
                + _attr(IFLA_MTU, _u32(mtu)) + _attr(IFLA_LINKINFO, linkinfo))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def link_index(self, ifname: str) -> int:
        answers = self.request(RTM_GETLINK, 0, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
                               + _attr(IFLA_IFNAME, _name(ifname)))
        for kind, payload in answers:
            if kind == RTM_NEWLINK:
                return _IFINFOMSG.unpack_from(payload)[2]
        raise NetlinkFailure(errno.ENODEV, os.strerror(errno.ENODEV))

    def delete_link(self, ifname: str) -> bool:
        try:
            self.request(RTM_DELLINK, 0, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
                         + _attr(IFLA_IFNAME, _name(ifname)))
        except NetlinkFailure as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise
        return True

    def set_up(self, index: int) -> None:
        self.request(RTM_SETLINK, 0, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP))

    def set_mac_up(self, index: int, mac: bytes) -> None:
        """The link's MAC, then up, in one request (the kernel sets the address before the flags)."""
        self.request(RTM_SETLINK, 0, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP)
                     + _attr(IFLA_ADDRESS, mac))

    def add_address(self, index: int, net: netaddr.IPNetwork) -> None:
        family = socket.AF_INET if net.version == 4 else socket.AF_INET6
        packed = net.ip.packed
        body = _IFADDRMSG.pack(family, net.prefixlen, IFA_F_NODAD if net.version == 6 else 0, 0, index)
        if net.version == 4:
            body += _attr(IFA_LOCAL, packed)
        body += _attr(IFA_ADDRESS, packed)
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)

    def add_default_route(self, index: int, gateway: netaddr.IPAddress) -> None:
        family = socket.AF_INET if gateway.version == 4 else socket.AF_INET6
        body = (_RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
                + _attr(RTA_GATEWAY, gateway.packed) + _attr(RTA_OIF, _u32(index)))
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body)

    def link_names(self) -> list[str]:
        names = []
        for kind, payload in self.request(RTM_GETLINK, 0, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0), dump=True):
            if kind != RTM_NEWLINK:
                continue
            for attr, value in _attrs(payload, _IFINFOMSG.size):
                if attr == IFLA_IFNAME:
                    names.append(value.rstrip(b"\0").decode(errors="replace"))
                    break
        return names


# --- entering namespaces ---------------------------------------------------------------------
def _netns_path(netns: str) -> str:
    """A netns name (as `ip netns` knows it) or a path -> the path."""
    return netns if "/" in netns else os.path.join(NETNS_RUN_DIR, netns)


def _in_netns(netns_path: str, fn, *args):
    """``fn(*args)`` in a new thread that joined the network namespace at ``netns_path`` and ends
    with ``fn``; returns what ``fn`` returned or raises what it raised (OSError if the namespace
    cannot be entered). Only ever used to open sockets there (or, for CHECK, to read)."""
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _in_netns_fd(fd, netns_path, fn, *args)
    finally:
        os.close(fd)


def _in_netns_fd(fd: int, what: str, fn, *args):
    """``_in_netns`` for a namespace already open as ``fd``."""
    box: dict = {}

    def target():
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({what}): {os.strerror(err)}")
            box["result"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="vpcnet-setns", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box.pop("error")
    return box["result"]


class _Host:
    """The persistent rtnetlink socket of one host namespace (None: the daemon's own)."""

    def __init__(self, netns: str | None):
        self.path = _netns_path(netns) if netns else None
        self.identity = self._identity()
        self.rtnl = _in_netns(self.path, _Rtnl) if self.path else _Rtnl()

    def _identity(self):
        """(dev, inode) of the namespace file: a namespace deleted and re-created under the same
        name is another namespace, and the socket must follow it. FileNotFoundError if gone."""
        if self.path is None:
            return None
        st = os.stat(self.path)
        return st.st_dev, st.st_ino

    def current(self) -> bool:
        try:
            return self._identity() == self.identity
        except FileNotFoundError:
            return False


_hosts: dict[str, _Host] = {}
_hosts_lock = threading.Lock()


def _host(host_netns: str | None) -> _Rtnl:
    """The persistent socket for ``host_netns``. FileNotFoundError if that namespace is gone."""
    key = host_netns or ""
    with _hosts_lock:
        host = _hosts.get(key)
        if host is not None and not host.current():
            del _hosts[key]
            host.rtnl.close()
            host = None
        if host is None:
            host = _hosts[key] = _Host(host_netns)
        return host.rtnl


def close() -> None:
    """Close the persistent host-namespace sockets (the node daemon calls this when it stops)."""
    with _hosts_lock:
        hosts = list(_hosts.values())
        _hosts.clear()
    for host in hosts:
        host.rtnl.close()


def _pod_sockets() -> tuple[_Rtnl, socket.socket]:
    """Run in the pod namespace: a NETLINK_ROUTE socket and a socket for the ethtool ioctl."""
    rtnl = _Rtnl()
    try:
        return rtnl, socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except BaseException:
        rtnl.close()
        raise


# --- ethtool ----------------------------------------------------------------------------------
def _ethtool_value(sock: socket.socket, ifname: str, cmd: int, value: int = 0) -> int:
    """SIOCETHTOOL with a struct ethtool_value {u32 cmd; u32 data}; returns data afterwards. The
    device is looked up in the namespace of ``sock``."""
    data = ctypes.create_string_buffer(struct.pack("=II", cmd, value), 8)
    ifr = struct.pack(f"@{IFNAMSIZ}sP", ifname.encode(), ctypes.addressof(data))
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifr.ljust(IFREQ_SIZE, b"\0"))
    return struct.unpack("=II", data.raw)[1]


def tx_checksum_off(sock: socket.socket, ifname: str) -> None:
    """``ethtool -K IFNAME tx off`` in the namespace of ``sock``."""
    _ethtool_value(sock, ifname, ETHTOOL_STXCSUM, 0)
    if _ethtool_value(sock, ifname, ETHTOOL_GTXCSUM) != 0:
        raise OSError(errno.EIO, "TX checksum offload is still on after ETHTOOL_STXCSUM")


# --- the API ----------------------------------------------------------------------------------
def _parse(ifname: str, pod_netns: str, mac: str, cidrs, gateways):
    try:
        mac_bytes = netaddr.EUI(mac).packed
        if len(mac_bytes) != 6:
            raise ValueError("not a 48-bit MAC")
    except (netaddr.AddrFormatError, ValueError, TypeError) as exc:
        raise PlumbingError(f"CNI_IFNAME {ifname} in CNI_NETNS {pod_netns}: bad MAC {mac!r}: {exc}") from None
    try:
        nets = [netaddr.IPNetwork(c) for c in cidrs]
    except (netaddr.AddrFormatError, ValueError, TypeError) as exc:
        raise PlumbingError(f"CNI_IFNAME {ifname} in CNI_NETNS {pod_netns}: bad address in {list(cidrs)}: "
                            f"{exc}") from None
    try:
        gws = [netaddr.IPAddress(g) for g in gateways]
    except (netaddr.AddrFormatError, ValueError, TypeError) as exc:
        raise PlumbingError(f"CNI_IFNAME {ifname} in CNI_NETNS {pod_netns}: bad gateway in {list(gateways)}: "
                            f"{exc}") from None
    return mac_bytes, nets, gws


class Pending:
    """A veth pair made by ``create``: the pod end exists (named, MTU, TX checksum off, lo up)
    but is down, without MAC or address. ``configure`` finishes it; ``abandon`` removes it.
    Either closes the pod namespace's sockets, which it holds until then."""

    def __init__(self, host_netns, host_ifname, pod_netns, ifname, mtu, rtnl: _Rtnl, ctl: socket.socket, index: int):
        self.host_netns, self.host_ifname, self.pod_netns, self.ifname, self.mtu = \
            host_netns, host_ifname, pod_netns, ifname, mtu
        self.rtnl, self.ctl, self.index = rtnl, ctl, index
        self.closed = False

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            self.rtnl.close()
            self.ctl.close()

    def configure(self, mac: str, cidrs: list[str], gateways: list[str]) -> Attachment:
        """MAC, addresses, link up, default routes. On failure the pair is removed."""
        try:
            mac_bytes, nets, gws = _parse(self.ifname, self.pod_netns, mac, cidrs, gateways)
            step = "adding its addresses"
            try:
                for net in nets:
                    step = f"adding address {net}"
                    self.rtnl.add_address(self.index, net)
                step = f"setting its MAC {mac} and setting it up"
                self.rtnl.set_mac_up(self.index, mac_bytes)
                for gw in gws:
                    step = f"adding the default route via {gw}"
                    self.rtnl.add_default_route(self.index, gw)
            except OSError as exc:
                raise PlumbingError(f"configuring CNI_IFNAME {self.ifname} in CNI_NETNS {self.pod_netns}: "
                                    f"{step}: {exc}") from exc
        except BaseException:
            self.abandon()
            raise
        self._close()
        return Attachment(self.host_ifname, self.ifname, mac, self.mtu, self.pod_netns)

    def abandon(self) -> None:
        """Remove the pair (the ADD failed elsewhere). Idempotent."""
        self._close()
        detach(self.host_netns, self.host_ifname)


def _prepare_pod(rtnl: _Rtnl, ctl: socket.socket, pod_netns: str, ifname: str, tx_offload_off: bool) -> int:
    """The pod end as far as it does not depend on the address; returns its ifindex."""
    step = f"looking up {ifname}"
    try:
        idx = rtnl.link_index(ifname)
        step = "setting lo up"
        try:
            rtnl.set_up(LOOPBACK_IFINDEX)
        except NetlinkFailure as exc:
            if exc.errno != errno.ENODEV:
                raise
        if tx_offload_off:
            step = "turning TX checksum offload off (SIOCETHTOOL ETHTOOL_STXCSUM)"
            tx_checksum_off(ctl, ifname)
    except OSError as exc:
        raise PlumbingError(f"configuring CNI_IFNAME {ifname} in CNI_NETNS {pod_netns}: {step}: {exc}") from exc
    return idx


def create(host_netns: str | None, host_ifname: str, pod_netns: str, ifname: str, mtu: int = 1500,
           tx_offload_off: bool = True) -> Pending:
    """Create the veth pair: ``host_ifname`` (up) in ``host_netns``, ``ifname`` in ``pod_netns``
    (down, no MAC or address yet). On any failure nothing is left behind."""
    if not os.path.exists(pod_netns):
        raise PlumbingError(f"CNI_NETNS {pod_netns} does not exist")
    try:
        host = _host(host_netns)
    except OSError as exc:
        raise PlumbingError(f"cannot use the host network namespace {host_netns}: {exc}") from None
    try:
        fd = os.open(pod_netns, os.O_RDONLY | os.O_CLOEXEC)     # one handle for sockets and veth peer
    except OSError as exc:
        raise PlumbingError(f"CNI_NETNS {pod_netns}: {exc}") from None
    try:
        try:
            rtnl, ctl = _in_netns_fd(fd, pod_netns, _pod_sockets)
        except OSError as exc:
            raise PlumbingError(f"CNI_NETNS {pod_netns}: cannot open sockets there for CNI_IFNAME {ifname}: "
                                f"{exc}") from None
        try:
            try:
                host.create_veth(host_ifname, ifname, fd, None, mtu)
            except NetlinkFailure as exc:
                if exc.errno == errno.EEXIST:
                    raise PlumbingError(f"CNI_IFNAME {ifname} already exists in {pod_netns}, or host port "
                                        f"{host_ifname} already exists") from None
                raise PlumbingError(f"cannot create veth {host_ifname}/{ifname} (CNI_IFNAME {ifname} in "
                                    f"CNI_NETNS {pod_netns}): {exc}") from None
            except OSError as exc:       # no answer: it may exist all the same
                detach(host_netns, host_ifname)
                raise PlumbingError(f"cannot create veth {host_ifname}/{ifname} (CNI_IFNAME {ifname} in "
                                    f"CNI_NETNS {pod_netns}): {exc}") from None
            try:
                index = _prepare_pod(rtnl, ctl, pod_netns, ifname, tx_offload_off)
            except BaseException:
                detach(host_netns, host_ifname)
                raise
        except BaseException:
            rtnl.close()
            ctl.close()
            raise
    finally:
        os.close(fd)
    return Pending(host_netns, host_ifname, pod_netns, ifname, mtu, rtnl, ctl, index)


def attach(host_netns: str | None, host_ifname: str, pod_netns: str, ifname: str, mac: str,
           cidrs: list[str], gateways: list[str], mtu: int = 1500, tx_offload_off: bool = True) -> Attachment:
    """Create the veth pair and configure the pod end. On any failure nothing is left behind."""
    _parse(ifname, pod_netns, mac, cidrs, gateways)   # refuse bad input before creating anything
    return create(host_netns, host_ifname, pod_netns, ifname, mtu, tx_offload_off).configure(mac, cidrs, gateways)


def detach(host_netns: str | None, host_ifname: str) -> bool:
    """Delete the veth pair (deleting one end deletes both). False if it was already gone."""
    try:
        return _host(host_netns).delete_link(host_ifname)
    except FileNotFoundError:
        return False                  # the host namespace is gone, and the pair with it
    except OSError as exc:
        raise PlumbingError(f"cannot delete {host_ifname}: {exc}") from None


def host_links(host_netns: str | None, prefix: str) -> list[str]:
    """Names of host-side links starting with ``prefix`` (pod ports), for GC."""
    try:
        names = _host(host_netns).link_names()
    except FileNotFoundError:
        return []                     # the host namespace is gone: so are its links
    except OSError as exc:
        raise PlumbingError(f"cannot list the links of {host_netns or 'this namespace'}: {exc}") from None
    return sorted(n for n in names if n and n.startswith(prefix))


def _inspect_pod(ifname: str) -> dict | None:
    from pyroute2 import IPRoute     # parses the dumps; runs in the pod namespace's thread
    with IPRoute() as pod:
        found = pod.link_lookup(ifname=ifname)
        if not found:
            return None
        idx = found[0]
        link = pod.get_links(idx)[0]
        cidrs = sorted(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in pod.get_addr(index=idx))
        gateways = sorted(r.get_attr("RTA_GATEWAY") for fam in (socket.AF_INET, socket.AF_INET6)
                          for r in pod.get_routes(family=fam)
                          if r.get_attr("RTA_GATEWAY") and r["dst_len"] == 0)
        return {"mac": link.get_attr("IFLA_ADDRESS"), "mtu": link.get_attr("IFLA_MTU"),
                "up": bool(link["flags"] & 1), "cidrs": cidrs, "gateways": gateways}


def inspect(pod_netns: str, ifname: str) -> dict:
    """What the pod's interface looks like now: mac, cidrs, default gateways (CHECK)."""
    if not os.path.exists(pod_netns):
        raise PlumbingError(f"CNI_NETNS {pod_netns} does not exist")
    try:
        have = _in_netns(pod_netns, _inspect_pod, ifname)
    except Exception as exc:
        raise PlumbingError(f"CNI_NETNS {pod_netns}: cannot inspect CNI_IFNAME {ifname}: {exc}") from None
    if have is None:
        raise PlumbingError(f"CNI_IFNAME {ifname} does not exist in {pod_netns}")
    return have
