"""A real Prometheus (sim.prometheus.PrivatePrometheus) scrapes a prometheus_client exporter
running in this test process; everything is read back through Prometheus' HTTP API."""
from __future__ import annotations

import os

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from vpcnet.sim.prometheus import PrivatePrometheus


@pytest.fixture
def exporter():
    registry = CollectorRegistry()
    counter = Counter("vpcnet_fixture_test", "PrivatePrometheus fixture test counter", registry=registry)
    counter.inc(3)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_private_prometheus_scrapes_exporter(tmp_path, exporter):
    with PrivatePrometheus(tmp_path / "prom", [exporter], scrape_interval="1s") as prom:
        pid = prom.pid
        assert prom.url.startswith("http://127.0.0.1:")

        result = prom.wait_for('vpcnet_fixture_test_total{job="vpcnet"}', timeout=10)
        assert len(result) == 1
        assert result[0]["metric"]["instance"] == exporter
        assert float(result[0]["value"][1]) == 3.0

        up = prom.wait_for('up{job="vpcnet"}', lambda r: r[0]["value"][1] == "1", timeout=10)
        assert up[0]["metric"]["instance"] == exporter

        targets = prom.targets()
        assert [(t["labels"]["job"], t["labels"]["instance"], t["health"]) for t in targets] \
            == [("vpcnet", exporter, "up")]

        assert prom.query("vpcnet_metric_that_does_not_exist_total") == []

    assert prom.proc is None
    with pytest.raises(ProcessLookupError):  # our prometheus is gone (reaped, not a zombie)
        os.kill(pid, 0)
