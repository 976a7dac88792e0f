#!/usr/bin/env python3
"""Minimal WebSocket client for the integration tests (stdlib only): sends frames to
kd-autoscaler's stats endpoint and checks that a ping is answered with a pong.

  kd_ws.py HOST PORT text  '<json>'      send one text frame
  kd_ws.py HOST PORT poke  NS REVISION   send Knative's binary WireStatMessages poke
                                         (average_concurrent_requests 1, request_count 1)
  kd_ws.py HOST PORT ping                ping, exit 0 iff a pong with the same payload arrives
Exit 1 on any failure (message on stderr). Every socket operation has a 5 s timeout.
With $KD_CHAN_TOKEN set, the upgrade carries it as a bearer token (kd-autoscaler --chan-token)."""
import base64
import os
import socket
import struct
import sys


def connect(host, port):
    s = socket.create_connection((host, int(port)), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    token = os.environ.get("KD_CHAN_TOKEN", "")
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    s.sendall((f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n{auth}\r\n").encode())
    resp = b""
    while b"\r\n\r\n" not in resp:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("connection closed during the upgrade")
        resp += chunk
    status = resp.split(b"\r\n", 1)[0]
    if b" 101" not in status:
        raise RuntimeError(f"upgrade refused: {status!r}")
    return s


def frame(opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    hdr = bytes([0x80 | opcode])
    if n < 126:
        hdr += bytes([0x80 | n])
    elif n < 65536:
        hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(s):
    def need(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                raise RuntimeError("connection closed")
            b += c
        return b
    h = need(2)
    n = h[1] & 0x7F
    if n == 126:
        n = struct.unpack(">H", need(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", need(8))[0]
    return h[0] & 0x0F, need(n)


def pb_str(field, s):
    b = s.encode()
    return bytes([field << 3 | 2, len(b)]) + b


def poke(ns, rev):
    one = struct.pack("<d", 1.0)
    stat = pb_str(1, "activator-it") + b"\x11" + one + b"\x21" + one
    msg = pb_str(1, ns) + pb_str(2, rev) + bytes([0x1A, len(stat)]) + stat
    return bytes([0x0A, len(msg)]) + msg


def main():
    host, port, cmd = sys.argv[1], sys.argv[2], sys.argv[3]
    s = connect(host, port)
    if cmd == "text":
        s.sendall(frame(1, sys.argv[4].encode()))
    elif cmd == "poke":
        s.sendall(frame(2, poke(sys.argv[4], sys.argv[5])))
    elif cmd == "ping":
        s.sendall(frame(9, b"kd-it"))
        op, payload = read_frame(s)
        if op != 0xA or payload != b"kd-it":
            raise RuntimeError(f"expected pong 'kd-it', got opcode {op} {payload!r}")
    else:
        raise RuntimeError(f"unknown command {cmd}")
    s.sendall(frame(8, struct.pack(">H", 1000)))
    try:
        read_frame(s)  # the server's close (also flushes what we sent)
    except (RuntimeError, OSError):
        pass
    s.close()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - any failure is a test failure
        print(f"kd_ws.py: {e}", file=sys.stderr)
        sys.exit(1)
