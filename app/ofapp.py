"""The os-ken shim: OpenFlow events in, FlowEngine calls out. Nothing else lives here.

os-ken closes a switch connection when an app handler raises, so every handler catches
everything, logs it and counts it. Handlers never block: replies are handed to the waiting
DatapathLink, and all switch work happens on the flow engine's threads.

Start with ``run(engine, listen, tls)``: it configures os-ken's OpenFlow listener and calls
``AppManager.run_apps`` (os-ken >= 4 has no osken-manager) in a thread of its own.
"""
from __future__ import annotations

import functools
import importlib
import logging
import os
import socket
import threading

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3

NXPIF_NXT_PACKET_IN2 = 2   # packet-in format carrying the controller action's userdata (os-ken lacks the name)

LOG = logging.getLogger(__name__)
_ENGINE = None   # the FlowEngine this process serves (os-ken builds apps itself, without arguments)


def _guarded(where: str):
    def wrap(handler):
        @functools.wraps(handler)
        def run(self, ev):
            try:
                handler(self, ev)
            except Exception:
                dpid = getattr(getattr(getattr(ev, "msg", None), "datapath", None), "id", None)
                LOG.exception("%s handler failed (datapath %s)", where, f"{dpid:016x}" if dpid else "?")
                if _ENGINE is not None:
                    _ENGINE.metrics.errors.labels(where=where).inc()
        return run
    return wrap


class BrIntApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    @property
    def engine(self):
        return _ENGINE

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @_guarded("features")
    def switch_features(self, ev):
        dp = ev.msg.datapath
        # the deny log's packet-ins carry userdata (rule, VPC, direction): NXT_PACKET_IN2 only
        dp.send_msg(dp.ofproto_parser.NXTSetPacketInFormatMsg(dp, NXPIF_NXT_PACKET_IN2))
        self.engine.datapath_up(dp)

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    @_guarded("disconnect")
    def state_change(self, ev):
        if ev.datapath is not None and ev.datapath.id is not None:
            self.engine.datapath_down(ev.datapath)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @_guarded("port_status")
    def port_status(self, ev):
        msg = ev.msg
        ofp = msg.datapath.ofproto
        name = msg.desc.name.decode() if isinstance(msg.desc.name, bytes) else msg.desc.name
        self.engine.port_changed(msg.datapath, name, msg.desc.port_no, msg.reason == ofp.OFPPR_DELETE)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @_guarded("error")
    def error(self, ev):
        link = self.engine.link_of(ev.msg.datapath)
        if link is None or not link.on_error(ev.msg):
            LOG.error("datapath %s sent an error for a request nobody waits for: type=%s code=%s",
                      ev.msg.datapath.id, ev.msg.type, ev.msg.code)
            self.engine.metrics.errors.labels(where="switch_error").inc()

    @set_ev_cls(ofp_event.EventNXTPacketIn2, MAIN_DISPATCHER)
    @_guarded("packet_in")
    def packet_in(self, ev):
        msg = ev.msg
        self.engine.packet_in(msg.datapath, msg.data or b"", msg.userdata or b"", msg.metadata or b"")

    def _reply(self, ev, multipart: bool):
        link = self.engine.link_of(ev.msg.datapath)
        if link is not None:
            more = multipart and bool(ev.msg.flags & ev.msg.datapath.ofproto.OFPMPF_REPLY_MORE)
            link.on_reply(ev.msg, more)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    @_guarded("barrier")
    def barrier_reply(self, ev):
        self._reply(ev, False)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    @_guarded("flow_stats")
    def flow_stats(self, ev):
        self._reply(ev, True)

    @set_ev_cls(ofp_event.EventOFPGroupDescStatsReply, MAIN_DISPATCHER)
    @_guarded("group_desc")
    def group_desc(self, ev):
        self._reply(ev, True)

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    @_guarded("port_desc")
    def port_desc(self, ev):
        self._reply(ev, True)


def configure(listen: str, cert: str | None = None, key: str | None = None, ca: str | None = None) -> None:
    """os-ken's (global, parse-once) configuration: where the OpenFlow listener binds.

    ``HOST:PORT`` for TCP (or TLS with cert+key), or ``unix:PATH`` for a co-located controller
    (bridges use ``unix:PATH`` as their controller target; it also crosses network namespaces)."""
    from os_ken import cfg
    importlib.import_module("os_ken.controller.controller")   # registers the ofp-* options
    if listen.startswith("unix:"):
        path = listen[len("unix:"):]
        if os.path.exists(path):
            os.unlink(path)   # left by a controller that was killed
        host, port = path, "6653"   # os-ken binds a unix socket when the host is a path
        _accept_unix_sockets()
    else:
        host, _, port = listen.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
    args = ["--ofp-listen-host", host]
    if cert and key:
        args += ["--ofp-ssl-listen-port", port, "--ctl-cert", cert, "--ctl-privkey", key]
        if ca:
            args += ["--ca-certs", ca]
    else:
        args += ["--ofp-tcp-listen-port", port]
    cfg.CONF(args=args, project="os_ken")


class _UnixStream:
    """An accepted unix-socket connection that ignores TCP-level socket options. (os-ken 4.2.2
    listens on a unix socket when asked, then sets TCP_NODELAY on each connection, which fails
    with EOPNOTSUPP and drops the switch.)"""

    def __init__(self, sock):
        self._sock = sock

    def setsockopt(self, level, option, value):
        if level == socket.IPPROTO_TCP:
            return None
        return self._sock.setsockopt(level, option, value)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _accept_unix_sockets() -> None:
    from os_ken.controller import controller
    factory = controller.datapath_connection_factory
    if getattr(factory, "vpcnet_unix", False):
        return

    def wrapped(sock, address):
        if sock.family == socket.AF_UNIX:
            sock = _UnixStream(sock)
        return factory(sock, address or "unix")

    wrapped.vpcnet_unix = True
    controller.datapath_connection_factory = wrapped


def run(engine, listen: str, cert: str | None = None, key: str | None = None, ca: str | None = None):
    """Serve OpenFlow for ``engine`` on ``listen`` (HOST:PORT) from a background thread."""
    global _ENGINE
    _ENGINE = engine
    configure(listen, cert, key, ca)
    thread = threading.Thread(target=app_manager.AppManager.run_apps, args=([__name__],),
                              name="os-ken", daemon=True)
    thread.start()
    return thread
