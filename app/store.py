"""The intent store: validated objects in, one state-database transaction per change out.

`apply` and `delete` are all-or-nothing: every document of a change is checked against the
database and the rest of the change first, then written in one OVSDB transaction together with
the pods' address allocations. A failure anywhere leaves the database as it was.
"""
from __future__ import annotations

import json
import logging

import netaddr

from vpcnet.app import intent
from vpcnet.app.ipam.allocator import AllocationRequest, Allocator
from vpcnet.app.ipam.plan import IpamError, SubnetPlan, normalise_mac
from vpcnet.ovsdb.state import commands as state_cmd

LOG = logging.getLogger(__name__)

VLAN_RANGE = (100, 4094)      # VLANs vpcnet hands out when a Subnet names none
L2VNI_BASE = 10000            # default L2VNI = 10000 + VLAN
L3VNI_RANGE = (50000, 59999)  # default L3VNI of a Vpc
ZONE_RANGE = (1, 32768)        # VPC ids: conntrack zone (0x8000 | id: hairpin zone) + router MAC 0e:76:70:ff:<id>
DEFAULT_SERVICE_CIDR = "10.96.0.0/16"   # cluster IPs of Services (Kubernetes' usual range)
NODE_PORT_RANGE = (30000, 32768)
ANN_IP, ANN_MAC, ANN_SUBNET, ANN_POOL = ("vpcnet.io/ip_address", "vpcnet.io/mac_address",
                                         "vpcnet.io/subnet", "vpcnet.io/ip_pool")
from vpcnet.app.intent.workload import ANN_ORIGIN  # noqa: E402  ("cni": released by CNI DEL)


class StoreError(Exception):
    """A change refused as a whole. `errors` name kind/name, field and value."""

    def __init__(self, errors, status: int = 422):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        self.status = status
        super().__init__("\n".join(self.errors))


class NotFound(StoreError):
    def __init__(self, message):
        super().__init__(message, 404)


def _spec(row) -> dict:
    return json.loads(row.spec) if row.spec else {}


def _status(row) -> dict:
    return json.loads(row.status) if row.status else {}


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class UpsertIntentCommand(state_cmd.UpsertObjectCommand):
    """Upsert with columns derived inside the transaction (fresh view), e.g. a Subnet's VLAN."""

    def __init__(self, api, table, namespace, name, columns, derive=None):
        super().__init__(api, table, namespace, name, columns)
        self.derive = derive

    def run_idl(self, txn):
        if self.derive is not None:
            row = state_cmd.find_row(self.api, self.table, self.namespace, self.name)
            self.columns = {**self.columns, **self.derive(row)}
        super().run_idl(txn)


class SetStatusCommand(state_cmd.UpsertObjectCommand):
    """Write a pod's status computed from an allocation earlier in the same transaction."""

    def __init__(self, api, table, namespace, name, columns, status_fn):
        super().__init__(api, table, namespace, name, columns)
        self.status_fn = status_fn

    def run_idl(self, txn):
        self.columns = {**self.columns, "status": canonical(self.status_fn())}
        super().run_idl(txn)


# How long an apply or delete waits for its transaction's outcome. ovsdbapp's default (the
# connection's 30 s) is meant for small commands; a large manifest can take longer to commit, and
# a change reported as failed must not have been stored: wait for the outcome, bounded only
# against a database that stopped answering. (Clients wait longer still: app/cli.py.)
WRITE_TIMEOUT = 600.0


class Store:
    def __init__(self, api, allocator: Allocator, service_cidr: str = DEFAULT_SERVICE_CIDR,
                 write_timeout: float = WRITE_TIMEOUT):
        self.api = api
        self.allocator = allocator
        self.service_cidr = netaddr.IPNetwork(service_cidr)
        self.write_timeout = write_timeout

    # -- reads -------------------------------------------------------------
    def rows(self, kind: str, namespace: str | None = None):
        if kind == "Pod":
            self.api.ensure_loaded("Pod", None if namespace is None else [namespace])
        return self.api.list_objects(kind, namespace).execute(check_error=True)

    def row(self, kind: str, namespace: str, name: str):
        if kind == "Pod":
            self.api.ensure_loaded("Pod", [namespace])
        return self.api.get_object(kind, namespace, name).execute(check_error=True)

    def manifest(self, kind: str, row) -> dict:
        obj = intent.Obj(kind, row.name, row.namespace if intent.KINDS[kind].namespaced else "",
                         dict(row.labels), dict(row.annotations), _spec(row))
        status = _status(row)
        if kind == "Subnet":
            status.update(self.subnet_status(row))
        elif kind == "Vpc":
            status["vni"] = row.vni
            status["id"] = row.zone[0] if row.zone else None
            status["subnets"] = sorted(r.name for r in self.rows("Subnet") if r.vpc == row.name)
        manifest = obj.to_manifest(status)
        manifest["metadata"].update(uid=row.uid, generation=row.generation, creationTimestampMs=row.created_ms)
        return manifest

    def get(self, kind: str, namespace: str, name: str) -> dict:
        row = self.row(kind, namespace, name)
        if row is None:
            raise NotFound(f"{kind} {namespace + '/' if namespace else ''}{name} not found")
        return self.manifest(kind, row)

    def list(self, kind: str, namespace: str | None = None) -> list[dict]:
        return [self.manifest(kind, r) for r in self.rows(kind, namespace)]

    def subnet_plan(self, row) -> SubnetPlan:
        return SubnetPlan.from_spec(row.name, _spec(row), row.vlan or None)

    def subnet_status(self, row) -> dict:
        plan = self.subnet_plan(row)
        self.allocator.load([row.name])
        used = {v: 0 for v in plan.versions}
        quarantined = {v: 0 for v in plan.versions}
        for ip_row in self.api.tables["Ip"].rows.values():
            if ip_row.subnet == row.name:
                version = netaddr.IPAddress(ip_row.ip).version
                bucket = used if ip_row.state == "allocated" else quarantined
                bucket[version] = bucket.get(version, 0) + 1
        # Pods get one address per family, so the smallest family bounds how many more fit.
        available = min(max(0, plan.size(v) - used[v] - quarantined[v]) for v in plan.versions)
        return {"vlan": row.vlan or None, "vni": row.vni or None,
                "gateway": ",".join(str(c.gateway) for c in plan.cidrs), "size": plan.size(),
                "used": max(used.values()), "quarantined": max(quarantined.values()), "available": available}

    def ip_history(self, address: str) -> list[dict]:
        try:
            address = str(netaddr.IPAddress(address))
        except (netaddr.AddrFormatError, ValueError):
            raise StoreError(f"ip-history: {address!r} is not an IP address", 400)
        self.api.ensure_loaded("IpEvent", [address])
        events = sorted((r for r in self.api.tables["IpEvent"].rows.values() if r.ip == address),
                        key=lambda r: r.at_ms)
        held: list[dict] = []
        for ev in events:
            if ev.event == "allocated":
                held.append({"vpc": ev.vpc, "ip": ev.ip, "owner": ev.owner, "mac": ev.mac, "subnet": ev.subnet,
                             "node": ev.node, "from_ms": ev.at_ms, "to_ms": None})
            else:
                open_ = next((h for h in reversed(held) if h["vpc"] == ev.vpc and h["owner"] == ev.owner
                              and h["to_ms"] is None), None)
                if open_ is not None:
                    open_["to_ms"] = ev.at_ms
        return held

    # -- resolution ----------------------------------------------------------
    def vpc_of_namespace(self, namespace: str, batch: dict | None = None) -> str:
        vpcs = {r.name: _spec(r) for r in self.rows("Vpc")}
        namespaces = {r.name: _spec(r) for r in self.rows("Namespace")}
        for obj in (batch or {}).values():
            if obj.kind == "Vpc":
                vpcs[obj.name] = obj.spec
            elif obj.kind == "Namespace":
                namespaces[obj.name] = obj.spec
        for name, spec in sorted(vpcs.items()):
            if namespace in spec.get("namespaces", ()):
                return name
        ns_vpc = namespaces.get(namespace, {}).get("vpc")
        if ns_vpc:
            return ns_vpc
        if "default" in vpcs:
            return "default"
        raise StoreError(f"namespace {namespace!r} belongs to no VPC: list it in a Vpc's spec.namespaces")

    def subnets_by_name(self, batch: dict | None = None) -> dict[str, tuple[dict, int | None]]:
        subnets = {r.name: (_spec(r), r.vlan or None) for r in self.rows("Subnet")}
        for obj in (batch or {}).values():
            if obj.kind == "Subnet":
                subnets[obj.name] = (obj.spec, subnets.get(obj.name, (None, obj.spec.get("vlan")))[1])
        return subnets

    def pod_request(self, pod_ref: str, namespace: str, name: str, annotations: dict, node: str,
                    batch: dict | None = None, fixed_ips=(), fixed_mac=None) -> AllocationRequest:
        vpc = self.vpc_of_namespace(namespace, batch)
        subnets = self.subnets_by_name(batch)
        plans = {n: SubnetPlan.from_spec(n, spec, vlan) for n, (spec, vlan) in subnets.items()
                 if spec.get("vpc", "default") == vpc}
        fixed = [s.strip() for s in (annotations.get(ANN_IP) or "").split(",") if s.strip()] or list(fixed_ips)
        pool = [s.strip() for s in (annotations.get(ANN_POOL) or "").split(",") if s.strip()]
        mac = annotations.get(ANN_MAC) or fixed_mac
        mac = normalise_mac(mac) if mac else None
        wanted = annotations.get(ANN_SUBNET)
        if wanted:
            if wanted not in subnets:
                raise StoreError(f"{pod_ref}: metadata.annotations[{ANN_SUBNET!r}]: subnet {wanted!r} does not exist")
            if wanted not in plans:
                raise StoreError(f"{pod_ref}: metadata.annotations[{ANN_SUBNET!r}]: subnet {wanted!r} belongs to "
                                 f"VPC {subnets[wanted][0].get('vpc', 'default')!r}, not to this namespace's VPC {vpc!r}")
            allowed = subnets[wanted][0].get("namespaces") or []
            if allowed and namespace not in allowed:
                raise StoreError(f"{pod_ref}: metadata.annotations[{ANN_SUBNET!r}]: subnet {wanted!r} is not open "
                                 f"to namespace {namespace!r} (its namespaces: {', '.join(allowed)})")
            candidates = [plans[wanted]]
        elif fixed or pool:
            anchor = netaddr.IPAddress((fixed or pool)[0])
            field = ANN_IP if fixed else ANN_POOL
            candidates = [p for p in plans.values() if p.contains(anchor)]
            if not candidates:
                raise StoreError(f"{pod_ref}: metadata.annotations[{field!r}]: {anchor} is in no subnet of VPC {vpc!r}")
        else:
            candidates = self.namespace_subnets(namespace, plans, subnets, batch)
            if not candidates:
                raise StoreError(f"{pod_ref}: namespace {namespace!r} has no subnet in VPC {vpc!r}: "
                                 f"list it in a Subnet's spec.namespaces")
        for ip in fixed + pool:
            owner = [p for p in candidates if p.contains(netaddr.IPAddress(ip))]
            if not owner:
                field = ANN_IP if ip in fixed else ANN_POOL
                raise StoreError(f"{pod_ref}: metadata.annotations[{field!r}]: {ip} is outside subnet "
                                 f"{candidates[0].name} ({candidates[0].cidr_block})")
        return AllocationRequest(owner=f"{namespace}/{name}", vpc=vpc, subnets=candidates, fixed_ips=fixed,
                                 fixed_mac=mac, pool=pool, node=node)

    def namespace_subnets(self, namespace, plans, subnets, batch) -> list[SubnetPlan]:
        ns_rows = {r.name: _spec(r) for r in self.rows("Namespace")}
        for obj in (batch or {}).values():
            if obj.kind == "Namespace":
                ns_rows[obj.name] = obj.spec
        preferred = [n for n in ns_rows.get(namespace, {}).get("subnets", []) if n in plans]
        listed = sorted(n for n, p in plans.items() if namespace in (subnets[n][0].get("namespaces") or []))
        order = preferred + [n for n in listed if n not in preferred]
        return [plans[n] for n in order]

    # -- checks across the change and the database ----------------------------
    def check(self, objs, batch) -> list[str]:
        errors: list[str] = []
        subnet_rows = {r.name: r for r in self.rows("Subnet")}
        vpc_rows = {r.name: r for r in self.rows("Vpc")}
        final_vpcs = {n: _spec(r) for n, r in vpc_rows.items()}
        final_subnets = {n: _spec(r) for n, r in subnet_rows.items()}
        for obj in objs:
            if obj.kind == "Vpc":
                final_vpcs[obj.name] = obj.spec
            elif obj.kind == "Subnet":
                final_subnets[obj.name] = obj.spec
        # a namespace belongs to at most one VPC
        owner: dict[str, str] = {}
        for name in sorted(final_vpcs):
            for ns in final_vpcs[name].get("namespaces", []):
                if ns in owner:
                    if ("Vpc", "", name) in batch or ("Vpc", "", owner[ns]) in batch:
                        errors.append(f"Vpc/{name}: spec.namespaces: {ns!r} already belongs to Vpc/{owner[ns]}")
                else:
                    owner[ns] = name
        vnis = {}
        for name, row in vpc_rows.items():
            vnis[row.vni] = f"Vpc/{name}"
        for name, row in subnet_rows.items():
            vnis[row.vni] = f"Subnet/{name}"
        vlans = {row.vlan: f"Subnet/{n}" for n, row in subnet_rows.items()}
        for obj in objs:
            if obj.kind == "Vpc" and "vni" in obj.spec:
                holder = vnis.get(obj.spec["vni"])
                if holder and holder != obj.ref:
                    errors.append(f"{obj.ref}: spec.vni: {obj.spec['vni']} is already used by {holder}")
                vnis[obj.spec["vni"]] = obj.ref
            if obj.kind == "Subnet":
                errors += self._check_subnet(obj, subnet_rows.get(obj.name), final_vpcs, final_subnets, vlans, vnis)
            if obj.kind == "Pod":
                errors += self._check_pod(obj)
        dpids: dict[str, str] = {}
        nodes = {r.name: _spec(r) for r in self.rows("Node")}
        nodes.update({o.name: o.spec for o in objs if o.kind == "Node"})
        for name in sorted(nodes):
            dpid = nodes[name].get("datapathId")
            if dpid in dpids and (("Node", "", name) in batch or ("Node", "", dpids[dpid]) in batch):
                errors.append(f"Node/{name}: spec.datapathId: {dpid} is already used by Node/{dpids[dpid]}")
            dpids.setdefault(dpid, name)
        return errors

    def _check_subnet(self, obj, row, final_vpcs, final_subnets, vlans, vnis) -> list[str]:
        errors = []
        vpc = obj.spec.get("vpc", "default")
        if vpc not in final_vpcs:
            errors.append(f"{obj.ref}: spec.vpc: VPC {vpc!r} does not exist")
        mine = [netaddr.IPNetwork(c) for c in obj.spec["cidrBlock"].split(",")]
        for other, spec in sorted(final_subnets.items()):
            if other == obj.name or spec.get("vpc", "default") != vpc:
                continue
            for theirs in (netaddr.IPNetwork(c) for c in spec["cidrBlock"].split(",")):
                for cidr in mine:
                    if cidr.version == theirs.version and (cidr in theirs or theirs in cidr):
                        errors.append(f"{obj.ref}: spec.cidrBlock: {cidr} overlaps {theirs} of Subnet/{other} "
                                      f"in VPC {vpc}")
        if "vlan" in obj.spec:
            holder = vlans.get(obj.spec["vlan"])
            if holder and holder != obj.ref:
                errors.append(f"{obj.ref}: spec.vlan: {obj.spec['vlan']} is already used by {holder}")
            vlans[obj.spec["vlan"]] = obj.ref
        if "vni" in obj.spec:
            holder = vnis.get(obj.spec["vni"])
            if holder and holder != obj.ref:
                errors.append(f"{obj.ref}: spec.vni: {obj.spec['vni']} is already used by {holder}")
            vnis[obj.spec["vni"]] = obj.ref
        if row is not None:
            old = _spec(row)
            held = self._addresses_in(obj.name)
            if held and old.get("vpc", "default") != vpc:
                errors.append(f"{obj.ref}: spec.vpc: cannot move a subnet with {len(held)} addresses in use "
                              f"from VPC {old.get('vpc', 'default')} to {vpc}")
            removed = [netaddr.IPNetwork(c) for c in old["cidrBlock"].split(",")
                       if netaddr.IPNetwork(c) not in mine]
            for cidr in removed:
                inside = sorted(ip for ip in held if netaddr.IPAddress(ip) in cidr)
                if inside:
                    errors.append(f"{obj.ref}: spec.cidrBlock: cannot remove {cidr}: {len(inside)} addresses "
                                  f"in use (first: {inside[0]})")
        return errors

    def _addresses_in(self, subnet: str) -> list[str]:
        self.allocator.load([subnet])
        return [r.ip for r in self.api.tables["Ip"].rows.values() if r.subnet == subnet]

    def _check_pod(self, obj) -> list[str]:
        row = self.row("Pod", obj.namespace, obj.name)
        if row is None or not _status(row).get("ips"):
            return []
        errors = []
        for key in (ANN_IP, ANN_MAC, ANN_SUBNET, ANN_POOL):
            old, new = row.annotations.get(key), obj.annotations.get(key)
            if old != new:
                errors.append(f"{obj.ref}: metadata.annotations[{key!r}]: cannot change from {old!r} to {new!r} "
                              f"while the pod holds {_status(row)['ip']}; delete and re-create the pod")
        return errors

    # -- writes ------------------------------------------------------------------
    def apply(self, objs) -> list[dict]:
        """Create or update every object of the change, allocating pods' addresses, in one transaction."""
        batch = {o.key: o for o in objs}
        pod_namespaces = sorted({o.namespace for o in objs if o.kind == "Pod"})
        if pod_namespaces:
            self.api.ensure_loaded("Pod", pod_namespaces)
        errors = self.check(objs, batch)
        if errors:
            raise StoreError(errors)
        requests: dict[tuple, AllocationRequest] = {}
        for obj in objs:
            if obj.kind != "Pod":
                continue
            row = self.row("Pod", obj.namespace, obj.name)
            if row is not None and _status(row).get("ips"):
                continue
            try:
                requests[obj.key] = self.pod_request(obj.ref, obj.namespace, obj.name, dict(obj.annotations),
                                                     obj.spec.get("nodeName", ""), batch)
            except StoreError as exc:
                errors += exc.errors
        if errors:
            raise StoreError(errors)
        subnets = sorted({p.name for r in requests.values() for p in r.subnets})

        def build(new_allocation):
            taken: dict = {"vlan": set(), "vni": set(), "vpc_vni": set(), "zone": set(), "subnet_vlan": {},
                           "cluster_ip": set(), "node_port": set()}
            commands = []
            for obj in objs:
                columns = {"labels": dict(obj.labels), "annotations": dict(obj.annotations),
                           "spec": canonical(obj.spec)}
                if obj.kind == "Pod":
                    node = obj.spec.get("nodeName", "")
                    columns["node"] = node
                    request = requests.get(obj.key)
                    if request is None:
                        commands.append(UpsertIntentCommand(self.api, "Pod", obj.namespace, obj.name,
                                                            columns, self._pod_node_status(node)))
                        continue
                    alloc = new_allocation(request)
                    commands.append(alloc)
                    commands.append(SetStatusCommand(self.api, "Pod", obj.namespace, obj.name, columns,
                                                     self._pod_status(alloc, node, taken["subnet_vlan"])))
                    continue
                derive = None
                if obj.kind == "Subnet":
                    columns["vpc"] = obj.spec.get("vpc", "default")
                    derive = self._derive_subnet(obj, taken)
                elif obj.kind == "Vpc":
                    derive = self._derive_vpc(obj, taken)
                elif obj.kind == "Namespace":
                    columns["vpc"] = obj.spec.get("vpc", "")
                elif obj.kind == "Service":
                    derive = self._derive_service(obj, taken)
                commands.append(UpsertIntentCommand(self.api, obj.kind, obj.namespace, obj.name, columns, derive))
            return commands

        try:
            commands = self.allocator.transact(build, subnets, timeout=self.write_timeout)
        except IpamError as exc:
            raise StoreError(f"{self._who(exc, requests)}{exc}", exc.status) from exc
        results = []
        for command in commands:
            if isinstance(command, state_cmd.UpsertObjectCommand):
                ref = f"{command.table}/{command.namespace + '/' if command.namespace else ''}{command.name}"
                results.append({"ref": ref, "result": command.result})
        return results

    @staticmethod
    def _who(exc, requests) -> str:
        if len(requests) == 1:
            (kind, ns, name), = requests.keys()
            return f"{kind}/{ns}/{name}: "
        return ""

    def _pod_status(self, alloc, node, new_vlans=None):
        """The pod's status once `alloc` ran; the VLAN comes from the subnet row or, for a subnet
        created earlier in the same transaction, from what its upsert derived."""
        def status():
            lease = alloc.result
            vlan = (new_vlans or {}).get(lease.subnet) or lease.vlan
            if vlan is None:
                row = state_cmd.find_row(self.api, "Subnet", "", lease.subnet)
                vlan = row.vlan if row is not None else None
            return {**lease.as_status(), "vlan": vlan, "node": node, "port": ""}
        return status

    @staticmethod
    def _pod_node_status(node):
        def derive(row):
            status = _status(row) if row is not None else {}
            if status.get("node") == node:
                return {}
            return {"status": canonical({**status, "node": node})}
        return derive

    def _derive_subnet(self, obj, taken):
        def derive(row):
            rows = [r for r in self.api.tables["Subnet"].rows.values() if r.name != obj.name]
            used_vlans = {r.vlan for r in rows} | taken["vlan"]
            used_vnis = {r.vni for r in rows} | {r.vni for r in self.api.tables["Vpc"].rows.values()} \
                | taken["vni"] | taken["vpc_vni"]
            vlan = obj.spec.get("vlan") or (row.vlan if row is not None else None)
            if vlan is None:
                vlan = next((v for v in range(*VLAN_RANGE) if v not in used_vlans), None)
                if vlan is None:
                    raise IpamError(f"{obj.ref}: spec.vlan: no free VLAN left in {VLAN_RANGE[0]}..{VLAN_RANGE[1]}")
            vni = obj.spec.get("vni") or (row.vni if row is not None else None)
            if vni is None:
                vni = L2VNI_BASE + vlan
                while vni in used_vnis:
                    vni += 1
            taken["vlan"].add(vlan)
            taken["vni"].add(vni)
            taken["subnet_vlan"][obj.name] = vlan
            return {"vlan": vlan, "vni": vni}
        return derive

    def _derive_vpc(self, obj, taken):
        def derive(row):
            out = {}
            if row is None or not row.zone:
                # The VPC's datapath id: its conntrack zone and router MAC on every node. Never
                # changes while the VPC exists (a new zone would cut every tracked connection).
                used = {r.zone[0] for r in self.api.tables["Vpc"].rows.values() if r.zone} | taken["zone"]
                zone = next((z for z in range(*ZONE_RANGE) if z not in used), None)
                if zone is None:
                    raise IpamError(f"{obj.ref}: no free VPC id left in {ZONE_RANGE[0]}..{ZONE_RANGE[1] - 1}")
                taken["zone"].add(zone)
                out["zone"] = zone
            if "vni" in obj.spec:
                taken["vpc_vni"].add(obj.spec["vni"])
                return {**out, "vni": obj.spec["vni"]}
            if row is not None and row.vni:
                return out
            used = {r.vni for r in self.api.tables["Vpc"].rows.values()} | taken["vpc_vni"] | \
                {r.vni for r in self.api.tables["Subnet"].rows.values()}
            vni = next((v for v in range(*L3VNI_RANGE) if v not in used), None)
            if vni is None:
                raise IpamError(f"{obj.ref}: spec.vni: no free L3VNI left")
            taken["vpc_vni"].add(vni)
            return {**out, "vni": vni}
        return derive

    def _service_index(self, taken) -> dict:
        """Every stored Service's (cluster IP as an int or None, {(node port, protocol)}), read
        once per apply (inside its transaction): deriving each Service of a batch must not
        re-read every row (that made applying N Services cost O(N^2))."""
        idx = taken.get("service index")
        if idx is None:
            idx = taken["service index"] = {}
            for r in self.api.tables["Service"].rows.values():
                st = _status(r)
                ip = st.get("clusterIP")
                idx[(r.namespace, r.name)] = (
                    int(netaddr.IPAddress(ip)) if ip not in (None, "", "None") else None,
                    {(p, proto) for p, proto in (st.get("nodePorts") or {}).values()})
            taken["service ips"] = {ip for ip, _ in idx.values() if ip is not None}
            taken["service ports"] = {pp for _, ports in idx.values() for pp in ports}
        return idx

    def _derive_service(self, obj, taken):
        """status.clusterIP (spec.clusterIP, else kept, else the lowest free address of the
        service CIDR; "None": headless) and status.nodePorts (port name -> node port: spec's, else
        kept, else the lowest free in 30000-32767 for that protocol), unique cluster-wide."""
        def derive(row):
            old = _status(row) if row is not None else {}
            mine_ip, mine_ports = self._service_index(taken).get((obj.namespace, obj.name), (None, set()))
            ips, batch_ips = taken["service ips"], taken["cluster_ip"]

            def ip_used(value: int) -> bool:   # by another Service, stored or earlier in this batch
                return (value in ips and value != mine_ip) or value in batch_ips
            ip = obj.spec.get("clusterIP")
            if ip is None:
                ip = old.get("clusterIP") if old.get("clusterIP") not in (None, "None") else None
                if ip is None:
                    net = self.service_cidr
                    value = max(taken.get("ip cursor", 0), net.first + 2)   # .1 is kept back
                    while value < net.last and ip_used(value):
                        value += 1
                    if value >= net.last:
                        raise IpamError(f"{obj.ref}: no free cluster IP left in {self.service_cidr}")
                    taken["ip cursor"] = value + 1
                    ip = str(netaddr.IPAddress(value, net.version))
            elif ip != "None" and ip_used(int(netaddr.IPAddress(ip))):
                raise IpamError(f"{obj.ref}: spec.clusterIP {ip} is already another Service's")
            if ip != "None":
                batch_ips.add(int(netaddr.IPAddress(ip)))
            ports_in_use, batch_ports = taken["service ports"], taken["node_port"]

            def port_used(pp: tuple) -> bool:
                return (pp in ports_in_use and pp not in mine_ports) or pp in batch_ports
            ports = {}
            if obj.spec.get("type") == "NodePort":
                for sp in obj.spec.get("ports") or ():
                    proto = sp.get("protocol", "TCP")
                    want = sp.get("nodePort") or (old.get("nodePorts") or {}).get(sp.get("name", ""), [None])[0]
                    if want is not None and port_used((want, proto)):
                        if sp.get("nodePort"):
                            raise IpamError(f"{obj.ref}: spec.ports nodePort {want}/{proto} is already in use")
                        want = None
                    if want is None:
                        cursor = taken.setdefault("port cursor", {})
                        want = max(cursor.get(proto, 0), NODE_PORT_RANGE[0])
                        while want < NODE_PORT_RANGE[1] and port_used((want, proto)):
                            want += 1
                        if want >= NODE_PORT_RANGE[1]:
                            raise IpamError(f"{obj.ref}: no free node port left for {proto}")
                        cursor[proto] = want + 1
                    batch_ports.add((want, proto))
                    ports[sp.get("name", "")] = [want, proto]
            status = {**old, "clusterIP": ip, "nodePorts": ports}
            return {} if status == old else {"status": canonical(status)}
        return derive

    def delete(self, keys) -> list[dict]:
        """Delete objects (kind, namespace, name) in one transaction; pods release their addresses."""
        errors, results, deletes, stale_rows = [], [], [], []
        deleting = set(keys)
        releases = []
        for kind, namespace, name in keys:
            row = self.row(kind, namespace, name)
            ref = f"{kind}/{namespace + '/' if namespace else ''}{name}"
            if row is None:
                results.append({"ref": ref, "result": "not found"})
                continue
            if kind == "Subnet":
                held = [r for r in self._ip_rows(name) if r.state == "allocated"]
                if held:
                    owners = sorted({r.owner for r in held})
                    errors.append(f"{ref}: cannot delete: {len(owners)} pods still hold addresses in it "
                                  f"({', '.join(owners[:5])}{', ...' if len(owners) > 5 else ''})")
                    continue
                stale_rows += self._ip_rows(name)  # quarantined leftovers go with the subnet
            if kind == "Vpc":
                users = sorted(r.name for r in self.rows("Subnet") if r.vpc == name
                               and ("Subnet", "", r.name) not in deleting)
                if users:
                    errors.append(f"{ref}: cannot delete: subnets {', '.join(users)} belong to it")
                    continue
            if kind == "Pod":
                status = _status(row)
                if status.get("vpc"):
                    releases.append((status["vpc"], f"{namespace}/{name}", status.get("subnet"), status.get("node", "")))
            results.append({"ref": ref, "result": "deleted"})
            deletes.append(self.api.delete_object(kind, namespace, name))
        if errors:
            raise StoreError(errors, 409)
        subnets = sorted({r[2] for r in releases if r[2]})
        self.allocator.load(subnets)
        with self.api.transaction(check_error=True, log_errors=False, timeout=self.write_timeout) as txn:
            for command in deletes:
                txn.add(command)
            for vpc, owner, _subnet, node in releases:
                txn.add(self.allocator.release_command(vpc, owner, node))
            if stale_rows:
                txn.add(_DeleteRowsCommand(self.api, stale_rows))
        return results

    def _ip_rows(self, subnet: str):
        self.allocator.load([subnet])
        return [r for t in ("Ip", "Mac") for r in self.api.tables[t].rows.values() if r.subnet == subnet]

    def ensure_pod(self, namespace: str, name: str, node: str, fixed_ips=(), fixed_mac=None) -> dict:
        """The CNI path: return the pod's status, creating the Pod with an allocation if the store
        does not know it (then the namespace's default subnet is used)."""
        out = self.ensure_pods([(namespace, name, node, fixed_ips, fixed_mac)])[0]
        if isinstance(out, BaseException):
            raise out
        return out

    def ensure_pods(self, items) -> list:
        """``ensure_pod`` for several pods ``(namespace, name, node, fixed_ips, fixed_mac)`` at
        once (the CNI ADDs of a burst): every pod that needs an address gets it in ONE
        transaction. Returns, per item in order, the status or the exception ``ensure_pod``
        would have raised for it alone: if the shared transaction fails, each pod is tried
        alone, so one pod's error (exhausted subnet, address held) stays that pod's."""
        out: list = [None] * len(items)
        todo: list[tuple[int, tuple]] = []
        again: list[int] = []
        seen: set = set()
        for i, (namespace, name, node, fixed_ips, fixed_mac) in enumerate(items):
            if (namespace, name) in seen:
                again.append(i)    # the same pod twice: after the first, it has its address
                continue
            seen.add((namespace, name))
            try:
                prepared = self._ensure_prepare(namespace, name, node, fixed_ips, fixed_mac)
            except Exception as exc:  # noqa: BLE001 - this pod's answer
                out[i] = exc
                continue
            if isinstance(prepared, dict):
                out[i] = prepared
            else:
                todo.append((i, prepared))
        if len(todo) > 1:
            try:
                for (i, _), status in zip(todo, self._ensure_commit([p for _, p in todo])):
                    out[i] = status
                todo = []
            except Exception as exc:  # noqa: BLE001 - each pod alone, for its own error
                LOG.debug("pods/ensure: a batch of %d failed (%s); one by one", len(todo), exc)
        for i, prepared in todo:
            try:
                out[i] = self._ensure_commit([prepared])[0]
            except Exception as exc:  # noqa: BLE001
                out[i] = exc
        for i in again:
            try:
                prepared = self._ensure_prepare(*items[i])
                out[i] = prepared if isinstance(prepared, dict) else self._ensure_commit([prepared])[0]
            except Exception as exc:  # noqa: BLE001
                out[i] = exc
        return out

    def _ensure_prepare(self, namespace: str, name: str, node: str, fixed_ips=(), fixed_mac=None):
        """The pod's status if it has an address, else what ``_ensure_commit`` needs."""
        ref = f"Pod/{namespace}/{name}"
        row = self.row("Pod", namespace, name)
        if row is not None and _status(row).get("ips"):
            return _status(row)
        annotations = dict(row.annotations) if row is not None else {ANN_ORIGIN: "cni"}
        spec = _spec(row) if row is not None else {}
        if node:
            spec["nodeName"] = node
        request = self.pod_request(ref, namespace, name, annotations, node, None, fixed_ips, fixed_mac)
        columns = {"labels": dict(row.labels) if row is not None else {}, "annotations": annotations,
                   "spec": canonical(spec), "node": node}
        return ref, namespace, name, node, request, columns

    def _ensure_commit(self, prepared: list[tuple]) -> list[dict]:
        """Allocate and write the pods ``prepared`` in one transaction; their statuses."""
        def build(new_allocation):
            commands = []
            for _ref, namespace, name, node, request, columns in prepared:
                alloc = new_allocation(request)
                commands += [alloc, SetStatusCommand(self.api, "Pod", namespace, name, columns,
                                                     self._pod_status(alloc, node))]
            return commands
        subnets = sorted({p.name for *_, request, _columns in prepared for p in request.subnets})
        self.api.ensure_loaded("Ip", subnets)    # what allocator.load() wants, without its spin
        self.api.ensure_loaded("Mac", subnets)
        try:
            commands = self.allocator.transact(build, subnets)
        except IpamError as exc:
            raise StoreError(f"{prepared[0][0]}: {exc}" if len(prepared) == 1 else str(exc), exc.status) from exc
        return [json.loads(commands[k].columns["status"]) for k in range(1, len(commands), 2)]

    def release_pod(self, namespace: str, name: str) -> dict:
        """CNI DEL: a pod the CNI path created (nobody declared it) goes away with its sandbox and
        its address is released (into quarantine). A declared pod keeps its address: its next
        sandbox gets the same one."""
        row = self.row("Pod", namespace, name)
        if row is None:
            return {"released": False, "reason": "unknown pod"}
        if dict(row.annotations).get(ANN_ORIGIN) != "cni":
            return {"released": False, "reason": "declared pod keeps its address"}
        self.delete([("Pod", namespace, name)])
        return {"released": True}


class _DeleteRowsCommand(state_cmd.cmd.BaseCommand):
    def __init__(self, api, rows):
        super().__init__(api)
        self.rows = rows

    def run_idl(self, txn):
        for row in self.rows:
            self.api.tables[row._table.name].rows.get(row.uuid) and row.delete()
