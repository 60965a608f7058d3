"""app/ofapp.py's handler guard: an exception inside an os-ken event handler is logged (with the
datapath) and counted, and never leaves the handler (os-ken would otherwise drop the switch)."""
from __future__ import annotations

import logging
from types import SimpleNamespace

from vpcnet.app import ofapp
from vpcnet.app.metrics import Metrics


class App:
    calls = 0

    @ofapp._guarded("packet_in")
    def handler(self, ev):
        App.calls += 1
        raise ValueError("a malformed message")


def test_a_failing_handler_returns_logs_the_datapath_and_counts(monkeypatch, caplog):
    # the guard only needs the engine's metrics: a stand-in engine carrying real Metrics, and a
    # handler that fails on purpose (the real handlers have no input known to make them raise)
    metrics = Metrics()
    monkeypatch.setattr(ofapp, "_ENGINE", SimpleNamespace(metrics=metrics))
    ev = SimpleNamespace(msg=SimpleNamespace(datapath=SimpleNamespace(id=0x20001)))
    with caplog.at_level(logging.ERROR, logger="vpcnet.app.ofapp"):
        assert App().handler(ev) is None          # nothing raised to os-ken's event loop
        App().handler(ev)
    assert App.calls == 2
    assert metrics.registry.get_sample_value("vpcnet_handler_errors_total", {"where": "packet_in"}) == 2
    assert "packet_in handler failed (datapath 0000000000020001)" in caplog.text
    assert "a malformed message" in caplog.text   # with the traceback
