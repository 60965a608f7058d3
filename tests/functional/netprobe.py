"""Small traffic tool run inside a pod's network namespace (stdlib only, ``python3 netprobe.py``).

  serve --tcp 5432,5433 --udp 5353        echo servers on 0.0.0.0 (TCP: one line back per line)
        [--whoami NAME [--peer]]          (TCP: answer each connection with NAME -- and the
                                          client's address with --peer -- and close; UDP:
                                          answer each datagram with NAME)
  whoami IP PORT --count N [--udp [--keep --every S]]
                                          connect N times (or send N datagrams, each from a new
                                          port; --keep: all from one socket, every S seconds,
                                          "<unix time> <answer>"), print what each server answered
  tcp IP PORT [--timeout S]               connect, send a line, expect it back: exit 0 / 1
  udp IP PORT [--timeout S]               send a datagram, expect it back: exit 0 / 1
  stream IP PORT --every S --for S        one TCP connection, a line every S seconds; prints one
                                          line per echo: "<unix time> ok"; ends at --for
  frame IFACE HEX                         send one raw Ethernet frame (AF_PACKET)
  listen-udp PORT --for S                 print "<src ip> <src port> <payload>" per datagram
                                          (bound to 0.0.0.0, broadcast included)

Prints what happened on stdout; refusals and timeouts are exit 1, never a traceback.
"""
from __future__ import annotations

import argparse
import select
import socket
import sys
import threading
import time


def _echo_tcp(conn: socket.socket) -> None:
    with conn:
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                return
            if not data:
                return
            conn.sendall(data)


def _tell(conn: socket.socket, name: str) -> None:
    with conn:
        conn.sendall(name.encode() + b"\n")


def _serve_tcp(port: int, whoami: str = "", peer: bool = False) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    while True:
        conn, addr = s.accept()
        if whoami:
            _tell(conn, f"{whoami}@{addr[0]}" if peer else whoami)
        else:
            threading.Thread(target=_echo_tcp, args=(conn,), daemon=True).start()


def _serve_udp(port: int, whoami: str = "") -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        data, peer = s.recvfrom(4096)
        s.sendto(whoami.encode() if whoami else data, peer)


def serve(args) -> int:
    for p in filter(None, args.tcp.split(",")):
        threading.Thread(target=_serve_tcp, args=(int(p), args.whoami, args.peer), daemon=True).start()
    for p in filter(None, args.udp.split(",")):
        threading.Thread(target=_serve_udp, args=(int(p), args.whoami), daemon=True).start()
    print("serving", flush=True)
    while True:
        time.sleep(3600)


def tcp(args) -> int:
    try:
        with socket.create_connection((args.ip, args.port), timeout=args.timeout) as s:
            s.sendall(b"ping\n")
            data = s.recv(64)
    except OSError as exc:
        print(f"refused: {exc}")
        return 1
    print("ok" if data == b"ping\n" else f"bad echo {data!r}")
    return 0 if data == b"ping\n" else 1


def udp(args) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(args.timeout)
    try:
        s.connect((args.ip, args.port))      # connected: an ICMP port unreachable comes back as an error
        s.send(b"ping")
        data = s.recv(64)
    except OSError as exc:
        print(f"refused: {exc}")
        return 1
    print("ok" if data == b"ping" else f"bad echo {data!r}")
    return 0 if data == b"ping" else 1


def stream(args) -> int:
    try:
        s = socket.create_connection((args.ip, args.port), timeout=2)
    except OSError as exc:
        print(f"refused: {exc}", flush=True)
        return 1
    s.setblocking(False)
    print(f"{time.time():.3f} connected", flush=True)
    end = time.monotonic() + args.duration
    buf = b""
    while time.monotonic() < end:
        try:
            s.send(b"x\n")
        except BlockingIOError:
            pass
        except OSError as exc:
            print(f"{time.time():.3f} send failed: {exc}", flush=True)
            return 0
        r, _, _ = select.select([s], [], [], args.every)
        if r:
            try:
                data = s.recv(4096)
            except OSError as exc:
                print(f"{time.time():.3f} recv failed: {exc}", flush=True)
                return 0
            if not data:
                print(f"{time.time():.3f} closed", flush=True)
                return 0
            buf += data
            while b"\n" in buf:
                _, buf = buf.split(b"\n", 1)
                print(f"{time.time():.3f} ok", flush=True)
        time.sleep(max(0.0, args.every - 0.01))
    return 0


def whoami(args) -> int:
    if args.udp and args.keep:   # one socket for all: one conntrack entry, a datagram every --every s
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(args.timeout)
            for _ in range(args.count):
                s.sendto(b"who?", (args.ip, args.port))
                try:
                    print(f"{time.time():.3f} {s.recv(4096).decode() or '-'}", flush=True)
                except OSError as exc:
                    print(f"{time.time():.3f} lost({exc.__class__.__name__})", flush=True)
                time.sleep(args.every)
        return 0
    if args.udp:     # one socket (source port) per datagram: each is a new conntrack entry
        for _ in range(args.count):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(args.timeout)
                s.sendto(b"who?", (args.ip, args.port))
                try:
                    print(s.recv(4096).decode() or "-", flush=True)
                except OSError as exc:
                    print(f"lost({exc.__class__.__name__})", flush=True)
        return 0
    for i in range(args.count):
        try:
            with socket.create_connection((args.ip, args.port), timeout=args.timeout) as s:
                print(s.makefile().readline().strip() or "-", flush=True)
        except OSError as exc:
            print(f"refused({exc.__class__.__name__})", flush=True)
    return 0


def frame(args) -> int:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((args.iface, 0))
    s.send(bytes.fromhex(args.hex))
    print("sent")
    return 0


def listen_udp(args) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.bind(("0.0.0.0", args.port))
    print("listening", flush=True)
    end = time.monotonic() + args.duration
    while (left := end - time.monotonic()) > 0:
        r, _, _ = select.select([s], [], [], left)
        if r:
            data, (ip, port) = s.recvfrom(4096)
            print(f"{ip} {port} {data.hex()}", flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="netprobe")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--tcp", default="")
    p.add_argument("--udp", default="")
    p.add_argument("--whoami", default="")
    p.add_argument("--peer", action="store_true")
    for name in ("tcp", "udp"):
        p = sub.add_parser(name)
        p.add_argument("ip")
        p.add_argument("port", type=int)
        p.add_argument("--timeout", type=float, default=1.0)
    p = sub.add_parser("stream")
    p.add_argument("ip")
    p.add_argument("port", type=int)
    p.add_argument("--every", type=float, default=0.1)
    p.add_argument("--for", dest="duration", type=float, default=5.0)
    p = sub.add_parser("whoami")
    p.add_argument("ip")
    p.add_argument("port", type=int)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--udp", action="store_true")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--every", type=float, default=0.2)
    p = sub.add_parser("frame")
    p.add_argument("iface")
    p.add_argument("hex")
    p = sub.add_parser("listen-udp")
    p.add_argument("port", type=int)
    p.add_argument("--for", dest="duration", type=float, default=3.0)
    args = ap.parse_args(argv)
    return {"serve": serve, "tcp": tcp, "udp": udp, "stream": stream, "frame": frame, "whoami": whoami,
            "listen-udp": listen_udp}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
