"""app/ofwire.py against a real, private Open vSwitch and a real os-ken controller process.

* br-int: flows, groups and meters installed by ``tests/functional/ofwire_probe_app.py`` through
  ``ofwire.Wire`` (groups/meters directly, flows in one atomic ONF bundle);
* br-ref: the same set installed with ``ovs-ofctl add-groups/add-meter/--bundle add-flows`` from
  ``render_for_ofctl``/``render_group``/``render_meter`` text.

The dumps of both bridges must be identical, every flow's read-back signature must equal its
desired signature (zero drift right after install), the raw-bytes identity of every dumped entry
must equal os-ken's parse of it, and flows changed, deleted or added by hand must show up as
drift.

Then the controller's own path, on br-rec: ``DatapathLink`` (bundles as byte chunks) and
``Reconciler.resync`` (round 1) install the same flows, which must dump exactly like br-ref1
(``ovs-ofctl --bundle add-flows`` of the same flows with round-1 cookies); ``Reconciler.audit``
must find zero drift, then exactly the hand changes, repair them, and find zero drift again.
"""
from __future__ import annotations

import dataclasses
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

from tests.conftest import ROOT
from tests.unit.app.ofwire_cases import ovs_groups, ovs_meters, switch_flows
from vpcnet.flows import cookies
from vpcnet.flows.model import Flow
from vpcnet.flows.pipeline import PIPELINE
from vpcnet.flows.render import format_match, render_for_ofctl, render_group, render_meter
from vpcnet.sim.ovs import PrivateOvs


TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    """Is something listening on 127.0.0.1:port? (read /proc: connecting would open an
    OpenFlow session with os-ken)"""
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as fh:
            return any(line.split()[1] == want and line.split()[3] == "0A" for line in fh.readlines()[1:])
    except OSError:
        return False


class Probe:
    """An os-ken probe process (``module``, run with the port as its argument); ``result()``
    returns its next RESULT line as a dict."""

    def __init__(self, port: int, log_path, module: str = "tests.functional.ofwire_probe_app"):
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", module, str(port)],
                                     cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + TIMEOUT
        while not _listening(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"probe did not listen: {open(log_path).read()}")
            time.sleep(0.05)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)

    def result(self) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no RESULT from the probe; its log:\n{open(self.log.name).read()}") from None
            if line.startswith("RESULT "):
                payload = json.loads(line[len("RESULT "):])
                assert "crash" not in payload, payload["crash"] + "\n" + open(self.log.name).read()
                return payload

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def _dump(ovs: PrivateOvs, what: str, bridge: str) -> list[str]:
    out = ovs.ofctl("--no-stats", what, bridge) if what == "dump-flows" else ovs.ofctl(what, bridge)
    return sorted(line.strip() for line in out.splitlines() if line.strip() and "reply" not in line)


def _install_reference(ovs: PrivateOvs, tmp_path, flows, bridge: str = "br-ref", dpid: int = 0x2) -> None:
    ovs.add_bridge(bridge, dpid)
    (tmp_path / "groups.txt").write_text("".join(render_group(g) + "\n" for g in ovs_groups()))
    ovs.ofctl("add-groups", bridge, str(tmp_path / "groups.txt"))
    for m in ovs_meters():
        ovs.ofctl("add-meter", bridge, render_meter(m))
    (tmp_path / f"{bridge}.txt").write_text(render_for_ofctl(flows))
    ovs.ofctl("--bundle", "add-flows", bridge, str(tmp_path / f"{bridge}.txt"))


def _spec(flow: Flow, actions: str | None = None) -> str:
    """ovs-ofctl text of a flow's table, priority and match (for --strict mod/del-flows)."""
    match = format_match(flow.match)
    text = f"table={PIPELINE.id(flow.table)},priority={flow.priority}" + (f",{match}" if match else "")
    return text + (f",actions={actions}" if actions is not None else "")


def test_wire_installs_exactly_what_ovs_ofctl_installs_and_audits_clean(ovs, tmp_path):
    flows = switch_flows()
    port = _free_port()
    probe = Probe(port, tmp_path / "probe.log")
    try:
        ovs.add_bridge("br-int", 0x1, controller=f"tcp:127.0.0.1:{port}")
        first = probe.result()
        _install_reference(ovs, tmp_path, flows)

        # 1. the switch holds exactly the same flows, groups and meters on both bridges
        assert first["errors"] == []
        wire_dump, ref_dump = _dump(ovs, "dump-flows", "br-int"), _dump(ovs, "dump-flows", "br-ref")
        assert len(wire_dump) == len(flows)
        assert wire_dump == ref_dump
        assert _dump(ovs, "dump-groups", "br-int") == _dump(ovs, "dump-groups", "br-ref")
        assert len(_dump(ovs, "dump-groups", "br-int")) == len(ovs_groups())
        assert _dump(ovs, "dump-meters", "br-int") == _dump(ovs, "dump-meters", "br-ref")

        # 2. a fresh install audits as zero drift: every read-back signature is the desired one,
        #    and the raw-bytes identity of every dumped entry is os-ken's normalisation of it
        assert first["kind"] == "wire"
        assert first["n_installed"] == len(flows) and first["extra"] == []
        drift = [r for r in first["flows"] if not (r["present"] and r["equal"])]
        assert not drift, json.dumps(drift[:3], indent=1)
        assert first["n_raw"] == len(flows) and first["raw_mismatch"] == [], first["raw_mismatch"][:3]

        # 3. changes made by hand are seen as drift
        changed = next(f for f in flows if f.table == "l2_fwd" and f.priority == 50)
        deleted = next(f for f in flows if f.table == "l3_neigh" and f.priority == 200)
        ovs.ofctl("--strict", "mod-flows", "br-int", _spec(changed, "output:99"))
        ovs.ofctl("--strict", "del-flows", "br-int", _spec(deleted))
        ovs.ofctl("add-flow", "br-int", "table=250,priority=7,ip,actions=drop")
        probe.send("dump")
        second = probe.result()
        status = {r["flow"]: (r["present"], r["equal"]) for r in second["flows"]}
        by_flow = dict(zip(flows, second["flows"]))
        assert (by_flow[changed]["present"], by_flow[changed]["equal"]) == (True, False)
        assert "output" in by_flow[changed]["installed"] and "99" in by_flow[changed]["installed"]
        assert by_flow[deleted]["present"] is False
        assert sum(1 for ok in status.values() if ok != (True, True)) == 2
        assert len(second["extra"]) == 1 and "250" in second["extra"][0]
        assert second["errors"] == []
        assert second["raw_mismatch"] == [], second["raw_mismatch"][:3]

        # 4. the controller's path: DatapathLink + Reconciler install the same set (round 1) ...
        rounded = [dataclasses.replace(f, cookie=cookies.with_round(f.cookie, 1)) for f in flows]
        _install_reference(ovs, tmp_path, rounded, "br-ref1", 0x3)
        ovs.add_bridge("br-rec", 0x4, controller=f"tcp:127.0.0.1:{port}")
        rec = probe.result()
        assert rec["kind"] == "reconciler" and rec["round"] == 1
        assert rec["drift"] == {} and rec["errors"] == []       # ... and audit as zero drift
        ref1 = _dump(ovs, "dump-flows", "br-ref1")
        assert len(ref1) == len(flows) and _dump(ovs, "dump-flows", "br-rec") == ref1

        # 5. the reconciler's audit sees exactly the hand changes, repairs them, then none
        ovs.ofctl("--strict", "mod-flows", "br-rec", _spec(changed, "output:99"))
        ovs.ofctl("--strict", "del-flows", "br-rec", _spec(deleted))
        ovs.ofctl("add-flow", "br-rec", "table=250,priority=7,ip,actions=drop")
        probe.send("audit")
        repaired = probe.result()
        assert repaired["drift"] == {"altered": 1, "missing": 1, "extra": 1} and repaired["errors"] == []
        assert _dump(ovs, "dump-flows", "br-rec") == ref1
        probe.send("audit")
        assert probe.result()["drift"] == {}
    finally:
        probe.stop()
