"""Fabric test inputs: the examples/ intent as the state DB would hold it, plus variants.

The examples carry no subnet VLAN/VNI, so they are assigned the way app/store.py allocates
them (lowest free VLAN from 100 in apply order, L2VNI = 10000 + VLAN), and the default gateway
comes from the real IPAM rule (``SubnetPlan``: first usable address of each CIDR).
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path

from vpcnet.app.intent import load_path, validate_all
from vpcnet.app.ipam.plan import SubnetPlan
from vpcnet.fabric import FabricIn

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@lru_cache(maxsize=None)
def example_dicts() -> dict:
    objs = validate_all(load_path(str(EXAMPLES)))
    vpcs, subnets, nodes, leaves = [], [], [], []
    next_vlan = 100
    for o in objs:
        spec = dict(o.spec)
        if o.kind == "Vpc":
            vpcs.append({"name": o.name, **spec})
        elif o.kind == "Subnet":
            vlan = spec.pop("vlan", None) or next_vlan
            next_vlan = max(next_vlan, vlan + 1)
            plan = SubnetPlan.from_spec(o.name, spec, vlan)
            spec["gateway"] = ",".join(str(c.gateway) for c in plan.cidrs)
            subnets.append({"name": o.name, **spec, "vlan": vlan,
                            "vni": spec.pop("vni", None) or 10000 + vlan})
        elif o.kind == "Node":
            nodes.append({"name": o.name, **spec})
        elif o.kind == "Leaf":
            leaves.append({"name": o.name, **spec})
    return {"vpcs": vpcs, "subnets": subnets, "nodes": nodes, "leaves": leaves}


def examples_fabric(**overrides) -> FabricIn:
    """The examples' fabric intent; ``overrides`` replace whole lists (e.g. ``vpcs=[...]``)."""
    data = {k: [dict(d) for d in v] for k, v in example_dicts().items()}
    data.update(overrides)
    return FabricIn.from_dicts(**data)


def fabric_mode() -> FabricIn:
    """The examples with both VPCs routed by the leaves (l3Mode: fabric): anycast gateways."""
    vpcs = [{**v, "l3Mode": "fabric"} for v in example_dicts()["vpcs"]]
    return examples_fabric(vpcs=vpcs)


def replace_leaf(fabric: FabricIn, name: str, **changes) -> FabricIn:
    leaves = tuple(dataclasses.replace(lf, **changes) if lf.name == name else lf
                   for lf in fabric.leaves)
    return dataclasses.replace(fabric, leaves=leaves)
