"""Pod, Node and Leaf: valid examples round-trip; bad ones name kind/name, path, value."""
from __future__ import annotations

import pytest

from intent_testlib import ABSENT, cases, check_invalid, check_valid, mk
from vpcnet.app.intent import validate

IP = "vpcnet.io/ip_address"
MAC = "vpcnet.io/mac_address"
POOL = "vpcnet.io/ip_pool"
SUBNET = "vpcnet.io/subnet"
SGS = "vpcnet.io/security_groups"


def pod(spec=None, annotations=None, name="db-0", namespace="prod", **kw):
    return mk("Pod", spec, name=name, namespace=namespace, api="v1", annotations=annotations,
              **kw)


VALID = [
    ("pod-defaults", mk("Pod", name="p"), {"containers": []}, True),
    ("pod-containers", pod({
        "nodeName": "node-1", "restartPolicy": "Always", "hostNetwork": False,
        "containers": [
            {"name": "app", "image": "nginx", "env": [{"name": "A", "value": "1"}],
             "ports": [{"containerPort": 80, "name": "http", "hostPort": 8080},
                       {"containerPort": 53, "protocol": "udp"}]},
            {"name": "side", "image": "busybox"}]}),
     {"nodeName": "node-1", "containers": [
         {"name": "app", "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"},
                                   {"containerPort": 53, "protocol": "UDP"}]},
         {"name": "side", "ports": []}]}, True),
    ("node-defaults", mk("Node", {"datapathId": "0000000000000001", "uplinkPort": "eth1"}),
     {"datapathId": "0000000000000001", "bridge": "br-int", "uplinkPort": "eth1"}, True),
    ("node-full", mk("Node", {"datapathId": "0x00:00:00:00:00:00:00:0A", "bridge": "br-vpc",
                              "uplinkPort": "bond0.100", "leaf": "leaf-1",
                              "leafPort": "Ethernet1/1", "tunnelIp": "192.0.2.10",
                              "managementIp": "FD00::10"}, api="v1"),
     {"datapathId": "000000000000000a", "bridge": "br-vpc", "uplinkPort": "bond0.100",
      "leaf": "leaf-1", "leafPort": "Ethernet1/1", "tunnelIp": "192.0.2.10",
      "managementIp": "fd00::10"}, True),
    ("node-external", mk("Node", {"datapathId": "0000000000000001", "uplinkPort": "eth1",
                                  "externalPort": "eth0", "nodeIP": "192.168.7.21"}),
     {"datapathId": "0000000000000001", "bridge": "br-int", "uplinkPort": "eth1", "externalPort": "eth0",
      "nodeIP": "192.168.7.21"}, True),
    ("leaf-netconf-defaults", mk("Leaf", {"driver": "netconf", "managementAddress": "172.30.0.1",
                                          "vtepIp": "10.0.0.1", "asn": 65001}),
     {"driver": "netconf", "managementAddress": "172.30.0.1:830", "vtepIp": "10.0.0.1",
      "asn": 65001, "model": "openconfig", "ports": []}, True),
    ("leaf-vtep-defaults", mk("Leaf", {"driver": "vtep", "managementAddress": "172.30.0.1",
                                       "vtepIp": "10.0.0.1", "asn": 4294967295}),
     {"driver": "vtep", "managementAddress": "172.30.0.1:6640", "vtepIp": "10.0.0.1",
      "asn": 4294967295, "ports": []}, True),
    ("leaf-full", mk("Leaf", {"driver": "netconf", "managementAddress": "[FD00::1]:2022",
                              "credentialsRef": "lab-creds", "vtepIp": "10.0.0.2", "asn": 1,
                              "model": "nxos", "ports": ["Ethernet1/1", "Ethernet1/2"]}),
     {"managementAddress": "[fd00::1]:2022", "credentialsRef": "lab-creds", "model": "nxos",
      "ports": ["Ethernet1/1", "Ethernet1/2"]}, False),
    ("leaf-bare-v6", mk("Leaf", {"driver": "netconf", "managementAddress": "fd00::1",
                                 "vtepIp": "10.0.0.2", "asn": 1}),
     {"managementAddress": "[fd00::1]:830", "credentialsRef": ABSENT}, False),
    ("leaf-lab", mk("Leaf", {"driver": "netconf", "model": "vpcnet-leaf", "managementAddress": "198.18.1.1",
                             "managementNamespace": "vl-mgmt", "credentialsRef": "lab", "vtepIp": "198.19.255.1",
                             "asn": 65001, "routerId": "198.19.255.1", "vtepInterface": "lo",
                             "peers": [{"address": "198.19.1.0", "asn": 65000, "description": "vpcnet spine"},
                                       {"address": "fd00::1", "asn": 65000}],
                             "ports": ["swp1"]}),
     {"model": "vpcnet-leaf", "managementAddress": "198.18.1.1:830", "managementNamespace": "vl-mgmt",
      "routerId": "198.19.255.1", "vtepInterface": "lo",
      "peers": [{"address": "198.19.1.0", "asn": 65000, "description": "vpcnet spine"},
                {"address": "fd00::1", "asn": 65000}]}, False),
    ("leaf-hostname", mk("Leaf", {"driver": "vtep", "managementAddress": "Leaf1.Lab:7000",
                                  "vtepIp": "10.0.0.2", "asn": 1}),
     {"managementAddress": "leaf1.lab:7000", "model": ABSENT}, False),
    ("leaf-vtep-unix", mk("Leaf", {"driver": "vtep", "managementAddress": "unix:/run/vpcnet-lab/vl/leaf1/vtep/vtep.sock",
                                   "vtepIp": "198.19.255.1", "asn": 65001, "ports": ["swp1"]}),
     {"driver": "vtep", "managementAddress": "unix:/run/vpcnet-lab/vl/leaf1/vtep/vtep.sock",
      "vtepIp": "198.19.255.1", "asn": 65001, "ports": ["swp1"]}, True),
]


@pytest.mark.parametrize("doc, expected, exact", cases(VALID))
def test_valid(doc, expected, exact):
    check_valid(doc, expected, exact=exact)


def test_pod_namespace_defaults_to_default():
    obj = check_valid(mk("Pod", name="p", api="v1"))
    assert obj.namespace == "default" and obj.ref == "Pod/default/p"


@pytest.mark.parametrize("given, normalised", [
    ({IP: "10.0.0.5"}, {IP: "10.0.0.5"}),
    ({IP: "10.0.0.5, FD00::0:5"}, {IP: "10.0.0.5,fd00::5"}),
    ({MAC: "02-00-00-00-00-AB"}, {MAC: "02:00:00:00:00:ab"}),
    ({MAC: "0200.0000.00ab"}, {MAC: "02:00:00:00:00:ab"}),
    ({POOL: "10.0.0.50, 10.0.0.51,fd00::1"}, {POOL: "10.0.0.50,10.0.0.51,fd00::1"}),
    ({SUBNET: "payments-a"}, {SUBNET: "payments-a"}),
    ({SGS: "a, b.c"}, {SGS: "a,b.c"}),
    ({"example.com/other": "anything at all", "vpcnetio/x": "y"},
     {"example.com/other": "anything at all", "vpcnetio/x": "y"}),
])
def test_pod_annotations_normalised(given, normalised):
    obj = check_valid(pod(annotations=given))
    assert dict(obj.annotations) == normalised


INVALID = [
    # Pod annotations
    ("pod-ip", pod(annotations={IP: "10.0.0.999"}),
     "Pod/prod/db-0: metadata.annotations[\"vpcnet.io/ip_address\"]: '10.0.0.999' is not an "
     "IP address"),
    ("pod-ip-two-v4", pod(annotations={IP: "10.0.0.1,10.0.0.2"}), "Pod/prod/db-0",
     'metadata.annotations["vpcnet.io/ip_address"]', "'10.0.0.1,10.0.0.2'",
     "more than one IPv4"),
    ("pod-ip-two-v6", pod(annotations={IP: "fd00::1,fd00::2"}), "more than one IPv6"),
    ("pod-ip-multicast", pod(annotations={IP: "224.0.0.1"}), "'224.0.0.1' is not a usable"),
    ("pod-ip-cidr", pod(annotations={IP: "10.0.0.1/24"}), "'10.0.0.1/24' is not an IP address"),
    ("pod-mac-multicast", pod(annotations={MAC: "01:00:5e:00:00:01"}),
     'Pod/prod/db-0: metadata.annotations["vpcnet.io/mac_address"]: \'01:00:5e:00:00:01\' is '
     "a multicast MAC"),
    ("pod-mac-garbage", pod(annotations={MAC: "zz:00:00:00:00:01"}),
     "'zz:00:00:00:00:01' is not a MAC address"),
    ("pod-mac-eui64", pod(annotations={MAC: "02:00:00:00:00:00:00:01"}),
     "is not a MAC address"),
    ("pod-mac-zero", pod(annotations={MAC: "00:00:00:00:00:00"}), "all-zero"),
    ("pod-pool-empty", pod(annotations={POOL: ""}),
     'metadata.annotations["vpcnet.io/ip_pool"]: \'\' must not be empty'),
    ("pod-pool-dup", pod(annotations={POOL: "10.0.0.1,10.0.0.1"}),
     'metadata.annotations["vpcnet.io/ip_pool"]: \'10.0.0.1\' is listed more than once'),
    ("pod-pool-bad", pod(annotations={POOL: "10.0.0.1,nope"}), "'nope' is not an IP address"),
    ("pod-ip-and-pool", pod(annotations={IP: "10.0.0.1", POOL: "10.0.0.2"}),
     "Pod/prod/db-0", 'metadata.annotations["vpcnet.io/ip_pool"]', "vpcnet.io/ip_address"),
    ("pod-subnet", pod(annotations={SUBNET: "Bad_Subnet"}),
     'metadata.annotations["vpcnet.io/subnet"]: \'Bad_Subnet\' is not a valid DNS-1123'),
    ("pod-sgs", pod(annotations={SGS: "a,B"}),
     'metadata.annotations["vpcnet.io/security_groups"]: \'B\' is not a valid'),
    ("pod-sgs-dup", pod(annotations={SGS: "a,a"}), "more than once"),
    ("pod-unknown-annotation", pod(annotations={"vpcnet.io/ip_adress": "10.0.0.1"}),
     'Pod/prod/db-0: metadata.annotations["vpcnet.io/ip_adress"]: unknown vpcnet.io '
     "annotation; did you mean 'vpcnet.io/ip_address'?"),
    ("pod-annotation-int", pod(annotations={IP: 5}),
     'metadata.annotations["vpcnet.io/ip_address"]: 5 must be a string'),
    # Pod spec
    ("pod-node-name", pod({"nodeName": "Node_1"}), "Pod/prod/db-0: spec.nodeName: 'Node_1'"),
    ("pod-bad-namespace", pod(namespace="Prod"),
     "metadata.namespace: 'Prod' is not a valid DNS-1123 label"),
    ("pod-container-port", pod({"containers": [{"name": "a", "ports": [
        {"containerPort": 70000}]}]}),
     "Pod/prod/db-0: spec.containers[0].ports[0].containerPort: 70000 is out of range"),
    ("pod-container-protocol", pod({"containers": [{"name": "a", "ports": [
        {"containerPort": 80, "protocol": "ICMP"}]}]}),
     "spec.containers[0].ports[0].protocol: 'ICMP' must be one of TCP, UDP, SCTP"),
    ("pod-container-port-missing", pod({"containers": [{"name": "a", "ports": [{}]}]}),
     "spec.containers[0].ports[0].containerPort: required field is missing"),
    ("pod-container-port-typo", pod({"containers": [{"name": "a", "ports": [
        {"containerport": 80}]}]}),
     "spec.containers[0].ports[0]: unknown field 'containerport'; did you mean "
     "'containerPort'?"),
    ("pod-container-port-name", pod({"containers": [{"name": "a", "ports": [
        {"containerPort": 80, "name": "HTTP_1"}]}]}),
     "spec.containers[0].ports[0].name: 'HTTP_1' is not a valid port name"),
    ("pod-container-port-name-dup", pod({"containers": [{"name": "a", "ports": [
        {"containerPort": 80, "name": "web"}, {"containerPort": 81, "name": "web"}]}]}),
     "spec.containers[0].ports[1].name: 'web' is used by another port"),
    ("pod-container-no-name", pod({"containers": [{"image": "x"}]}),
     "spec.containers[0].name: required field is missing"),
    ("pod-container-dup", pod({"containers": [{"name": "a"}, {"name": "a"}]}),
     "spec.containers[1].name: 'a' is used by another container"),
    ("pod-containers-map", pod({"containers": {"name": "a"}}),
     "spec.containers: {'name': 'a'} must be a list"),
    # Node
    ("node-no-dpid", mk("Node", {"uplinkPort": "eth1"}),
     "Node/x: spec.datapathId: required field is missing"),
    ("node-no-uplink", mk("Node", {"datapathId": "0000000000000001"}),
     "Node/x: spec.uplinkPort: required field is missing"),
    ("node-dpid-int", mk("Node", {"datapathId": 1, "uplinkPort": "eth1"}),
     "Node/x: spec.datapathId: 1 must be a string", "quote it"),
    ("node-dpid-short", mk("Node", {"datapathId": "123", "uplinkPort": "eth1"}),
     "Node/x: spec.datapathId: '123' is not a datapath id"),
    ("node-dpid-nonhex", mk("Node", {"datapathId": "000000000000000g", "uplinkPort": "eth1"}),
     "'000000000000000g' is not a datapath id"),
    ("node-uplink-slash", mk("Node", {"datapathId": "0000000000000001", "uplinkPort": "eth0/1"}),
     "Node/x: spec.uplinkPort: 'eth0/1' is not a valid interface name"),
    ("node-uplink-long", mk("Node", {"datapathId": "0000000000000001",
                                     "uplinkPort": "averyverylongname"}),
     "spec.uplinkPort: 'averyverylongname' is not a valid interface name"),
    ("node-bridge-space", mk("Node", {"datapathId": "0000000000000001", "uplinkPort": "e",
                                      "bridge": "br int"}),
     "spec.bridge: 'br int' is not a valid interface name"),
    ("node-leaf-no-port", mk("Node", {"datapathId": "0000000000000001", "uplinkPort": "e",
                                      "leaf": "leaf-1"}),
     "Node/x: spec.leafPort: is required when spec.leaf is set"),
    ("node-port-no-leaf", mk("Node", {"datapathId": "0000000000000001", "uplinkPort": "e",
                                      "leafPort": "swp1"}),
     "Node/x: spec.leafPort: 'swp1' needs spec.leaf"),
    ("node-mgmt-ip", mk("Node", {"datapathId": "0000000000000001", "uplinkPort": "e",
                                 "managementIp": "10.0.0"}),
     "Node/x: spec.managementIp: '10.0.0' is not an IP address"),
    ("node-external-no-ip", mk("Node", {"datapathId": "0000000000000001", "uplinkPort": "e",
                                        "externalPort": "eth0"}),
     "Node/x: spec.nodeIP: is required when spec.externalPort is set"),
    ("node-ip-no-external", mk("Node", {"datapathId": "0000000000000001", "uplinkPort": "e",
                                        "nodeIP": "192.168.7.21"}),
     "Node/x: spec.externalPort: is required when spec.nodeIP is set"),
    ("node-external-is-uplink", mk("Node", {"datapathId": "0000000000000001", "uplinkPort": "e",
                                            "externalPort": "e", "nodeIP": "192.168.7.21"}),
     "Node/x: spec.externalPort: 'e' is the uplink port"),
    ("node-ip-v6", mk("Node", {"datapathId": "0000000000000001", "uplinkPort": "e",
                               "externalPort": "eth0", "nodeIP": "fd00::1"}),
     "Node/x: spec.nodeIP: 'fd00::1'"),
    ("node-namespaced", mk("Node", {"datapathId": "0000000000000001", "uplinkPort": "e"},
                           namespace="prod"),
     "Node/x: metadata.namespace: 'prod' is not allowed"),
    # Leaf
    ("leaf-missing-all", mk("Leaf", {}), "Leaf/x: spec.driver: required field is missing"),
    ("leaf-missing-vtep", mk("Leaf", {}), "Leaf/x: spec.vtepIp: required field is missing"),
    ("leaf-missing-asn", mk("Leaf", {}), "Leaf/x: spec.asn: required field is missing"),
    ("leaf-missing-mgmt", mk("Leaf", {}),
     "Leaf/x: spec.managementAddress: required field is missing"),
    ("leaf-driver", mk("Leaf", {"driver": "ssh"}),
     "Leaf/x: spec.driver: 'ssh' must be one of netconf, vtep"),
    ("leaf-vtep-v6", mk("Leaf", {"driver": "vtep", "managementAddress": "10.1.1.1",
                                 "vtepIp": "fd00::1", "asn": 1}),
     "Leaf/x: spec.vtepIp: 'fd00::1' must be an IPv4 address"),
    ("leaf-asn-zero", mk("Leaf", {"asn": 0}), "Leaf/x: spec.asn: 0 is out of range"),
    ("leaf-asn-big", mk("Leaf", {"asn": 4294967296}), "spec.asn: 4294967296 is out of range"),
    ("leaf-port-range", mk("Leaf", {"driver": "netconf", "managementAddress": "1.2.3.4:99999"}),
     "Leaf/x: spec.managementAddress: '99999' is not a valid port"),
    ("leaf-bad-ipv4", mk("Leaf", {"driver": "netconf", "managementAddress": "300.1.1.1"}),
     "spec.managementAddress: '300.1.1.1' is not an IP address"),
    ("leaf-open-bracket", mk("Leaf", {"driver": "netconf", "managementAddress": "[fd00::1"}),
     "spec.managementAddress: '[fd00::1' is not a valid '[IPv6]:port' address"),
    ("leaf-bad-host", mk("Leaf", {"driver": "netconf", "managementAddress": "le af:830"}),
     "spec.managementAddress: 'le af:830' is not a valid host name"),
    ("leaf-model-vtep", mk("Leaf", {"driver": "vtep", "model": "nxos"}),
     "Leaf/x: spec.model: 'nxos' only applies to driver netconf"),
    ("leaf-model-bad", mk("Leaf", {"driver": "netconf", "model": "junos"}),
     "Leaf/x: spec.model: 'junos' must be one of openconfig, nxos, huawei"),
    ("leaf-peer-no-asn", mk("Leaf", {"driver": "netconf", "peers": [{"address": "198.19.1.0"}]}),
     "Leaf/x: spec.peers[0].asn: required field is missing"),
    ("leaf-peer-bad-ip", mk("Leaf", {"driver": "netconf", "peers": [{"address": "198.19.1", "asn": 1}]}),
     "Leaf/x: spec.peers[0].address: '198.19.1'"),
    ("leaf-peer-unknown", mk("Leaf", {"driver": "netconf", "peers": [{"address": "1.1.1.1", "asn": 1, "as": 2}]}),
     "Leaf/x: spec.peers[0]: unknown field 'as'"),
    ("leaf-router-id-v6", mk("Leaf", {"driver": "netconf", "routerId": "fd00::1"}), "Leaf/x: spec.routerId: 'fd00::1'"),
    ("leaf-netns-bad", mk("Leaf", {"driver": "netconf", "managementNamespace": "a/b"}),
     "Leaf/x: spec.managementNamespace: 'a/b' must be a network namespace name"),
    ("leaf-peers-vtep", mk("Leaf", {"driver": "vtep", "peers": []}),
     "Leaf/x: spec.peers: [] only applies to driver netconf"),
    ("leaf-unix-netconf", mk("Leaf", {"driver": "netconf", "managementAddress": "unix:/run/x.sock"}),
     "Leaf/x: spec.managementAddress: '/run/x.sock' is not a valid port"),
    ("leaf-unix-relative", mk("Leaf", {"driver": "vtep", "managementAddress": "unix:run/x.sock"}),
     "Leaf/x: spec.managementAddress: 'unix:run/x.sock' is not a unix socket remote"),
    ("leaf-unix-dotdot", mk("Leaf", {"driver": "vtep", "managementAddress": "unix:/run/../etc/x"}),
     "Leaf/x: spec.managementAddress: 'unix:/run/../etc/x' is not a unix socket remote"),
    ("leaf-unix-space", mk("Leaf", {"driver": "vtep", "managementAddress": "unix:/run/a b"}),
     "Leaf/x: spec.managementAddress: 'unix:/run/a b' is not a unix socket remote"),
    ("leaf-ports-dup", mk("Leaf", {"ports": ["swp1", "swp1"]}),
     "Leaf/x: spec.ports[1]: 'swp1' is a duplicate"),
]


@pytest.mark.parametrize("doc, fragments", [
    pytest.param(row[1], row[2:], id=row[0]) for row in INVALID])
def test_invalid(doc, fragments):
    check_invalid(doc, *fragments)


def test_pod_input_is_not_mutated():
    doc = pod(annotations={IP: "FD00::1"})
    validate(doc)
    assert doc["metadata"]["annotations"][IP] == "FD00::1"
