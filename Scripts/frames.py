#!/usr/bin/python3
"""Raw Ethernet frames for tests: send marked frames on an interface, capture them on another.

    frames.py send --iface IF --dst MAC --src MAC [--vlan VID [--pcp P]] [--ethertype 0x88b5]
                   [--payload-len N] [--count N] [--interval S] [--tag TEXT]
    frames.py send --iface IF --frame-hex HEX [--count N]
    frames.py capture --iface IF --seconds S [--max N] [--tag TEXT] [--all]

A test frame's payload (after the EtherType) begins with the ASCII marker "SWALETEST:", then the tag
TEXT and a NUL; zeros pad the frame to at least 60 bytes without FCS (64 when tagged, so that it is
still 60 once a switch takes the tag off). `send` prints one JSON line,
{"sent": N, "len": L}.

`capture` binds an AF_PACKET socket to IF, writes the line "ready" to stderr once it is bound (a test
waits for it before sending), and ignores frames the host itself sent out of IF. The kernel takes an
802.1Q tag off a received frame and reports it beside the frame (PACKET_AUXDATA); the tag is put
back, so what is reported is the frame as it was on the wire. Capture ends after S seconds, after N
matching frames (--max), or on SIGTERM/SIGINT, and then prints ONE JSON line:
{"frames": [{"dst", "src", "vlan", "pcp", "ethertype", "len", "tag"}, ...]}
with only the frames that carry the marker (and, with --tag, that tag); --all keeps every frame
(tag null when unmarked). vlan/pcp are those of the outer tag (null when untagged); ethertype is the
one after the tags; len counts the frame with its tag(s) and without FCS.

Python 3 standard library only; needs CAP_NET_RAW (run as root, e.g. under `ip netns exec`).
"""
import argparse
import json
import select
import signal
import socket
import struct
import sys
import time

MARKER = b"SWALETEST:"
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
AUXDATA = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)


def parse_mac(text):
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6:
        raise argparse.ArgumentTypeError(f"not a MAC address: {text!r}")
    try:
        raw = bytes(int(p, 16) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a MAC address: {text!r}") from None
    return raw


def fmt_mac(raw):
    return ":".join(f"{b:02x}" for b in raw)


def int_auto(text):
    return int(text, 0)


def build_frame(dst, src, ethertype, tag, vlan=None, pcp=0, payload_len=0):
    payload = MARKER + tag.encode() + b"\x00"
    if payload_len > len(payload):
        payload += bytes(payload_len - len(payload))
    header = dst + src
    if vlan is not None:
        header += struct.pack("!HH", 0x8100, (pcp << 13) | vlan)
    frame = header + struct.pack("!H", ethertype) + payload
    minimum = 64 if vlan is not None else 60  # 802.1Q: a tagged frame is still 60 bytes once untagged
    if len(frame) < minimum:
        frame += bytes(minimum - len(frame))
    return frame


def cmd_send(a):
    if a.frame_hex is not None:
        try:
            frame = bytes.fromhex(a.frame_hex.replace(":", "").replace(" ", ""))
        except ValueError as e:
            sys.exit(f"frames.py: --frame-hex: {e}")
        if len(frame) < 14:
            sys.exit("frames.py: --frame-hex: a frame has at least 14 bytes")
    else:
        if a.dst is None or a.src is None:
            sys.exit("frames.py: send needs --dst and --src (or --frame-hex)")
        if a.vlan is not None and not 0 <= a.vlan <= 4095:
            sys.exit("frames.py: --vlan must be 0...4095")
        if not 0 <= a.pcp <= 7:
            sys.exit("frames.py: --pcp must be 0...7")
        if not 0 <= a.ethertype <= 0xFFFF:
            sys.exit("frames.py: --ethertype must be 16 bits")
        if "\x00" in a.tag:
            sys.exit("frames.py: --tag must not contain NUL")
        frame = build_frame(a.dst, a.src, a.ethertype, a.tag, a.vlan, a.pcp, a.payload_len)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # protocol 0: this socket receives nothing
    try:
        s.bind((a.iface, 0))
        for i in range(a.count):
            if i and a.interval > 0:
                time.sleep(a.interval)
            s.send(frame)
    finally:
        s.close()
    print(json.dumps({"sent": a.count, "len": len(frame)}), flush=True)


def decode(frame, aux_status, aux_tci, aux_tpid):
    """The frame with the kernel's stripped tag put back, and what a test wants to know of it."""
    if aux_status & TP_STATUS_VLAN_VALID:
        tpid = aux_tpid if (aux_status & TP_STATUS_VLAN_TPID_VALID) and aux_tpid else 0x8100
        frame = frame[:12] + struct.pack("!HH", tpid, aux_tci) + frame[12:]
    if len(frame) < 14:
        return None
    vlan = pcp = None
    off = 12
    ethertype = struct.unpack_from("!H", frame, off)[0]
    while ethertype in VLAN_TPIDS and len(frame) >= off + 6:
        tci = struct.unpack_from("!H", frame, off + 2)[0]
        if vlan is None:
            vlan, pcp = tci & 0x0FFF, tci >> 13
        off += 4
        ethertype = struct.unpack_from("!H", frame, off)[0]
    payload = frame[off + 2 :]
    tag = None
    if payload.startswith(MARKER):
        rest = payload[len(MARKER) :]
        end = rest.find(b"\x00")
        tag = (rest if end < 0 else rest[:end]).decode("utf-8", "replace")
    return {
        "dst": fmt_mac(frame[0:6]),
        "src": fmt_mac(frame[6:12]),
        "vlan": vlan,
        "pcp": pcp,
        "ethertype": f"0x{ethertype:04x}",
        "len": len(frame),
        "tag": tag,
    }


class Stop(Exception):
    pass


def cmd_capture(a):
    frames = []

    def stop(*_):
        raise Stop()  # a handler that returns would let select() go on waiting (PEP 475)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Protocol 0 at creation, ETH_P_ALL at bind: no frame of another interface is queued before the bind.
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    try:
        s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    except OSError:
        pass  # older kernel: outgoing frames are skipped by their packet type below
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((a.iface, ETH_P_ALL))
    sys.stderr.write("ready\n")
    sys.stderr.flush()
    deadline = time.monotonic() + a.seconds
    cmsg_space = socket.CMSG_SPACE(AUXDATA.size)
    try:
        while a.max is None or len(frames) < a.max:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            readable, _, _ = select.select([s], [], [], left)
            if not readable:
                continue
            data, ancdata, _flags, addr = s.recvmsg(65536, cmsg_space)
            if addr[2] == PACKET_OUTGOING:
                continue
            status = tci = tpid = 0
            for level, kind, cdata in ancdata:
                if level == SOL_PACKET and kind == PACKET_AUXDATA and len(cdata) >= AUXDATA.size:
                    status, _len, _snap, _mac, _net, tci, tpid = AUXDATA.unpack_from(cdata)
            info = decode(data, status, tci, tpid)
            if info is None:
                continue
            if not a.all and info["tag"] is None:
                continue
            if a.tag is not None and info["tag"] != a.tag:
                continue
            frames.append(info)
    except Stop:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    s.close()
    print(json.dumps({"frames": frames}), flush=True)


def main():
    p = argparse.ArgumentParser(description="Send and capture marked raw Ethernet frames (tests).")
    sub = p.add_subparsers(dest="cmd", required=True)
    ps = sub.add_parser("send", help="send marked frames (or one literal frame) out of an interface")
    ps.add_argument("--iface", required=True)
    ps.add_argument("--dst", type=parse_mac)
    ps.add_argument("--src", type=parse_mac)
    ps.add_argument("--vlan", type=int, help="one 802.1Q tag with this VID")
    ps.add_argument("--pcp", type=int, default=0, help="priority in the tag (0...7)")
    ps.add_argument("--ethertype", type=int_auto, default=0x88B5)
    ps.add_argument("--payload-len", type=int, default=0, help="payload bytes after the EtherType (at least the marker)")
    ps.add_argument("--count", type=int, default=1)
    ps.add_argument("--interval", type=float, default=0.0, help="seconds between frames")
    ps.add_argument("--tag", default="", help="text after the marker")
    ps.add_argument("--frame-hex", help="send this literal frame instead (hex, ':' and spaces ignored)")
    pc = sub.add_parser("capture", help="capture marked frames arriving on an interface, print them as JSON")
    pc.add_argument("--iface", required=True)
    pc.add_argument("--seconds", type=float, required=True)
    pc.add_argument("--max", type=int, help="stop after this many matching frames")
    pc.add_argument("--tag", help="keep only frames with this tag")
    pc.add_argument("--all", action="store_true", help="keep unmarked frames too")
    a = p.parse_args()
    if a.cmd == "send":
        cmd_send(a)
    else:
        cmd_capture(a)


if __name__ == "__main__":
    main()
