"""The lab's plan: every name, address, ASN and interface, computed from (lab name, leaves, nodes).

Pure data, no side effects: `Lab.up()` builds what this describes, `Lab.down()` and the tests
derive what to look for from it, and a new process (``lab status``/``lab down``) recomputes the
same plan from the persisted parameters.

Addressing uses the RFC 2544 benchmark range 198.18.0.0/15, which is never routed publicly:

* management link of leaf N: 198.18.N.0/31 — ``.0`` on ``m-leafN`` in ``<L>-mgmt``, ``.1`` on
  ``mgmt0`` in the leaf (the NETCONF server listens there, port 830);
* underlay link spine<->leaf N: 198.19.N.0/31 — spine ``.0`` on ``leafN``, leaf ``.1`` on
  ``spine0``; MTU 9000 so VXLAN's 50 bytes never matter;
* leaf N loopback = VTEP = router-id: 198.19.255.N/32 on ``lo``; spine router-id 198.19.255.254;
* ASNs: spine 65000, leaf N 65000+N (eBGP everywhere, one session per leaf carrying
  ipv4-unicast for the loopbacks and l2vpn evpn).

Namespaces: ``<L>-mgmt``, ``<L>-spine``, ``<L>-leafN``, ``<L>-n<N>-<k>`` (node k of leaf N).
Interface names never contain the lab name, so they stay within the kernel's 15 characters.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

INFRA_PREFIXES = ("198.18.0.0/16", "198.19.0.0/16")
# The examples/ subnets (10-20-30 in two VPCs, plus shop-a's IPv6 half): guarded by default.
DEFAULT_POD_PREFIXES = ("10.10.0.0/24", "10.20.0.0/24", "10.30.0.0/24", "fd00:30::/64")
SPINE_ASN = 65000
SPINE_ROUTER_ID = "198.19.255.254"
UNDERLAY_MTU = 9000
NETCONF_PORT = 830
FABRIC_BRIDGE = "fabric"
NODE_UPLINK = "uplink0"
LEAF_MGMT_IF = "mgmt0"
LEAF_SPINE_IF = "spine0"
MAX_LEAVES = 250
MAX_NODES_PER_LEAF = 99
LAB_NAME_RE = re.compile(r"[a-z][a-z0-9]{0,11}")
LEAF_KINDS = ("evpn", "vtep")


class TopologyError(ValueError):
    pass


@dataclass(frozen=True)
class LeafPlan:
    lab: str
    index: int
    nodes: int

    @property
    def name(self) -> str:          # the Leaf object's name in the controller
        return f"leaf{self.index}"

    @property
    def netns(self) -> str:         # also the FRR pathspace
        return f"{self.lab}-leaf{self.index}"

    @property
    def asn(self) -> int:
        return SPINE_ASN + self.index

    @property
    def vtep(self) -> str:
        return f"198.19.255.{self.index}"

    @property
    def mgmt_ip(self) -> str:       # leaf end of the management /31
        return f"198.18.{self.index}.1"

    @property
    def mgmt_peer(self) -> str:     # L-mgmt end
        return f"198.18.{self.index}.0"

    @property
    def mgmt_peer_if(self) -> str:
        return f"m-leaf{self.index}"

    @property
    def underlay_ip(self) -> str:   # leaf end of the spine link
        return f"198.19.{self.index}.1"

    @property
    def spine_ip(self) -> str:      # spine end of the spine link
        return f"198.19.{self.index}.0"

    @property
    def spine_if(self) -> str:      # the spine's interface towards this leaf
        return f"leaf{self.index}"

    @property
    def ports(self) -> list[str]:
        return [f"swp{k}" for k in range(1, self.nodes + 1)]


@dataclass(frozen=True)
class NodePlan:
    lab: str
    leaf: int
    index: int

    @property
    def name(self) -> str:          # the Node object's name == its netns
        return f"{self.lab}-n{self.leaf}-{self.index}"

    @property
    def netns(self) -> str:
        return self.name

    @property
    def short(self) -> str:         # run-dir subdirectory
        return f"n{self.leaf}-{self.index}"

    @property
    def datapath_id(self) -> str:
        return f"{(self.leaf << 16) | self.index:016x}"

    @property
    def leaf_name(self) -> str:
        return f"leaf{self.leaf}"

    @property
    def leaf_netns(self) -> str:
        return f"{self.lab}-leaf{self.leaf}"

    @property
    def leaf_port(self) -> str:
        return f"swp{self.index}"

    uplink = NODE_UPLINK


@dataclass(frozen=True)
class Topology:
    lab: str
    leaves: int = 2
    nodes_per_leaf: int = 2
    pod_prefixes: tuple[str, ...] = DEFAULT_POD_PREFIXES
    leaf_plans: list[LeafPlan] = field(init=False, compare=False, repr=False)
    node_plans: list[NodePlan] = field(init=False, compare=False, repr=False)

    def __post_init__(self):
        if not LAB_NAME_RE.fullmatch(self.lab or ""):
            raise TopologyError(f"lab name {self.lab!r}: use 1-12 lowercase letters/digits, starting "
                                f"with a letter (it prefixes every namespace and FRR pathspace)")
        if not 1 <= self.leaves <= MAX_LEAVES:
            raise TopologyError(f"leaves: 1..{MAX_LEAVES} (198.18.N.0/31 and 198.19.255.N per leaf)")
        if not 0 <= self.nodes_per_leaf <= MAX_NODES_PER_LEAF:
            raise TopologyError(f"nodes per leaf: 0..{MAX_NODES_PER_LEAF}")
        for p in self.pod_prefixes:
            try:
                ipaddress.ip_network(p)
            except ValueError as exc:
                raise TopologyError(f"pod prefix {p!r}: {exc}") from None
        object.__setattr__(self, "leaf_plans",
                           [LeafPlan(self.lab, i, self.nodes_per_leaf) for i in range(1, self.leaves + 1)])
        object.__setattr__(self, "node_plans",
                           [NodePlan(self.lab, leaf.index, k) for leaf in self.leaf_plans
                            for k in range(1, self.nodes_per_leaf + 1)])

    @property
    def mgmt_netns(self) -> str:
        return f"{self.lab}-mgmt"

    @property
    def spine_netns(self) -> str:   # also the spine's FRR pathspace
        return f"{self.lab}-spine"

    def host_netns(self, host: str) -> str:
        return f"{self.lab}-h-{host}"

    def pod_netns(self, namespace: str, name: str) -> str:
        return f"{self.lab}-pod-{namespace}-{name}"

    @property
    def guarded_prefixes(self) -> list[str]:
        return [*INFRA_PREFIXES, *self.pod_prefixes]

    def leaf(self, ref: str | int) -> LeafPlan:
        """By index, ``leafN``, or the netns name ``<L>-leafN``."""
        text = str(ref)
        for prefix in (f"{self.lab}-leaf", "leaf"):
            if text.startswith(prefix):
                text = text[len(prefix):]
                break
        if text.isdigit() and 1 <= int(text) <= self.leaves:
            return self.leaf_plans[int(text) - 1]
        raise TopologyError(f"no leaf {ref!r} in lab {self.lab} (leaf1..leaf{self.leaves})")

    def node(self, ref: str) -> NodePlan:
        """By name ``<L>-nN-k`` or short ``nN-k``."""
        for n in self.node_plans:
            if ref in (n.name, n.short):
                return n
        raise TopologyError(f"no node {ref!r} in lab {self.lab}")

    def all_netns(self) -> list[str]:
        """The fixed namespaces (test hosts and pods are recorded separately)."""
        return [self.mgmt_netns, self.spine_netns, *(lf.netns for lf in self.leaf_plans),
                *(n.netns for n in self.node_plans)]

    def frr_pathspaces(self) -> list[str]:
        return [self.spine_netns, *(lf.netns for lf in self.leaf_plans)]

    def owns_netns(self, name: str) -> bool:
        """Whether a namespace name belongs to this lab by its naming scheme (for a stateless down)."""
        return bool(re.fullmatch(rf"{re.escape(self.lab)}-(mgmt|spine|leaf\d+|n\d+-\d+|h-.+|pod-.+)", name))
