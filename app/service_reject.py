"""Refusing connections to a Service port without endpoints, at once (never a client timeout).

OVS cannot build a TCP reset or an ICMP error itself, so (as OVN's and Antrea's controllers do)
the first packet of such a connection comes to the controller: flows/service.py sends it with
``controller(userdata=REJECT_USERDATA, meter_id=REJECT_METER_ID)`` (a datapath meter bounds the
rate), and ``reply_for`` builds the answer the Service address gives: a TCP RST+ACK for a SYN, an
ICMP / ICMPv6 port unreachable for anything else. The controller sends it back out of the port
the packet came in on (``in_port_of`` reads it from the NXT_PACKET_IN2 metadata).
"""
from __future__ import annotations

import struct

from vpcnet.flows.service import REJECT_USERDATA

ETH_IP, ETH_IP6 = 0x0800, 0x86DD
OXM_IN_PORT = (0x8000 << 16) | (0 << 9) | 4      # OXM_OF_IN_PORT header: class, field 0, no mask, 4 bytes

__all__ = ["REJECT_USERDATA", "reply_for", "in_port_of"]


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def in_port_of(metadata: bytes | None) -> int | None:
    """The in_port of an NXT_PACKET_IN2's metadata (OXM TLVs), or None."""
    buf = metadata or b""
    at = 0
    while at + 4 <= len(buf):
        header = struct.unpack_from("!I", buf, at)[0]
        length = header & 0xFF
        if header == OXM_IN_PORT and at + 8 <= len(buf):
            return struct.unpack_from("!I", buf, at + 4)[0]
        at += 4 + length
    return None


def reply_for(frame: bytes) -> bytes | None:
    """The refusal of ``frame`` (Ethernet, untagged, IPv4 or IPv6), or None if it needs none."""
    if len(frame) < 14:
        return None
    dst_mac, src_mac, eth = frame[:6], frame[6:12], struct.unpack_from("!H", frame, 12)[0]
    ip = frame[14:]
    if eth == ETH_IP and len(ip) >= 20:
        ihl = (ip[0] & 0x0F) * 4
        proto, src, dst = ip[9], ip[12:16], ip[16:20]
        l4 = ip[ihl:]
        if proto == 6 and len(l4) >= 20:
            body = _tcp_reset(l4, src, dst, 6, lambda seg: struct.pack("!4s4sBBH", dst, src, 0, 6, len(seg)))
            return dst_mac_swap(src_mac, dst_mac, eth, _ip4(dst, src, 6, body)) if body else None
        if proto == 1:
            return None                                   # never answer ICMP with ICMP
        quote = ip[:ihl + 8]
        icmp = struct.pack("!BBHI", 3, 3, 0, 0) + quote
        icmp = icmp[:2] + struct.pack("!H", _csum(icmp)) + icmp[4:]
        return dst_mac_swap(src_mac, dst_mac, eth, _ip4(dst, src, 1, icmp))
    if eth == ETH_IP6 and len(ip) >= 40:
        proto, src, dst = ip[6], ip[8:24], ip[24:40]
        l4 = ip[40:]

        def pseudo(seg, nh):
            return struct.pack("!16s16sI3xB", dst, src, len(seg), nh)
        if proto == 6 and len(l4) >= 20:
            body = _tcp_reset(l4, src, dst, 6, lambda seg: pseudo(seg, 6))
            return dst_mac_swap(src_mac, dst_mac, eth, _ip6(dst, src, 6, body)) if body else None
        if proto == 58:
            return None
        icmp = struct.pack("!BBHI", 1, 4, 0, 0) + ip[:1232 - 48]
        icmp = icmp[:2] + struct.pack("!H", _csum(pseudo(icmp, 58) + icmp)) + icmp[4:]
        return dst_mac_swap(src_mac, dst_mac, eth, _ip6(dst, src, 58, icmp))
    return None


def dst_mac_swap(client_mac: bytes, service_mac: bytes, eth: int, payload: bytes) -> bytes:
    """The Ethernet frame back to the client, from the MAC it sent to (its gateway)."""
    return client_mac + service_mac + struct.pack("!H", eth) + payload


def _tcp_reset(seg: bytes, src: bytes, dst: bytes, proto: int, pseudo) -> bytes | None:
    sport, dport, seq, ack, off_flags = struct.unpack_from("!HHIIH", seg, 0)
    flags = off_flags & 0x3F
    if flags & 0x04:                                     # never answer a reset
        return None
    payload_len = max(0, len(seg) - ((off_flags >> 12) * 4))
    if flags & 0x10:                                     # it acked something: RST with its ack as seq
        out = struct.pack("!HHIIHHHH", dport, sport, ack, 0, (5 << 12) | 0x04, 0, 0, 0)
    else:
        syn_fin = (1 if flags & 0x02 else 0) + (1 if flags & 0x01 else 0)
        out = struct.pack("!HHIIHHHH", dport, sport, 0, (seq + payload_len + syn_fin) & 0xFFFFFFFF,
                          (5 << 12) | 0x14, 0, 0, 0)
    return out[:16] + struct.pack("!H", _csum(pseudo(out) + out)) + out[18:]


def _ip4(src: bytes, dst: bytes, proto: int, body: bytes) -> bytes:
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0x4000, 64, proto, 0, src, dst)
    return head[:10] + struct.pack("!H", _csum(head)) + head[12:] + body


def _ip6(src: bytes, dst: bytes, nh: int, body: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 0x60000000, len(body), nh, 64, src, dst) + body
