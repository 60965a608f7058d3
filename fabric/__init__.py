"""vpcnet's EVPN/VXLAN leaf configuration: a pure compiler, NETCONF renderers and a drift diff.

No I/O anywhere in this package: values in, values (and lxml trees) out.

    from vpcnet.fabric import FabricIn, compile_fabric, render, diff_openconfig
    fabric = FabricIn.from_dicts(vpcs=..., subnets=..., nodes=..., leaves=...)
    states = compile_fabric(fabric)            # {leaf name: LeafState}
    config = render(states["leaf-1"])          # lxml <config> in the leaf's model
    plan = diff_openconfig(states["leaf-1"], running_xml)
    print(plan.text())                         # + / - / ~ lines
    edit = plan.edit_config()                  # <config> with nc:operation merge/delete

Modules: inputs (FabricIn), model (LeafState + derivation rules), compile, render_openconfig,
render_nxos, render_huawei, render (registry), oc_inventory + diff (OpenConfig drift), xmlutil.
"""
from .compile import compile_fabric, compile_leaf
from .diff import LeafPlan, diff_openconfig, plan_text
from .inputs import FabricIn, InputError, LeafIn, NodeIn, Ownership, PeerIn, SubnetIn, VpcIn
from .model import ANYCAST_GATEWAY_MAC, LeafState
from .render import RENDERERS, render, render_text

__all__ = [
    "ANYCAST_GATEWAY_MAC", "FabricIn", "InputError", "LeafIn", "LeafPlan", "LeafState",
    "NodeIn", "Ownership", "PeerIn", "RENDERERS", "SubnetIn", "VpcIn", "compile_fabric",
    "compile_leaf", "diff_openconfig", "plan_text", "render", "render_text",
]
