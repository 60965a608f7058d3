"""Fill a state database with a synthetic cluster: VPCs, subnets, namespaces, pods with their
addresses (Pod, Ip, Mac and IpEvent rows exactly as the allocator writes them).

Used by the restart test and the IPAM benchmark. This is a data generator, not product code:
it sends plain OVSDB `transact` requests of `batch` inserts each over JSON-RPC, because going
through an IDL would make the generator itself the thing being measured.
"""
from __future__ import annotations

import argparse
import json
import time

import netaddr

from vpcnet.app.ipam.plan import derived_mac
import ovs.jsonrpc
import ovs.stream


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _row(cols: dict) -> dict:
    return {k: (["map", sorted(v.items())] if isinstance(v, dict) else v) for k, v in cols.items()}


def populate(remote: str, pods: int, subnets: int = 1000, vpcs: int = 100, batch: int = 5000) -> dict:
    t0 = time.monotonic()
    per_subnet = -(-pods // subnets)
    rows = []
    for v in range(vpcs):
        ns = [f"ns-{s}" for s in range(subnets) if s % vpcs == v]
        rows.append(("Vpc", {"name": f"vpc-{v}", "vni": 50000 + v, "generation": 1, "uid": f"vpc-{v}",
                             "spec": canonical({"namespaces": ns, "l3Mode": "distributed", "peers": []}),
                             "status": "{}"}))
    for s in range(subnets):
        vpc = f"vpc-{s % vpcs}"
        cidr = netaddr.IPNetwork(f"10.{s // 250}.{s % 250}.0/24") if per_subnet < 250 else \
            netaddr.IPNetwork(f"10.{s % 250}.0.0/16")
        spec = {"vpc": vpc, "cidrBlock": str(cidr), "namespaces": [f"ns-{s}"], "excludeIps": [],
                "private": False, "allowSubnets": []}
        rows.append(("Subnet", {"name": f"sn-{s}", "vpc": vpc, "vlan": 100 + s, "vni": 10100 + s, "generation": 1,
                                "uid": f"sn-{s}", "spec": canonical(spec), "status": "{}"}))
        rows.append(("Namespace", {"name": f"ns-{s}", "generation": 1, "uid": f"ns-{s}", "spec": "{}",
                                   "status": "{}"}))
    now = int(time.time() * 1000)
    for i in range(pods):
        s = i % subnets
        k = i // subnets
        vpc = f"vpc-{s % vpcs}"
        cidr = netaddr.IPNetwork(f"10.{s // 250}.{s % 250}.0/24") if per_subnet < 250 else \
            netaddr.IPNetwork(f"10.{s % 250}.0.0/16")
        ip = netaddr.IPAddress(int(cidr.first) + 2 + k)
        mac = derived_mac(ip)
        owner = f"ns-{s}/pod-{k}"
        status = {"ip": str(ip), "ips": [str(ip)], "mac": mac, "vpc": vpc, "subnet": f"sn-{s}", "vlan": 100 + s,
                  "gateway": str(netaddr.IPAddress(int(cidr.first) + 1)), "node": f"node-{i % 5000}", "port": ""}
        rows.append(("Pod", {"namespace": f"ns-{s}", "name": f"pod-{k}", "node": f"node-{i % 5000}",
                             "generation": 1, "uid": owner, "spec": canonical({"nodeName": f"node-{i % 5000}"}),
                             "status": canonical(status), "labels": {"app": f"app-{k % 10}"}}))
        rows.append(("Ip", {"vpc": vpc, "ip": str(ip), "subnet": f"sn-{s}", "mac": mac, "owner": owner,
                            "state": "allocated", "changed_ms": now}))
        rows.append(("Mac", {"vpc": vpc, "mac": mac, "subnet": f"sn-{s}", "owner": owner, "state": "allocated",
                             "changed_ms": now}))
    error, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(remote))
    if error:
        raise RuntimeError(f"cannot connect to {remote}: {error}")
    rpc = ovs.jsonrpc.Connection(stream)
    try:
        for start in range(0, len(rows), batch):
            ops = [{"op": "insert", "table": table, "row": _row(cols)} for table, cols in rows[start:start + batch]]
            error, reply = rpc.transact_block(ovs.jsonrpc.Message.create_request("transact", ["vpcnet", *ops]))
            if error or reply.error or any("error" in r for r in reply.result if r):
                raise RuntimeError(f"populate failed: {error or reply.error or reply.result}")
    finally:
        rpc.close()
    return {"rows": len(rows), "seconds": time.monotonic() - t0}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("remote")
    p.add_argument("--pods", type=int, default=150_000)
    p.add_argument("--subnets", type=int, default=1000)
    p.add_argument("--vpcs", type=int, default=100)
    a = p.parse_args()
    print(populate(a.remote, a.pods, a.subnets, a.vpcs))


if __name__ == "__main__":
    main()
