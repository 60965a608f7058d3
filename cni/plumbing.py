"""Pod plumbing with pyroute2: one veth pair per attachment, host end on br-int's side.

The host end lives in the network namespace of Open vSwitch (``host_netns``; None = the
daemon's own), named after the pod (``pod_port_name``); the pod end is created directly inside
the pod's namespace under CNI_IFNAME, so a name clash there fails the ADD before anything is
moved. On a netdev (userspace) datapath the pod end gets TX checksum offload off, or userspace
conntrack sees bad TCP checksums and marks the connection invalid.

Every function is idempotent where the CNI spec needs it (detach of what is already gone).
"""
from __future__ import annotations

import errno
import os
import socket
import subprocess
from dataclasses import dataclass

import netaddr
from pyroute2 import IPRoute, NetlinkError, NetNS

IFA_F_NODAD = 0x02


class PlumbingError(RuntimeError):
    pass


def _ns(netns: str | None):
    return NetNS(netns) if netns else IPRoute()


@dataclass
class Attachment:
    host_ifname: str
    ifname: str
    mac: str
    mtu: int
    sandbox: str


def attach(host_netns: str | None, host_ifname: str, pod_netns: str, ifname: str, mac: str,
           cidrs: list[str], gateways: list[str], mtu: int = 1500, tx_offload_off: bool = True) -> Attachment:
    """Create the veth pair and configure the pod end. On any failure nothing is left behind."""
    if not os.path.exists(pod_netns):
        raise PlumbingError(f"CNI_NETNS {pod_netns} does not exist")
    fd = os.open(pod_netns, os.O_RDONLY)
    try:
        with _ns(host_netns) as host:
            try:
                host.link("add", ifname=host_ifname, kind="veth", mtu=mtu,
                          peer={"ifname": ifname, "net_ns_fd": fd, "mtu": mtu})
            except NetlinkError as exc:
                if exc.code == errno.EEXIST:
                    raise PlumbingError(f"CNI_IFNAME {ifname} already exists in {pod_netns}, or host port "
                                        f"{host_ifname} already exists") from None
                raise PlumbingError(f"cannot create veth {host_ifname}/{ifname}: {exc}") from None
    finally:
        os.close(fd)
    try:
        with _ns(host_netns) as host:
            idx = host.link_lookup(ifname=host_ifname)[0]
            host.link("set", index=idx, state="up")
        with NetNS(pod_netns) as pod:
            idx = pod.link_lookup(ifname=ifname)[0]
            pod.link("set", index=idx, address=mac)
            for cidr in cidrs:
                net = netaddr.IPNetwork(cidr)
                kwargs = {"flags": IFA_F_NODAD} if net.version == 6 else {}
                pod.addr("add", index=idx, address=str(net.ip), prefixlen=net.prefixlen, **kwargs)
            pod.link("set", index=idx, state="up")
            lo = pod.link_lookup(ifname="lo")
            if lo:
                pod.link("set", index=lo[0], state="up")
            for gw in gateways:
                addr = netaddr.IPAddress(gw)
                dst = "0.0.0.0/0" if addr.version == 4 else "::/0"
                pod.route("add", dst=dst, gateway=str(addr), oif=idx,
                          family=socket.AF_INET if addr.version == 4 else socket.AF_INET6)
        if tx_offload_off:
            r = subprocess.run(["nsenter", f"--net={pod_netns}", "ethtool", "-K", ifname, "tx", "off"],
                               capture_output=True, text=True, timeout=10)
            if r.returncode != 0:
                raise PlumbingError(f"ethtool -K {ifname} tx off in {pod_netns}: {r.stderr.strip()}")
    except Exception as exc:
        detach(host_netns, host_ifname)
        if isinstance(exc, PlumbingError):
            raise
        raise PlumbingError(f"configuring {ifname} in {pod_netns}: {exc}") from exc
    return Attachment(host_ifname, ifname, mac, mtu, pod_netns)


def detach(host_netns: str | None, host_ifname: str) -> bool:
    """Delete the veth pair (deleting one end deletes both). False if it was already gone."""
    try:
        with _ns(host_netns) as host:
            found = host.link_lookup(ifname=host_ifname)
            if not found:
                return False
            host.link("del", index=found[0])
            return True
    except NetlinkError as exc:
        if exc.code in (errno.ENODEV, errno.ENOENT):
            return False
        raise PlumbingError(f"cannot delete {host_ifname}: {exc}") from None
    except FileNotFoundError:
        return False


def host_links(host_netns: str | None, prefix: str) -> list[str]:
    """Names of host-side links starting with ``prefix`` (pod ports), for GC."""
    with _ns(host_netns) as host:
        names = [link.get_attr("IFLA_IFNAME") for link in host.get_links()]
    return sorted(n for n in names if n and n.startswith(prefix))


def inspect(pod_netns: str, ifname: str) -> dict:
    """What the pod's interface looks like now: mac, cidrs, default gateways (CHECK)."""
    if not os.path.exists(pod_netns):
        raise PlumbingError(f"CNI_NETNS {pod_netns} does not exist")
    with NetNS(pod_netns) as pod:
        found = pod.link_lookup(ifname=ifname)
        if not found:
            raise PlumbingError(f"CNI_IFNAME {ifname} does not exist in {pod_netns}")
        idx = found[0]
        link = pod.get_links(idx)[0]
        cidrs = sorted(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in pod.get_addr(index=idx))
        gateways = sorted(r.get_attr("RTA_GATEWAY") for fam in (socket.AF_INET, socket.AF_INET6)
                          for r in pod.get_routes(family=fam)
                          if r.get_attr("RTA_GATEWAY") and r["dst_len"] == 0)
        return {"mac": link.get_attr("IFLA_ADDRESS"), "mtu": link.get_attr("IFLA_MTU"),
                "up": bool(link["flags"] & 1), "cidrs": cidrs, "gateways": gateways}
