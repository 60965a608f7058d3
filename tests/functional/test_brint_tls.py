"""OpenFlow over TLS: the controller demands a client certificate signed by our CA; a bridge with
one gets its flows, a bridge without one gets nothing."""
from __future__ import annotations

import subprocess
import time

from tests.conftest import ControllerProcess, free_port
from tests.functional.brint import VPCS
from vpcnet.app.api import Client
from vpcnet.sim.ovs import PrivateOvs


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=vpcnet-test-ca", cwd=d)
    for name in ("controller", "switch"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", cwd=d)


def test_openflow_over_tls_with_client_certificates(tmp_path):
    pki, rogue = tmp_path / "pki", tmp_path / "rogue"
    for d in (pki, rogue):
        d.mkdir()
        make_pki(d)
    port = free_port()
    state = tmp_path / "ctl"
    state.mkdir()
    ctl = ControllerProcess(state, "--of-listen", f"127.0.0.1:{port}", "--of-cert", str(pki / "controller.pem"),
                            "--of-key", str(pki / "controller.key"), "--of-ca", str(pki / "ca.pem")).wait_ready()
    good = PrivateOvs(tmp_path / "good").start()
    bad = PrivateOvs(tmp_path / "bad").start()
    try:
        node = {"apiVersion": "vpcnet.io/v1", "kind": "Node", "metadata": {"name": "node-1"},
                "spec": {"datapathId": "0000000000000001", "uplinkPort": "up1"}}
        status, payload = Client(f"unix:{state / 'api.sock'}").request("POST", "/v1/apply",
                                                                        {"documents": VPCS + [node]})
        assert status == 200, payload
        good.vsctl("set-ssl", str(pki / "switch.key"), str(pki / "switch.pem"), str(pki / "ca.pem"))
        good.add_bridge("br-int", 1, controller=f"ssl:127.0.0.1:{port}")
        good.add_port("br-int", "up1", ofport=100, type_="dummy")
        # same datapath id, certificate from another CA: the controller refuses it, nothing installed
        bad.vsctl("set-ssl", str(rogue / "switch.key"), str(rogue / "switch.pem"), str(pki / "ca.pem"))
        bad.add_bridge("br-int", 1, controller=f"ssl:127.0.0.1:{port}")
        bad.add_port("br-int", "up1", ofport=100, type_="dummy")
        deadline = time.monotonic() + 30
        while len(good.dump_flows("br-int")) < 10:
            assert time.monotonic() < deadline, "no flows over TLS"
            time.sleep(0.1)
        time.sleep(1.0)
        assert bad.dump_flows("br-int") == []
        log = bad.run_dir.joinpath("ovs-vswitchd.log").read_text()
        assert f"ssl:127.0.0.1:{port}: connected" not in log
        assert f"ssl:127.0.0.1:{port}: connected" in good.run_dir.joinpath("ovs-vswitchd.log").read_text()
    finally:
        ctl.stop()
        good.stop()
        bad.stop()
