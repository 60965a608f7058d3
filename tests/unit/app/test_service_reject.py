"""The refusals a Service without endpoints sends (app/service_reject.py), byte by byte; the real
client's view (connection refused at once, TCP and UDP) is tests/functional/test_services_netns.py."""
from __future__ import annotations

import socket
import struct

from vpcnet.app.service_reject import _csum, in_port_of, reply_for

CLIENT_MAC, GW_MAC = bytes.fromhex("0e7670000101"), bytes.fromhex("0e7670ff0003")


def ip4(proto: int, body: bytes, src="10.1.0.2", dst="10.96.0.10") -> bytes:
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, 0, 64, proto, 0, socket.inet_aton(src),
                       socket.inet_aton(dst))
    return GW_MAC + CLIENT_MAC + b"\x08\x00" + head + body


def test_a_syn_gets_a_reset_from_the_service_address():
    syn = struct.pack("!HHIIHHHH", 40000, 80, 1000, 0, (5 << 12) | 0x02, 65535, 0, 0)
    out = reply_for(ip4(6, syn))
    assert out[:6] == CLIENT_MAC and out[6:12] == GW_MAC
    ip = out[14:34]
    assert socket.inet_ntoa(ip[12:16]) == "10.96.0.10" and socket.inet_ntoa(ip[16:20]) == "10.1.0.2"
    assert _csum(ip) == 0, "IPv4 header checksum"
    tcp = out[34:]
    sport, dport, seq, ack, flags = struct.unpack_from("!HHIIH", tcp)
    assert (sport, dport, seq, ack, flags & 0x3F) == (80, 40000, 0, 1001, 0x14)
    pseudo = ip[12:16] + ip[16:20] + struct.pack("!BBH", 0, 6, len(tcp))
    assert _csum(pseudo + tcp) == 0, "TCP checksum"
    assert reply_for(ip4(6, struct.pack("!HHIIHHHH", 40000, 80, 1, 0, (5 << 12) | 0x04, 0, 0, 0))) is None


def test_udp_gets_a_port_unreachable_quoting_it():
    udp = struct.pack("!HHHH", 5000, 53, 12, 0) + b"ping"
    frame = ip4(17, udp)
    out = reply_for(frame)
    icmp = out[34:]
    assert icmp[:2] == b"\x03\x03" and _csum(icmp) == 0
    assert icmp[8:] == frame[14:14 + 28], "the original IP header + 8 bytes"
    assert reply_for(ip4(1, b"\x08\x00\x00\x00\x00\x00\x00\x00")) is None, "never ICMP for ICMP"


def test_the_in_port_comes_from_the_packet_in_metadata():
    tlvs = struct.pack("!II", (0x8000 << 16) | (3 << 9) | 4, 0xABCD) + struct.pack("!II", (0x8000 << 16) | 4, 7)
    assert in_port_of(tlvs) == 7 and in_port_of(b"") is None
