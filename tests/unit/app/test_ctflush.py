"""app/ctflush.py against the real ``ovs-ofctl ct-flush``: a tiny OpenFlow 1.3 "switch" on
loopback records what ovs-ofctl sends, and our bytes must be the same message."""
from __future__ import annotations

import socket
import struct
import subprocess
import threading

import pytest

from vpcnet.app.ctflush import ct_flush


def _ofctl_message(*args: str) -> bytes:
    """The experimenter message ``ovs-ofctl -O OpenFlow13 ct-flush <switch> ARGS`` sends."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    got: list[bytes] = []

    def switch():
        conn, _ = srv.accept()
        conn.settimeout(5)
        conn.sendall(struct.pack("!BBHI", 4, 0, 8, 1))          # hello
        buf = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while len(buf) >= 8:
                    _, kind, length, xid = struct.unpack("!BBHI", buf[:8])
                    if len(buf) < length:
                        break
                    msg, buf = buf[:length], buf[length:]
                    if kind == 4:
                        got.append(msg)
                    elif kind == 20:                                  # barrier: answer, done
                        conn.sendall(struct.pack("!BBHI", 4, 21, 8, xid))
    t = threading.Thread(target=switch, daemon=True)
    t.start()
    port = srv.getsockname()[1]
    proc = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "ct-flush", f"tcp:127.0.0.1:{port}", *args],
                          capture_output=True, text=True, timeout=20)
    t.join(10)
    srv.close()
    assert proc.returncode == 0, proc.stderr
    assert len(got) == 1, got
    return got[0]


def _without_xid(msg: bytes) -> bytes:
    return msg[:4] + msg[8:]


@pytest.mark.parametrize("zone,proto,dst,port,src,args", [
    (5, "UDP", "10.96.0.10", 53, "10.10.0.12", ("zone=5", "ct_nw_proto=17,ct_nw_dst=10.96.0.10,ct_tp_dst=53",
                                                "ct_nw_src=10.10.0.12")),
    (7, "UDP", "fd00::a", 53, "fd00::c", ("zone=7", "ct_nw_proto=17,ct_ipv6_dst=fd00::a,ct_tp_dst=53",
                                          "ct_ipv6_src=fd00::c")),
    (32769, "TCP", "192.0.2.1", 30080, None, ("zone=32769", "ct_nw_proto=6,ct_nw_dst=192.0.2.1,ct_tp_dst=30080")),
])
def test_ct_flush_is_the_message_ovs_ofctl_sends(zone, proto, dst, port, src, args):
    ours = ct_flush(zone, proto, orig_dst=dst, orig_dst_port=port, reply_src=src)
    assert _without_xid(ours) == _without_xid(_ofctl_message(*args))


def test_ct_flush_refuses_a_bad_zone():
    with pytest.raises(ValueError, match="zone"):
        ct_flush(70000, "UDP")
