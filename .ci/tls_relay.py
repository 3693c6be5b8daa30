#!/usr/bin/env python3
"""Plain-to-TLS relay for running the conformance suite through a TLS listener: accepts plain
TCP connections on --listen, opens a TLS connection to --target for each (no certificate
check: loopback and a test certificate), and copies bytes both ways until either side closes.
Python 3.11 standard library only; loopback only."""
import argparse
import select
import socket
import ssl
import threading


def relay(client: socket.socket, target: tuple[str, int], ctx: ssl.SSLContext) -> None:
    try:
        tls = ctx.wrap_socket(socket.create_connection(target, timeout=10), server_hostname="localhost")
    except OSError:
        client.close()
        return
    tls.settimeout(30)
    client.settimeout(30)
    try:
        while True:
            # bytes rustls already decrypted wait in the SSL object, not in the socket
            ready = [tls] if tls.pending() else select.select([client, tls], [], [], 60)[0]
            if not ready:
                return
            for s in ready:
                other = tls if s is client else client
                if s is tls:
                    # a record with no data (a TLS 1.3 session ticket) must not block the
                    # relay in recv while the client's request waits unread
                    tls.setblocking(False)
                try:
                    data = s.recv(65536)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    continue
                except OSError:
                    data = b""
                finally:
                    tls.settimeout(30)
                if not data:
                    return
                try:
                    other.sendall(data)
                except OSError:
                    return
    finally:
        for s in (client, tls):
            try:
                s.close()
            except OSError:
                pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--listen", required=True, help="host:port to accept plain connections on")
    ap.add_argument("--target", required=True, help="host:port of the TLS listener")
    args = ap.parse_args()
    lh, lp = args.listen.rsplit(":", 1)
    th, tp = args.target.rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((lh, int(lp)))
    srv.listen(128)
    print("relay ready", flush=True)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=relay, args=(c, (th, int(tp)), ctx), daemon=True).start()


if __name__ == "__main__":
    main()
