"""Prometheus metrics of the controller (prometheus-client, one private registry per controller).

Flow and group counts come from our own cache of what each switch holds (no switch round trip per
scrape); per-table packet/byte counters come from the last flow dump of each bridge (taken by
the periodic audit), exposed through a collector so a scrape reads one consistent snapshot.
"""
from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from vpcnet.app.policy_audit import RuleCounters


class _Snapshots:
    """Collector for values the reconcilers publish as whole snapshots per node."""

    def __init__(self):
        self.lock = threading.Lock()
        self.flows: dict[str, dict[tuple[str, str], int]] = {}       # node -> (table, feature) -> n
        self.groups: dict[str, int] = {}                              # node -> groups vpcnet holds there
        self.tables: dict[str, dict[str, tuple[int, int]]] = {}     # node -> table -> (packets, bytes) so far

    def describe(self):
        return []

    def collect(self):
        flows = GaugeMetricFamily("vpcnet_flows", "Flows vpcnet holds on a bridge, by table and feature",
                                  labels=["node", "table", "feature"])
        packets = CounterMetricFamily("vpcnet_table_packets", "Packets matched by vpcnet flows, per table "
                                      "(accumulated by each audit's flow dump; a deleted flow keeps what it "
                                      "counted)", labels=["node", "table"])
        octets = CounterMetricFamily("vpcnet_table_bytes", "Bytes matched by vpcnet flows, per table "
                                     "(accumulated like vpcnet_table_packets)", labels=["node", "table"])
        groups = GaugeMetricFamily("vpcnet_groups", "Groups vpcnet holds on a bridge", labels=["node"])
        with self.lock:
            for node, counts in sorted(self.flows.items()):
                for (table, feature), n in sorted(counts.items()):
                    flows.add_metric([node, table, feature], n)
            for node, tables in sorted(self.tables.items()):
                for table, (p, b) in sorted(tables.items()):
                    packets.add_metric([node, table], p)
                    octets.add_metric([node, table], b)
            for node, n in sorted(self.groups.items()):
                groups.add_metric([node], n)
        return [flows, packets, octets, groups]


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.snapshots = _Snapshots()
        r.register(self.snapshots)
        self.rule_counters = RuleCounters()
        r.register(self.rule_counters)
        self.flow_mods = Counter("vpcnet_flow_mods", "Flow-mods sent to switches", ["node", "op"], registry=r)
        self.bundles = Counter("vpcnet_bundles", "Bundles committed", ["node"], registry=r)
        self.bundle_failures = Counter("vpcnet_bundle_failures", "Bundles a switch refused or that timed out",
                                       ["node"], registry=r)
        self.reconcile_seconds = Histogram(
            "vpcnet_reconcile_duration_seconds", "Time to bring one bridge to the desired flow set",
            ["node", "kind"], registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.drift = Counter("vpcnet_drift_repaired", "Flows (kind missing, altered, extra) and groups (kind "
                             "group) the audit found wrong on a switch and repaired",
                             ["node", "kind"], registry=r)
        self.datapaths = Gauge("vpcnet_datapaths_connected", "Bridges connected over OpenFlow",
                               ["known"], registry=r)
        self.errors = Counter("vpcnet_handler_errors", "Exceptions caught in controller handlers",
                              ["where"], registry=r)
        self.service_rejects = Counter("vpcnet_service_rejects", "Connections to a Service port without "
                                       "endpoints refused (TCP reset / port unreachable sent)", registry=r)
        self.problems = Gauge("vpcnet_intent_problems", "Objects left out of compilation because they "
                              "cannot be compiled", registry=r)
        self.fabric_syncs = Counter("vpcnet_fabric_syncs", "NETCONF syncs of a leaf, by result (applied, failed)",
                                    ["leaf", "result"], registry=r)
        self.fabric_drift = Counter("vpcnet_fabric_drift", "Differences found on a leaf's running configuration "
                                    "inside vpcnet's ranges by the periodic check", ["leaf"], registry=r)
        self.fabric_leaf_up = Gauge("vpcnet_fabric_leaf_up", "1 when the last NETCONF session to the leaf worked",
                                    ["leaf"], registry=r)
        self.datapaths.labels(known="true").set(0)
        self.datapaths.labels(known="false").set(0)

    def serve(self, listen: str):
        host, _, port = listen.rpartition(":")
        server, thread = start_http_server(int(port), addr=host or "0.0.0.0", registry=self.registry)
        return server
