"""NXT_CT_FLUSH (OVS >= 3.1): delete a switch's conntrack entries that match a tuple.

Used when a Service endpoint goes away: UDP has no end of connection, so a client that keeps its
socket would go on sending to the dead endpoint until conntrack expires the entry (kube-proxy
flushes these entries too). TCP needs nothing: established connections keep running by design
and new ones take the new buckets.

os-ken has no class for the message; its layout is OVS's (include/openflow/nicira-ext.h,
``struct nx_ct_flush`` and the NXT_CT_* TLVs), checked byte for byte against what
``ovs-ofctl ct-flush`` sends (tests/unit/app/test_ctflush.py):

    experimenter header (vendor 0x2320, subtype 32)
    u8 ip_proto, u8 family (0), 6 bytes zero
    TLV ORIG_TUPLE  (type 0): header, 4 zero bytes, nested TLVs each padded to 8 bytes
    TLV REPLY_TUPLE (type 1): the same
    TLV ZONE_ID     (type 2): u16 zone, 2 zero bytes
    nested: SRC (0) / DST (1) as 16 bytes (IPv4 mapped into IPv6), SRC_PORT (2) / DST_PORT (3) u16
"""
from __future__ import annotations

import struct

import netaddr

NX_VENDOR_ID = 0x00002320
NXT_CT_FLUSH = 32
OFPT_EXPERIMENTER = 4
OFP13_VERSION = 4
_ORIG, _REPLY, _ZONE = 0, 1, 2
_SRC, _DST, _SRC_PORT, _DST_PORT = 0, 1, 2, 3
IP_PROTOS = {"TCP": 6, "UDP": 17, "SCTP": 132}


def _tlv(kind: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return struct.pack("!HH", kind, n) + payload + bytes(-n % 8)


def _address(ip: str) -> bytes:
    addr = netaddr.IPAddress(ip)
    return (addr.ipv6(ipv4_compatible=False) if addr.version == 4 else addr).packed


def _tuple(kind: int, src: str | None, dst: str | None, src_port: int | None, dst_port: int | None) -> bytes:
    inner = b""
    if src is not None:
        inner += _tlv(_SRC, _address(src))
    if dst is not None:
        inner += _tlv(_DST, _address(dst))
    for k, port in ((_SRC_PORT, src_port), (_DST_PORT, dst_port)):
        if port is not None:
            inner += struct.pack("!HHH", k, 8, port) + bytes(2)
    return struct.pack("!HH4x", kind, 8 + len(inner)) + inner


def ct_flush(zone: int, protocol: str, *, orig_dst: str | None = None, orig_dst_port: int | None = None,
             reply_src: str | None = None, xid: int = 0) -> bytes:
    """The NXT_CT_FLUSH message deleting the entries of ``zone`` of ``protocol`` (TCP/UDP/SCTP)
    whose original direction goes to ``orig_dst``:``orig_dst_port`` and whose reply comes from
    ``reply_src`` (a DNATed connection's endpoint). A field left None matches anything."""
    if not 0 <= zone < 65536:
        raise ValueError(f"ct_flush: bad zone {zone}")
    body = struct.pack("!BB6x", IP_PROTOS[protocol], 0)
    if orig_dst is not None or orig_dst_port is not None:
        body += _tuple(_ORIG, None, orig_dst, None, orig_dst_port)
    if reply_src is not None:
        body += _tuple(_REPLY, reply_src, None, None, None)
    body += struct.pack("!HHH2x", _ZONE, 8, zone)
    msg = struct.pack("!II", NX_VENDOR_ID, NXT_CT_FLUSH) + body
    return struct.pack("!BBHI", OFP13_VERSION, OFPT_EXPERIMENTER, 8 + len(msg), xid) + msg
