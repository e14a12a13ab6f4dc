#!/usr/bin/env python3
"""A control-socket client that misbehaves on purpose, for the security tests.

The integration tests run it as unprivileged users made for the test (setpriv), so it speaks the
wire protocol itself (docs/PROTOCOL.md) rather than through the Swift library. Every mode prints
one JSON object per line on stdout, then holds what it opened for HOLD seconds and exits.
$HOSTILE_TIMEOUT (seconds, default 10) bounds each wait for a reply.

  hostile-client.py SOCKET HOLD open NAME[@SLOTS]...   open ports/pipe ends, one connection each
  hostile-client.py SOCKET HOLD sessions N             N connections, each says hello
  hostile-client.py SOCKET HOLD fds ROUNDS             unterminated requests carrying 16 fds each
  hostile-client.py SOCKET HOLD big N                  N connections sending 1 MiB without a newline
  hostile-client.py SOCKET HOLD raw JSON [COUNT]       hello, then a raw request line (COUNT times)
  hostile-client.py SOCKET HOLD adopt WHAT...          adopt a descriptor: fd:N (one it has, e.g. fd:0),
                                                       self (its own connection), open:NAME (the
                                                       wake-up line of a port it opens first)
"""
import json
import os
import socket
import sys
import time


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(float(os.environ.get("HOSTILE_TIMEOUT", "10")))
    s.connect(path)
    return s


def receive(s):
    """One reply line; (None, fds) if the service closed the connection."""
    buf, fds = b"", []
    while not buf.endswith(b"\n"):
        try:
            data, got, _, _ = socket.recv_fds(s, 1 << 20, 16)
        except (ConnectionResetError, socket.timeout):
            return None, fds
        fds += got
        if not data:
            return None, fds
        buf += data
    return json.loads(buf), fds


def request(s, op, args=None):
    try:
        s.sendall(json.dumps({"v": 1, "op": op, "args": args or {}}).encode() + b"\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # a refused connection: the service wrote why before it closed; read that
    return receive(s)


def hello(path):
    s = connect(path)
    reply, _ = request(s, "hello", {"version": 1, "client": "hostile-client"})
    return s, reply


def emit(obj):
    print(json.dumps(obj), flush=True)


def main():
    path, hold, mode, args = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4:]
    keep = []
    if mode == "open":
        for item in args:
            name, _, slots = item.partition("@")
            s, h = hello(path)
            if not h or not h.get("ok"):
                emit({"name": name, "ok": False, "code": (h or {}).get("code"), "error": (h or {}).get("error")})
                continue
            a = {"name": name}
            if slots:
                a["slots"] = int(slots)
            reply, fds = request(s, "open", a)
            keep.append((s, fds))
            emit({"name": name, "ok": bool(reply and reply.get("ok")), "code": (reply or {}).get("code"),
                  "error": (reply or {}).get("error"), "fds": len(fds)})
    elif mode == "sessions":
        ok, codes = 0, []
        for _ in range(int(args[0])):
            try:
                s, h = hello(path)
            except OSError as e:
                codes.append(str(e))
                continue
            keep.append((s, []))
            if h and h.get("ok"):
                ok += 1
            else:
                codes.append((h or {}).get("code"))
        emit({"ok": ok, "refused": len(codes), "codes": sorted(set(map(str, codes)))})
    elif mode == "fds":
        s, _ = hello(path)
        sent, refused = 0, None
        for _ in range(int(args[0])):
            fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(16)]
            try:
                socket.send_fds(s, [b"{"], fds)
                sent += len(fds)
            except OSError as e:
                refused = e.strerror  # the socket takes no descriptors (SO_PASSRIGHTS off)
                break
            finally:
                for f in fds:
                    os.close(f)
        keep.append((s, []))
        emit({"sent": sent, "refused": refused})
    elif mode == "big":
        codes = []
        for _ in range(int(args[0])):
            s = connect(path)
            try:
                s.sendall(b"a" * (1 << 20))
            except OSError:
                pass
            reply, _ = receive(s)
            codes.append((reply or {}).get("code"))
            keep.append((s, []))
        emit({"codes": sorted(set(map(str, codes))), "count": len(codes)})
    elif mode == "raw":
        s, _ = hello(path)
        for _ in range(int(args[1]) if len(args) > 1 else 1):
            s.sendall(args[0].encode() + b"\n")
            reply, _ = receive(s)
        keep.append((s, []))
        emit({"reply": reply})
    elif mode == "adopt":
        for what in args:
            kind, _, value = what.partition(":")
            s, _ = hello(path)
            keep.append((s, []))
            if kind == "fd":
                fd = int(value)
            elif kind == "self":
                fd = s.fileno()
            else:
                reply, fds = request(s, "open", {"name": value})
                keep.append((s, fds))
                if not (reply and reply.get("ok")) or len(fds) != 3:
                    emit({"what": what, "ok": False, "error": "open failed: %s" % reply})
                    continue
                fd = fds[1]
                s, _ = hello(path)
            reply, fds = request(s, "adopt", {"fd": fd})
            keep.append((s, fds))
            emit({"what": what, "ok": bool(reply and reply.get("ok")), "code": (reply or {}).get("code"),
                  "error": (reply or {}).get("error"), "fds": len(fds)})
    else:
        sys.exit("unknown mode " + mode)
    time.sleep(hold)


if __name__ == "__main__":
    main()
