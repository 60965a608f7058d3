"""Pure flow compilation for br-int: intent values in, frozen OpenFlow 1.3 flow values out.

No sockets, no clocks, no os-ken: standard library + netaddr only.

* ``inputs``   VpcIn, SubnetIn, PodIn, NodeIn, ClusterIn (validated intent values; new values
               derived cheaply with ``with_pod``/``without_pod``/``with_node``/...)
* ``pmap``     the persistent map behind ClusterIn's indexes
* ``compile``  compile_node, compile_owner, owners_on_node, owners_affected, Change
* ``model``    Flow, Match, actions, Group, Meter, FlowError
* ``pipeline`` the table declaration (PIPELINE) and the checked flow builder
* ``fields``   the register / ct_mark / ct_label / ct_zone map
* ``cookies``  the cookie layout and helpers
* ``render``   canonical dump text (table names) and ovs-ofctl add-flows text
* ``base``, ``vpc``, ``subnet``, ``pod``: one module per feature / owner kind
* ``policy``   SecurityGroup + NetworkPolicy flows (owner "policy/<vpc>"; design note inside)
"""
from .compile import Change, compile_node, compile_owner, owners_affected, owners_on_node
from .inputs import ClusterIn, InputError, NodeIn, PodIn, SubnetIn, VpcIn, node_router_mac, router_mac
from .policy_inputs import (
    IpBlockIn, NamespaceIn, NetworkPolicyIn, NpPeerIn, NpPortIn, NpRuleIn, SecurityGroupIn, SelectorIn,
    SgRuleIn,
)
from .model import Flow, FlowError, Group, Match, Meter
from .pipeline import PIPELINE
from .render import render, render_for_ofctl

__all__ = [
    "Change", "compile_node", "compile_owner", "owners_affected", "owners_on_node",
    "ClusterIn", "InputError", "NodeIn", "PodIn", "SubnetIn", "VpcIn", "node_router_mac", "router_mac",
    "IpBlockIn", "NamespaceIn", "NetworkPolicyIn", "NpPeerIn", "NpPortIn", "NpRuleIn", "SecurityGroupIn",
    "SelectorIn", "SgRuleIn",
    "Flow", "FlowError", "Group", "Match", "Meter", "PIPELINE", "render", "render_for_ofctl",
]
