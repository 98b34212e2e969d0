#!/usr/bin/env python3
"""tls_tool.py: TLS clients for test_tls.sh that curl and openssl cannot be: a handshake fed to
the server one byte per TCP segment, a PROXY v2 header before the ClientHello, a flood of
handshakes that never finish beside an established connection, and raw bad records. Python's
ssl module (OpenSSL) is an independent TLS stack from the server's BoringSSL.

Usage: tls_tool.py COMMAND HOST PORT [ARGS]  (prints one result line; exit 0 unless it failed)
  bytewise CAFILE            handshake one byte per segment, then GET /healthz: "200"
  proxy CAFILE SRC REQFILE   PROXY v2 (source SRC:4242) then TLS, send REQFILE: the status line
  flood CAFILE N             keep-alive TLS connection, N stalled handshakes, then: the status of
                             a request on the kept connection, and whether a new handshake was
                             refused ("kept=200 new=refused")
  raw HEXBYTES [eof]         send the bytes (then half-close with eof), wait up to 5 s for the
                             server to close: "closed" or "open"
"""
import socket
import ssl
import struct
import sys
import time


def context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False  # the test's server name is not the address
    return ctx


def http_get(sock_like, path="/healthz"):
    sock_like.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock_like.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


def bytewise(host, port, cafile):
    s = socket.create_connection((host, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = context(cafile).wrap_bio(inc, out, server_side=False)
    for _ in range(200):  # bounded: a handshake is a few round trips
        try:
            obj.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        pending = out.read()
        for i in range(len(pending)):
            s.send(pending[i:i + 1])
            time.sleep(0.001)
        if done:
            break
        data = s.recv(65536)
        if not data:
            return "closed during the handshake"
        inc.write(data)
    obj.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    s.sendall(out.read())
    reply = b""
    while b"\r\n\r\n" not in reply:
        data = s.recv(65536)
        if not data:
            break
        inc.write(data)
        try:
            reply += obj.read(65536)
        except ssl.SSLWantReadError:
            pass
    return reply.split(b" ", 2)[1].decode() if reply else "no answer"


def proxy_header(src):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    addrs = socket.inet_aton(src) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 4242, 443)
    return sig + bytes([0x21, 0x11]) + struct.pack("!H", len(addrs)) + addrs


def proxy(host, port, cafile, src, reqfile):
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(proxy_header(src))
    t = context(cafile).wrap_socket(s)
    t.sendall(open(reqfile, "rb").read())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = t.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


def flood(host, port, cafile, n):
    ctx = context(cafile)
    kept = ctx.wrap_socket(socket.create_connection((host, port), timeout=10))
    first = http_get(kept)
    stalled = []
    for _ in range(n):  # a TCP connection that never sends its ClientHello
        stalled.append(socket.create_connection((host, port), timeout=10))
    time.sleep(0.3)
    try:
        new = ctx.wrap_socket(socket.create_connection((host, port), timeout=5))
        new.close()
        new_state = "served"
    except (OSError, ssl.SSLError):
        new_state = "refused"
    status = http_get(kept)
    for s in stalled:
        s.close()
    kept.close()
    return f"first={first.split(' ')[1]} kept={status.split(' ')[1] if status else 'none'} " \
           f"new={new_state}"


def raw(host, port, hexbytes, eof):
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(bytes.fromhex(hexbytes))
    if eof:  # the client goes away (a truncated record)
        s.shutdown(socket.SHUT_WR)
    try:
        while s.recv(4096):
            pass
        return "closed"
    except socket.timeout:
        return "open"
    except ConnectionResetError:
        return "closed"


def main(argv):
    cmd, host, port = argv[1], argv[2], int(argv[3])
    if cmd == "bytewise":
        print(bytewise(host, port, argv[4]))
    elif cmd == "proxy":
        print(proxy(host, port, argv[4], argv[5], argv[6]))
    elif cmd == "flood":
        print(flood(host, port, argv[4], int(argv[5])))
    elif cmd == "raw":
        print(raw(host, port, argv[4], len(argv) > 5 and argv[5] == "eof"))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
