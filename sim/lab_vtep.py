"""The lab's hardware-VTEP leaves (``Lab(leaf_kind="vtep")``): ovs-vtep emulators on netdev bridges.

Per leaf N (namespace ``<L>-leafN``, one private Open vSwitch, as the EVPN leaves have)::

    swpK (veth to node nN-K's uplink0) --[bridge "leafN": the Physical_Switch]-- patch --
        [ovs-vtep's per-Logical_Switch bridges leafN_vtep_lsM: vxM (vxlan key=VNI)]
    spine0 (veth to the spine) --[bridge "ul", NORMAL]-- internal port "ul":
        198.19.255.N/24 (tunnel IP = the Leaf's vtepIp; the spine answers ARP for the others)
    hardware_vtep ovsdb-server on unix:RUN/leafN/vtep/vtep.sock (the controller's management
    address), ovs-vtep (root namespace, talks to both databases over unix sockets)

Why the underlay sits on an OVS bridge: ovs-vtep's tunnels are *userspace* vxlan vports
(netdev datapath). OVS's userspace tunnelling pushes the outer headers itself and needs (1) a
route to the remote VTEP in its own router table (ovs/route, mirrored from the namespace's
kernel routes) whose output device is an OVS *internal port*, (2) the next hop's MAC in its
neighbour cache (tnl/neigh, snooped from ARP through that bridge or set by hand), and (3) for
decapsulation, the tunnel IP configured on an OVS-owned netdev (tnl-ports matches incoming
VXLAN against the addresses of OVS devices). An address on the kernel's ``lo`` (as the EVPN
leaves use for the kernel's own VXLAN) satisfies none of these, so the underlay link is a port
of bridge ``ul`` and the tunnel IP lives on ``ul``'s internal port.

Why ``/24`` and proxy ARP, not a routed /31: OVS 3.1's router picks a tunnel's source address
among the output device's addresses whose *own prefix* covers the next hop, and ignores the
kernel route's ``src`` (measured: with 198.19.N.1/31 + 198.19.255.N/32 on ``ul`` the tunnels left
with source 198.19.N.1, and the remote ovs-vtep's vxlan port, ``remote_ip`` = our vtepIp, never
matched them: no decapsulation; with only the /32 the gateway route was not imported at all).
So the only address on ``ul`` is the VTEP IP with the loopbacks' /24; the other VTEPs are "on
link" and the spine (``proxy_arp``, a /32 per leaf loopback on the leaf's link) answers for them.

Underlay routing is static (decision): VTEP leaves have no BGP/EVPN control plane (the
hardware_vtep database *is* the control plane, written by the controller), and all the underlay
needs is loopback reachability: each leaf routes 198.19.255.0/24 via the spine, the spine has a
/32 per leaf loopback. No FRR runs in a VTEP lab.
"""
from __future__ import annotations

from vpcnet.sim import lab_net as net, topo

UNDERLAY_BRIDGE = "ul"
LOOPBACKS = "198.19.255.0/24"


def build_leaf(ovs, lf: "topo.LeafPlan") -> None:
    """Bridges of one VTEP leaf (the node trunks swpK must already be in the namespace):
    Physical_Switch bridge ``leafN`` with the node trunks and the underlay bridge ``ul``."""
    ps = lf.name
    args = ["--may-exist", "add-br", ps, "--", "set", "Bridge", ps, "datapath_type=netdev",
            "fail_mode=secure"]
    for port in lf.ports:
        args += ["--", "--may-exist", "add-port", ps, port]
    ovs.vsctl(*args)
    ovs.vsctl("--may-exist", "add-br", UNDERLAY_BRIDGE, "--", "set", "Bridge", UNDERLAY_BRIDGE,
              "datapath_type=netdev", "fail_mode=standalone",
              "--", "--may-exist", "add-port", UNDERLAY_BRIDGE, topo.LEAF_SPINE_IF)
    ns = lf.netns
    plen = LOOPBACKS.split("/")[1]
    net.run("ip", "-n", ns, "-batch", "-", input="\n".join([
        f"addr add {lf.vtep}/{plen} dev {UNDERLAY_BRIDGE}",
        f"link set {UNDERLAY_BRIDGE} up",
        f"link set {topo.LEAF_SPINE_IF} up",
        f"route add {lf.spine_ip}/32 dev {UNDERLAY_BRIDGE}",
    ]) + "\n")
    # userspace datapath: the kernel must not hand OVS half-done checksums on the tap
    net.ns_run(ns, "ethtool", "-K", UNDERLAY_BRIDGE, "tx", "off", check=False)


def spine_routes(t: "topo.Topology") -> list[str]:
    """``ip -batch`` lines for the spine: one /32 per leaf loopback on that leaf's link (the
    spine also needs ``proxy_arp``: :func:`spine_sysctls`)."""
    return [f"route add {lf.vtep}/32 dev {lf.spine_if}" for lf in t.leaf_plans]


def spine_sysctls(t: "topo.Topology") -> None:
    net.sysctl(t.spine_netns, net__ipv4__conf__all__proxy_arp=1)


def prime_neighbours(ovs, lf: "topo.LeafPlan", others: list[str]) -> None:
    """Put the spine's MAC into OVS's tunnel neighbour cache for every other VTEP IP (the spine
    proxy-ARPs for them): without it the first encapsulated packets of a new tunnel wait for
    OVS's own ARP. A ping from the leaf's kernel through ``ul`` gives the MAC."""
    net.ns_run(lf.netns, "ping", "-c1", "-W2", "-I", lf.vtep, lf.spine_ip, check=False)
    mac = _neigh_mac(lf.netns, lf.spine_ip)
    if mac:
        for ip in [lf.spine_ip, *others]:
            ovs.appctl("tnl/neigh/set", UNDERLAY_BRIDGE, ip, mac)


def _neigh_mac(ns: str, ip: str) -> str | None:
    import json
    out = net.run("ip", "-n", ns, "-j", "neigh", "show", ip, check=False)
    try:
        for e in json.loads(out or "[]"):
            if e.get("lladdr"):
                return e["lladdr"]
    except ValueError:
        pass
    return None


def vtep_dir(lab, lf: "topo.LeafPlan"):
    return lab.leaf_dir(lf) / "vtep"


def leaf_doc(lab, lf: "topo.LeafPlan") -> dict:
    """The Leaf object of a VTEP leaf: its hardware_vtep database on a unix socket of this host
    (the controller cannot dial into the management namespace: app/fabric_vtep.py)."""
    return {"apiVersion": "vpcnet.io/v1", "kind": "Leaf", "metadata": {"name": lf.name},
            "spec": {"driver": "vtep", "managementAddress": f"unix:{vtep_dir(lab, lf) / 'vtep.sock'}",
                     "vtepIp": lf.vtep, "asn": lf.asn, "ports": lf.ports}}


def _private_vtep(lab, lf: "topo.LeafPlan"):
    from vpcnet.sim.vtep import PrivateVtep
    return PrivateVtep(vtep_dir(lab, lf), emulator=True, physical_switch=lf.name, ports=tuple(lf.ports),
                       tunnel_ip=lf.vtep, ovs=lab.ovs(lf.netns), make_ports=False)


def vtep_of(lab, lf: "topo.LeafPlan"):
    """A handle on a running VTEP leaf (tools only: vtep_ctl, ofctl, ls_bridges, ...)."""
    v = _private_vtep(lab, lf)
    v.pids = {k.rsplit(":", 1)[1]: r["pid"] for k, r in lab.state["procs"].items()
              if k.startswith(f"vtep:{lf.name}:")}
    return v


def start_all(lab) -> str:
    """Start every leaf's hardware_vtep ovsdb-server and ovs-vtep; record their PIDs."""
    from concurrent.futures import ThreadPoolExecutor

    def start(lf):
        v = _private_vtep(lab, lf)
        v.start()
        return lf, v
    with ThreadPoolExecutor(max_workers=4) as pool:
        started = list(pool.map(start, lab.topo.leaf_plans))
    for lf, v in started:
        lab.state.setdefault("vteps", {})[lf.name] = {"run_dir": str(v.run_dir), "remote": v.remote}
        for daemon, pid in v.pids.items():
            lab._record_proc(f"vtep:{lf.name}:{daemon}", net.pid_record(pid))
    return f"{len(started)} ovs-vtep emulators"


def wait_underlay(lab, timeout: float = 60.0) -> str:
    """Every leaf reaches every other leaf's tunnel IP through the spine (kernel ping over the
    OVS underlay bridge), then OVS's tunnel neighbour cache holds the spine's MAC."""
    leaves = lab.topo.leaf_plans
    for lf in leaves:
        for other in leaves:
            if other is lf:
                continue
            net.wait_for(f"{lf.name} -> {other.name} underlay ({other.vtep})",
                         lambda: _ping_ok(lf.netns, lf.vtep, other.vtep), timeout=timeout, interval=0.2)
        prime_neighbours(lab.ovs(lf.netns), lf, [o.vtep for o in leaves if o is not lf])
    return f"{len(leaves)} VTEPs reach each other"


def _ping_ok(ns: str, src: str, dst: str) -> bool:
    import subprocess
    r = subprocess.run(["ip", "netns", "exec", ns, "ping", "-c1", "-W1", "-I", src, dst],
                       capture_output=True, timeout=10)
    return r.returncode == 0


def stop_recorded(procs: dict) -> list[str]:
    """``lab down``: ovs-vtep first (it writes to both databases), then the VTEP databases."""
    emu = [r for k, r in procs.items() if k.startswith("vtep:") and k.endswith(":ovs-vtep")]
    dbs = [r for k, r in procs.items() if k.startswith("vtep:") and not k.endswith(":ovs-vtep")]
    return net.stop_procs(emu, timeout=10) + net.stop_procs(dbs, timeout=10)
