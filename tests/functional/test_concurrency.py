"""Eight allocator processes race for one /16: the unique indexes let no address be committed twice."""
from __future__ import annotations

import collections
import json
import subprocess
import sys

from vpcnet.app import intent

WORKER = r"""
import json, sys
from vpcnet.ovsdb.state.impl_idl import connect
from vpcnet.app.ipam.allocator import Allocator, AllocationRequest
from vpcnet.app.ipam.plan import SubnetPlan
remote, worker, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
api = connect(remote)
allocator = Allocator(api, quarantine_s=60)
plan = SubnetPlan("big", "fin", "10.100.0.0/16")
out = []
for i in range(count):
    lease = allocator.allocate(AllocationRequest(f"ns/w{worker}-{i}", "fin", [plan]))
    out.append([lease.ips[0], lease.mac])
print(json.dumps({"leases": out, "conflicts": allocator.conflicts}))
api.stop()
"""


def test_eight_processes_thousand_each_no_duplicates(state_db, store):
    store.apply(intent.validate_all([
        {"apiVersion": "vpcnet.io/v1", "kind": "Vpc", "metadata": {"name": "fin"}, "spec": {"namespaces": ["ns"]}},
        {"apiVersion": "vpcnet.io/v1", "kind": "Subnet", "metadata": {"name": "big"},
         "spec": {"vpc": "fin", "cidrBlock": "10.100.0.0/16", "namespaces": ["ns"]}}]))
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, state_db, str(w), "1000"], stdout=subprocess.PIPE,
                              text=True) for w in range(8)]
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0
        results.append(json.loads(out))
    ips = [ip for r in results for ip, _ in r["leases"]]
    macs = [mac for r in results for _, mac in r["leases"]]
    assert len(ips) == 8000
    dupes = [ip for ip, n in collections.Counter(ips).items() if n > 1]
    assert dupes == [] and len(set(macs)) == 8000
    # The database agrees: 8000 Ip rows, one per address.
    store.allocator.load(["big"])
    rows = [r for r in store.api.tables["Ip"].rows.values() if r.subnet == "big"]
    assert len(rows) == 8000 and len({r.ip for r in rows}) == 8000
    assert sum(r["conflicts"] for r in results) > 0  # they really raced
