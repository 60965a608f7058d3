"""The lab leaf's agent: makes the kernel, the leaf's OVS and FRR match its NETCONF datastore.

netconfd (yuma123) without SIL code is a validating datastore only — it never touches the
system. This small process, one per leaf, started by the lab inside the leaf's namespace, polls
the RUNNING datastore (ncclient over 127.0.0.1:830 with the lab's client key, every 0.5 s;
netconfd 2.13 has no YANG-push) and applies the vpcnet-leaf model
(fabric/yang/vpcnet-leaf@2026-11-22.yang):

* ``mac-vrf`` (vlan V, vni X) -> the leaf's per-VNI plumbing. The node trunks end on the OVS
  bridge ``fabric`` (netdev datapath, userspace, so it does the 802.1Q work this kernel cannot);
  VLAN V leaves OVS on an access port ``v<V>`` (tag V), a veth whose peer ``v<V>b`` is a port of
  the Linux bridge ``br<V>``, which also holds the kernel VXLAN device ``vx<X>`` (``local <vtep>
  dstport 4789 nolearning``; bridge port learning off, neigh_suppress on). That is FRR's
  "traditional" EVPN model (one bridge + one VXLAN device per VNI — the kernel has no VLAN-aware
  bridge), and ``advertise-all-vni`` picks new VNIs up by itself (~0.3 s). IPv6 is off on every
  one of these devices: a veth end that sent router solicitations would show up as a phantom
  local MAC in EVPN (recipe pitfall 3). Bridge multicast snooping is off: the bridge floods like
  the leaf's hardware would without IGMP/MLD snooping.
* ``mac-vrf`` rd / import-rt / export-rt -> ``vni X`` under FRR's ``address-family l2vpn evpn``
  (absent: FRR's auto-derived values).
* ``interface`` allowed-vlan -> OVS ``trunks`` of that ``swp`` port. A trunk with no allowed VLAN
  gets ``trunks=[4095]`` (the reserved VID, never carried), because an empty OVS ``trunks``
  would mean "all VLANs". Only ``swp*`` ports are managed; other ports (test hosts) are left alone.
* ``ip-vrf`` / gateways / anycast-gateway-mac -> NOT realised: this kernel has no VRF devices,
  and in distributed mode br-int routes between a VPC's subnets itself, so the lab's leaves need
  L2VNIs only. They are listed as ``not realised (no VRF on this kernel)`` in the status file.
* ``bgp`` -> left alone: the lab owns the underlay/EVPN sessions (its frr.conf). The agent
  compares the configured ASN/neighbours with FRR's and reports "matches" or the difference.
* ``vtep`` source-address/udp-port -> the VXLAN devices' ``local``/``dstport``.

The apply logic is ``plan(current, desired) -> steps`` (pure, unit-tested) + ``Executor``.
Status and the last error go to ``<run-dir>/status.json``, logs to ``<run-dir>/agent.log``.

Entry point: ``python -m vpcnet.sim.leafagent --netns NS --run-dir DIR --ovsdb unix:SOCK
--key FILE [--netconf 127.0.0.1:830] [--frr-pathspace NS] [--interval 0.5]``, or
``--config-file FILE --once`` to apply an XML document without NETCONF (tests, debugging).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

NS = "urn:vpcnet:yang:leaf"
FILTER = f'<leaf xmlns="{NS}"/>'
BRIDGE = "fabric"
NO_VLAN = 4095
TRUNK_RE = re.compile(r"swp\d+")
LOG = logging.getLogger("vpcnet.leafagent")
FULL_CHECK_S = 5.0


class AgentError(RuntimeError):
    pass


# ------------------------------------------------------------------------------ desired state
def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _text(el, tag: str, default=None):
    child = el.find(_q(tag)) if el is not None else None
    return child.text.strip() if child is not None and child.text is not None else default


def _texts(el, tag: str) -> list[str]:
    return [c.text.strip() for c in el.findall(_q(tag)) if c.text]


def empty_desired() -> dict:
    return {"present": False, "vtep": None, "udp_port": 4789, "interfaces": {}, "mac_vrfs": {},
            "ip_vrfs": {}, "bgp": None, "anycast_gateway_mac": None}


def parse_config(xml: str | bytes | None) -> dict:
    """The ``<leaf>`` container of a get-config reply (or any document holding it) -> desired."""
    desired = empty_desired()
    if not xml:
        return desired
    root = ET.fromstring(xml.encode() if isinstance(xml, str) else xml)
    leaf = root if root.tag == _q("leaf") else root.find(f".//{_q('leaf')}")
    if leaf is None:
        return desired
    desired["present"] = True
    vtep = leaf.find(_q("vtep"))
    desired["vtep"] = _text(vtep, "source-address")
    desired["udp_port"] = int(_text(vtep, "udp-port", 4789))
    desired["anycast_gateway_mac"] = _text(leaf, "anycast-gateway-mac")
    for itf in leaf.findall(_q("interface")):
        desired["interfaces"][_text(itf, "name")] = sorted({int(v) for v in _texts(itf, "allowed-vlan")})
    for mv in leaf.findall(_q("mac-vrf")):
        vlan = int(_text(mv, "vlan"))
        desired["mac_vrfs"][vlan] = {
            "name": _text(mv, "name"), "vni": int(_text(mv, "vni")), "rd": _text(mv, "rd"),
            "import_rt": sorted(_texts(mv, "import-rt")), "export_rt": sorted(_texts(mv, "export-rt")),
            "ip_vrf": _text(mv, "ip-vrf")}
    for iv in leaf.findall(_q("ip-vrf")):
        gws = {int(_text(g, "vlan")): _texts(g, "address") for g in iv.findall(_q("gateway"))}
        desired["ip_vrfs"][_text(iv, "name")] = {"l3vni": int(_text(iv, "l3vni")), "gateways": gws}
    bgp = leaf.find(_q("bgp"))
    if bgp is not None:
        desired["bgp"] = {"asn": int(_text(bgp, "asn")), "router_id": _text(bgp, "router-id"),
                          "neighbors": {_text(n, "address"): int(_text(n, "remote-as"))
                                        for n in bgp.findall(_q("neighbor"))}}
    return desired


# ------------------------------------------------------------------------------ plan (pure)
def _want_l2vnis(desired: dict, default_local: str) -> dict[int, dict]:
    local = desired.get("vtep") or default_local
    return {vlan: {"vni": mv["vni"], "local": local, "port": desired.get("udp_port", 4789)}
            for vlan, mv in desired.get("mac_vrfs", {}).items()}


def _want_frr(desired: dict) -> dict[int, dict]:
    out = {}
    for mv in desired.get("mac_vrfs", {}).values():
        if mv.get("rd") or mv.get("import_rt") or mv.get("export_rt"):
            out[mv["vni"]] = {"rd": mv.get("rd"), "import_rt": sorted(mv.get("import_rt", [])),
                              "export_rt": sorted(mv.get("export_rt", []))}
    return out


def plan(current: dict, desired: dict) -> list[tuple]:
    """Steps that turn ``current`` into ``desired``, in a safe order.

    ``current`` (see ``read_current``)::

        {"local": "198.19.255.1",                          # the leaf's loopback (default VTEP)
         "l2vnis": {100: {"vni": 10100, "local": ..., "port": 4789, "complete": True}},
         "stray": ["vx10300"],                             # VXLAN devices outside any br<V>
         "trunks": {"swp1": [100]},                        # managed OVS trunk ports
         "frr_vnis": {10100: {"rd": ..., "import_rt": [...], "export_rt": [...]}}}

    ``desired`` is ``parse_config``'s result. Order: narrow trunks first (no traffic into
    plumbing about to go), remove FRR VNI settings, tear down removed/changed VNIs and strays,
    build new ones, set FRR VNI settings, then widen trunks last (traffic only once the VNI is up).
    """
    steps_narrow, steps_widen = [], []
    for port in sorted(current.get("trunks", {})):
        have = tuple(sorted(current["trunks"][port]))
        want = tuple(desired.get("interfaces", {}).get(port, ()))
        if have == want:
            continue
        common = tuple(v for v in have if v in want)
        if common != have:
            steps_narrow.append(("trunk", port, common))
        if common != want:
            steps_widen.append(("trunk", port, want))
    want_vnis = _want_l2vnis(desired, current.get("local"))
    have_vnis = current.get("l2vnis", {})
    dels, adds = [], []
    for vlan in sorted(have_vnis):
        have = have_vnis[vlan]
        want = want_vnis.get(vlan)
        if want is None or not have.get("complete") or any(have.get(k) != want[k] for k in want):
            dels.append(("del-l2vni", vlan, have.get("vni")))
    for vlan in sorted(want_vnis):
        want = want_vnis[vlan]
        have = have_vnis.get(vlan)
        if have is None or ("del-l2vni", vlan, have.get("vni")) in dels:
            adds.append(("add-l2vni", vlan, want["vni"], want["local"], want["port"]))
    strays = [("del-dev", name) for name in sorted(current.get("stray", []))]
    want_frr, have_frr = _want_frr(desired), current.get("frr_vnis", {})
    frr_dels = [("frr-del-vni", vni) for vni in sorted(have_frr) if have_frr[vni] != want_frr.get(vni)]
    frr_adds = [("frr-vni", vni, w["rd"], tuple(w["import_rt"]), tuple(w["export_rt"]))
                for vni, w in sorted(want_frr.items()) if have_frr.get(vni) != w]
    return steps_narrow + frr_dels + dels + strays + adds + frr_adds + steps_widen


def unrealised(desired: dict, current: dict) -> list[dict]:
    """What the configuration asks for that this lab leaf does not (or cannot) realise."""
    out = []
    for name, iv in sorted(desired.get("ip_vrfs", {}).items()):
        out.append({"ip-vrf": name, "l3vni": iv["l3vni"], "gateways": sorted(iv["gateways"]),
                    "reason": "not realised (no VRF on this kernel; br-int routes between subnets "
                              "in distributed mode)"})
    if desired.get("anycast_gateway_mac"):
        out.append({"anycast-gateway-mac": desired["anycast_gateway_mac"],
                    "reason": "not realised (no gateway SVIs without VRFs)"})
    for port in sorted(desired.get("interfaces", {})):
        if port not in current.get("trunks", {}):
            out.append({"interface": port, "reason": "no such trunk port on this leaf's fabric bridge"})
    vtep = desired.get("vtep")
    if vtep and current.get("local") and vtep != current["local"]:
        out.append({"vtep": vtep, "reason": f"is not this leaf's loopback {current['local']}: VXLAN "
                                            f"devices use it anyway, remote leaves will not reach it"})
    return out


def bgp_report(desired: dict, frr: dict) -> str:
    """Compare the configured BGP with FRR's (``frr`` = {"asn": N, "neighbors": {addr: as}})."""
    want = desired.get("bgp")
    if not want:
        return "not configured (the lab's FRR sessions stay as they are)"
    diffs = []
    if frr.get("asn") is not None and want["asn"] != frr["asn"]:
        diffs.append(f"asn {want['asn']} (FRR runs {frr['asn']})")
    for addr, asn in sorted(want["neighbors"].items()):
        have = frr.get("neighbors", {}).get(addr)
        if have != asn:
            diffs.append(f"neighbor {addr} remote-as {asn} (FRR: {have if have is not None else 'absent'})")
    if not diffs:
        return "matches the lab's FRR configuration"
    return "differs, not applied (the lab owns BGP): " + "; ".join(diffs)


# ------------------------------------------------------------------------------ system access
def _run(*cmd: str, check: bool = True, timeout: float = 30) -> str:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AgentError(f"{' '.join(cmd)}: exit {r.returncode}: {(r.stderr or r.stdout).strip()}")
    return r.stdout


def _ovs_set(value) -> list:
    if isinstance(value, list) and len(value) == 2 and value[0] == "set":
        return value[1]
    if isinstance(value, list) and value and value[0] in ("uuid", "map"):
        return [value]
    return [value]


class Executor:
    """Reads and changes one leaf: its namespace (``ip -n``), its OVS (``ovs-vsctl --db``), FRR."""

    def __init__(self, netns: str, ovsdb: str, frr_pathspace: str | None = None, bridge: str = BRIDGE):
        self.netns, self.ovsdb, self.pathspace, self.bridge = netns, ovsdb, frr_pathspace, bridge
        # What this executor configured per VNI in FRR. FRR's running config hides route targets
        # (and RDs) equal to the auto-derived ones, so it cannot be compared with the desired
        # values directly; it only tells whether a `vni X` block still exists (e.g. not after an
        # FRR restart). Blocks we did not make are taken as running-config shows them.
        self.applied_frr: dict[int, dict] = {}

    # --- reading ------------------------------------------------------------------------
    def ip(self, *args: str, check: bool = True) -> str:
        return _run("ip", "-n", self.netns, *args, check=check)

    def vsctl(self, *args: str, check: bool = True) -> str:
        return _run("ovs-vsctl", f"--db={self.ovsdb}", "--timeout=20", *args, check=check)

    def vtysh(self, *commands: str) -> str:
        args = ["vtysh", "-N", self.pathspace]
        for c in commands:
            args += ["-c", c]
        return _run(*args)

    def read_current(self) -> dict:
        links = json.loads(self.ip("-j", "-d", "link", "show") or "[]")
        by_name = {lk["ifname"]: lk for lk in links}
        local = None
        addrs = json.loads(self.ip("-j", "-4", "addr", "show", "dev", "lo") or "[]")
        for a in (addrs[0].get("addr_info", []) if addrs else []):
            if not a.get("local", "127.").startswith("127.") and a.get("prefixlen") == 32:
                local = a["local"]
        ports = self._ovs_ports()
        l2: dict[int, dict] = {}
        stray = []
        for name, lk in by_name.items():
            kind = lk.get("linkinfo", {}).get("info_kind")
            m = re.fullmatch(r"(br|v)(\d+)", name)
            if m and (kind == "bridge" if m.group(1) == "br" else kind == "veth"):
                l2.setdefault(int(m.group(2)), {"vni": None, "complete": False})
            if kind == "vxlan":
                master = lk.get("master", "")
                mm = re.fullmatch(r"br(\d+)", master)
                if not mm:
                    stray.append(name)
                    continue
                data = lk["linkinfo"].get("info_data", {})
                l2.setdefault(int(mm.group(1)), {"complete": False}).update(
                    {"vni": data.get("id"), "local": data.get("local"), "port": data.get("port"), "dev": name})
        for name, p in ports.items():
            m = re.fullmatch(r"v(\d+)", name)
            if m:
                l2.setdefault(int(m.group(1)), {"vni": None, "complete": False})
        for vlan, e in l2.items():
            peer = by_name.get(f"v{vlan}b", {})
            port = ports.get(f"v{vlan}")
            e["complete"] = bool(e.get("dev") and e.get("dev") == f"vx{e.get('vni')}"
                                 and f"br{vlan}" in by_name and peer.get("master") == f"br{vlan}"
                                 and port is not None and port["tag"] == vlan)
        trunks = {}
        for name, p in ports.items():
            if TRUNK_RE.fullmatch(name):
                trunks[name] = sorted(v for v in p["trunks"] if v != NO_VLAN)
                if not p["trunks"]:   # empty = every VLAN: not something we set, so fix it
                    trunks[name] = list(range(1, 4095))
        frr_vnis = {}
        if self.pathspace:
            self.frr_running(fresh=True)
            frr_vnis = {vni: self.applied_frr.get(vni, shown) for vni, shown in self.frr_vnis().items()}
        return {"local": local, "l2vnis": l2, "stray": stray, "trunks": trunks, "frr_vnis": frr_vnis}

    def _ovs_ports(self) -> dict[str, dict]:
        names = set(self.vsctl("list-ports", self.bridge).split())
        data = json.loads(self.vsctl("-f", "json", "--columns=name,tag,trunks", "list", "Port"))
        out = {}
        for row in data.get("data", []):
            name, tag, trunks = row
            if name in names:
                tags = _ovs_set(tag)
                out[name] = {"tag": tags[0] if tags else None, "trunks": [int(t) for t in _ovs_set(trunks)]}
        return out

    def frr_running(self, fresh: bool = False) -> str:
        """FRR's running config, read once per apply cycle (``fresh`` re-reads)."""
        if fresh or getattr(self, "_running", None) is None:
            self._running = self.vtysh("show running-config")
        return self._running

    def frr_vnis(self) -> dict[int, dict]:
        """The ``vni X`` blocks of ``address-family l2vpn evpn`` in FRR's running config."""
        out: dict[int, dict] = {}
        cur = None
        for line in self.frr_running().splitlines():
            s = line.strip()
            m = re.fullmatch(r"vni (\d+)", s)
            if m:
                cur = out.setdefault(int(m.group(1)), {"rd": None, "import_rt": [], "export_rt": []})
                continue
            if cur is None:
                continue
            if s in ("exit-vni", "exit-address-family", "exit"):
                cur = None
            elif s.startswith("rd "):
                cur["rd"] = s.split()[1]
            elif s.startswith("route-target "):
                _, direction, rt = s.split()
                keys = ["import_rt", "export_rt"] if direction == "both" else [f"{direction}_rt"]
                for k in keys:
                    cur[k].append(rt)
        for v in out.values():
            v["import_rt"].sort()
            v["export_rt"].sort()
        return out

    def frr_bgp(self) -> dict:
        asn, neighbors = None, {}
        for line in self.frr_running().splitlines():
            m = re.fullmatch(r"router bgp (\d+)", line.strip())
            if m and line.startswith("router"):
                asn = int(m.group(1))
            m = re.fullmatch(r"neighbor (\S+) remote-as (\d+)", line.strip())
            if m:
                neighbors[m.group(1)] = int(m.group(2))
        return {"asn": asn, "neighbors": neighbors}

    # --- changing -------------------------------------------------------------------------
    def _no_ipv6(self, *devs: str) -> None:
        args = [f"net.ipv6.conf.{d}.disable_ipv6=1" for d in devs]
        _run("ip", "netns", "exec", self.netns, "sysctl", "-qw", *args, check=False)

    def execute(self, steps: list[tuple]) -> None:
        for step in steps:
            LOG.info("step %s", step)
            getattr(self, "do_" + step[0].replace("-", "_"))(*step[1:])

    def do_trunk(self, port: str, vlans) -> None:
        value = ",".join(str(v) for v in vlans) if vlans else str(NO_VLAN)
        self.vsctl("set", "Port", port, "vlan_mode=trunk", f"trunks={value}")

    def do_del_l2vni(self, vlan: int, vni: int | None) -> None:
        self.vsctl("--if-exists", "del-port", self.bridge, f"v{vlan}")
        for dev in (f"v{vlan}", f"br{vlan}", *([f"vx{vni}"] if vni is not None else [])):
            self.ip("link", "del", dev, check=False)

    def do_del_dev(self, dev: str) -> None:
        self.ip("link", "del", dev, check=False)

    def do_add_l2vni(self, vlan: int, vni: int, local: str, port: int) -> None:
        v, vb, br, vx = f"v{vlan}", f"v{vlan}b", f"br{vlan}", f"vx{vni}"
        if not local:
            raise AgentError(f"VLAN {vlan}: no VTEP address (no vtep source-address, no /32 on lo)")
        self.ip("link", "add", br, "type", "bridge", "mcast_snooping", "0")
        self.ip("link", "add", v, "type", "veth", "peer", "name", vb)
        self.ip("link", "add", vx, "type", "vxlan", "id", str(vni), "local", local, "dstport", str(port),
                "nolearning")
        self._no_ipv6(br, v, vb, vx)
        self.ip("link", "set", vx, "master", br)
        self.ip("link", "set", vb, "master", br)
        _run("bridge", "-n", self.netns, "link", "set", "dev", vx, "learning", "off", "neigh_suppress", "on")
        for dev in (vb, v, vx, br):
            self.ip("link", "set", dev, "up")
        self.vsctl("--may-exist", "add-port", self.bridge, v, "--", "set", "Port", v, f"tag={vlan}")

    def _bgp_asn(self) -> int:
        asn = self.frr_bgp()["asn"]   # the ASN does not change within a cycle: cached config is fine
        if asn is None:
            raise AgentError("FRR has no `router bgp`")
        return asn

    def do_frr_del_vni(self, vni: int) -> None:
        self.vtysh("configure terminal", f"router bgp {self._bgp_asn()}", "address-family l2vpn evpn",
                   f"no vni {vni}")
        self.applied_frr.pop(vni, None)

    def do_frr_vni(self, vni: int, rd, imports, exports) -> None:
        cmds = ["configure terminal", f"router bgp {self._bgp_asn()}", "address-family l2vpn evpn", f"vni {vni}"]
        if rd:
            cmds.append(f"rd {rd}")
        cmds += [f"route-target import {rt}" for rt in imports]
        cmds += [f"route-target export {rt}" for rt in exports]
        self.vtysh(*cmds)
        self.applied_frr[vni] = {"rd": rd, "import_rt": sorted(imports), "export_rt": sorted(exports)}


# ------------------------------------------------------------------------------ agent loop
def apply_config(executor: Executor, xml: str | None) -> dict:
    """Apply one configuration document now; returns the status dict (raises on failure)."""
    desired = parse_config(xml)
    current = executor.read_current()
    steps = plan(current, desired)
    executor.execute(steps)
    return _status(executor, desired, current, steps)


def _status(executor: Executor, desired: dict, current: dict, steps: list[tuple]) -> dict:
    report = {"present": desired["present"],
              "mac_vrfs": [{"vlan": v, "vni": mv["vni"], "name": mv["name"]}
                           for v, mv in sorted(desired["mac_vrfs"].items())],
              "interfaces": desired["interfaces"], "steps": [list(s) for s in steps],
              "not_realised": unrealised(desired, current)}
    if executor.pathspace:
        try:
            report["bgp"] = bgp_report(desired, executor.frr_bgp())
        except AgentError as exc:
            report["bgp"] = f"unknown ({exc})"
    return report


class NetconfSource:
    def __init__(self, address: str, key: str, username: str = "root"):
        host, _, port = address.rpartition(":")
        self.host, self.port, self.key, self.username = host, int(port), key, username
        self.m = None

    def get(self) -> str:
        from ncclient import manager
        if self.m is None or not self.m.connected:
            self.m = manager.connect(host=self.host, port=self.port, username=self.username,
                                     key_filename=self.key, allow_agent=False, look_for_keys=False,
                                     hostkey_verify=False, timeout=10)
        try:
            return self.m.get_config(source="running", filter=("subtree", FILTER)).data_xml
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self.m is not None:
            try:
                self.m.close_session()
            except Exception:   # noqa: BLE001
                pass
            self.m = None


class Agent:
    def __init__(self, executor: Executor, source, run_dir: Path, interval: float = 0.5):
        self.executor, self.source, self.run_dir, self.interval = executor, source, Path(run_dir), interval
        self.stop_event = threading.Event()
        self.status: dict = {"pid": os.getpid(), "state": "starting", "generation": 0}
        self.last_xml = None
        self.last_full = 0.0

    def write_status(self, **update) -> None:
        self.status.update(update, updated=time.time())
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.run_dir / "status.json.tmp"
        tmp.write_text(json.dumps(self.status, indent=2, default=str) + "\n")
        os.replace(tmp, self.run_dir / "status.json")

    def once(self) -> None:
        xml = self.source.get()
        if xml == self.last_xml and time.monotonic() - self.last_full < FULL_CHECK_S \
                and self.status.get("state") == "ok":
            return
        t0 = time.monotonic()
        report = apply_config(self.executor, xml)
        self.last_full = time.monotonic()
        changed = xml != self.last_xml or report["steps"]
        self.last_xml = xml
        if changed:
            self.status["generation"] += 1
            LOG.info("applied generation %d in %.3f s: %d steps", self.status["generation"],
                     time.monotonic() - t0, len(report["steps"]))
        self.write_status(state="ok", last_error=None, applied=report,
                          last_apply_s=round(time.monotonic() - t0, 3))

    def run(self) -> None:
        self.write_status()
        backoff = self.interval
        while not self.stop_event.is_set():
            try:
                self.once()
                backoff = self.interval
            except Exception as exc:   # noqa: BLE001 - keep serving; the error is in the status
                LOG.warning("apply failed: %s", exc)
                self.write_status(state="error", last_error=f"{type(exc).__name__}: {exc}",
                                  last_error_at=time.time())
                self.last_xml = None
                backoff = min(backoff * 2, 5.0)
            self.stop_event.wait(backoff)
        if hasattr(self.source, "close"):
            self.source.close()
        self.write_status(state="stopped")


class FileSource:
    def __init__(self, path: str):
        self.path = path

    def get(self) -> str:
        return Path(self.path).read_text()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="vpcnet-leafagent", description=__doc__.split("\n")[0])
    p.add_argument("--netns", required=True, help="the leaf's network namespace")
    p.add_argument("--run-dir", required=True, help="status.json and agent.log go here")
    p.add_argument("--ovsdb", required=True, help="the leaf OVS database (unix:PATH)")
    p.add_argument("--bridge", default=BRIDGE)
    p.add_argument("--frr-pathspace", help="the leaf's FRR pathspace (default: --netns)")
    p.add_argument("--netconf", default="127.0.0.1:830", help="NETCONF server HOST:PORT")
    p.add_argument("--key", help="SSH private key for NETCONF (user root)")
    p.add_argument("--config-file", help="apply this XML instead of polling NETCONF")
    p.add_argument("--once", action="store_true", help="apply once and exit")
    p.add_argument("--interval", type=float, default=0.5)
    args = p.parse_args(argv)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=str(run_dir / "agent.log"), level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("ncclient").setLevel(logging.WARNING)
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    executor = Executor(args.netns, args.ovsdb, args.frr_pathspace or args.netns, args.bridge)
    if args.config_file:
        source = FileSource(args.config_file)
    elif args.key:
        source = NetconfSource(args.netconf, args.key)
    else:
        p.error("give --key (NETCONF) or --config-file")
    agent = Agent(executor, source, run_dir, args.interval)
    if args.once:
        agent.once()
        return 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.stop_event.set())
    LOG.info("leaf agent for %s started (pid %d)", args.netns, os.getpid())
    agent.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
