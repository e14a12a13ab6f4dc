#!/usr/bin/env python3
"""Swale vs the Linux bridge on the same topology, in one run (not a test; prints a table).

Topology: two network namespaces, each with one end of a veth pair; the other ends are either
enslaved to a Linux bridge or ports of a Swale bridge (swaled, release build), once with the kernel
fast path (the default: learned kernel-to-kernel frames go through its eBPF program) and once with
--no-fastpath (every frame through the rings). For each:
ping RTT (and, without the fast path, once more after restarting swaled with --busy-poll 1000000), iperf3 TCP with 1 and 4 streams (offloads on, then off inside the namespaces), the
delivered rate of a 60-byte UDP flood (iperf3 -u -l 18 -b 0), the switch's drops and CPU. The Linux
bridge runs twice (ports' defaults, then GRO on its ports as swaled sets on its own veth ends) and
each row compares Swale with the better of the two: ratio = Swale / Linux bridge. Everything it creates carries a per-run prefix and is deleted on exit.

Usage (root): python3 Scripts/bench-kernel.py [--seconds 5]
"""
import argparse, json, os, random, re, shutil, signal, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Scripts"))
from benchlib import sh, start, stop_all, iperf3_run  # noqa: E402
P = "bk%04x" % random.randrange(0x10000)
NS = [P + "n1", P + "n2"]
SW = [P + "s1", P + "s2"]      # switch-side ends
PEER = [P + "p1", P + "p2"]    # namespace-side ends
BR = P + "br"
IPS = ["10.214.0.1", "10.214.0.2"]
tmp = tempfile.mkdtemp(prefix="swale-bench-")


def cleanup():
    stop_all()
    cleanup_links()
    shutil.rmtree(tmp, ignore_errors=True)


def cpu_total():
    with open("/proc/stat") as f:
        v = list(map(int, f.readline().split()[1:]))
    return sum(v), v[3] + v[4]   # total, idle+iowait


def proc_cpu(pid):
    if pid is None:
        return 0
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return int(v[11]) + int(v[12])   # utime + stime (ticks)


class Meter:
    """Machine CPU (% of all cores) and swaled CPU (% of one core) over a measurement."""
    def __init__(self, pid):
        self.pid = pid
    def __enter__(self):
        self.t0, self.i0 = cpu_total(); self.p0 = proc_cpu(self.pid); self.w0 = time.time(); return self
    def __exit__(self, *a):
        t1, i1 = cpu_total(); p1 = proc_cpu(self.pid)
        self.machine = 100.0 * (1 - (i1 - self.i0) / max(1, t1 - self.t0))
        hz = os.sysconf("SC_CLK_TCK")
        self.switch = 100.0 * (p1 - self.p0) / hz / max(1e-9, time.time() - self.w0)


def namespaces():
    for i in range(2):
        sh(f"ip netns add {NS[i]}")
        sh(f"ip netns exec {NS[i]} ip link set lo up")


def offloads(on):
    """Offloads on or off inside the containers (their veth ends). The switch-side ends belong to
    the switch and keep its own settings: swaled turns GRO on for the veth ends it creates; the
    Linux bridge is measured both with its ports' defaults and with GRO on (--lb-gro), and the
    better of the two is the comparison."""
    v = "on" if on else "off"
    for i in range(2):
        sh(f"ip netns exec {NS[i]} ethtool -K {PEER[i]} tso {v} gso {v} gro {v} tx {v} rx {v}", check=False)


def tcp_gbps(streams, seconds):
    return iperf3_run(NS[0], NS[1], IPS[1], seconds, streams)["sum_received"]["bits_per_second"] / 1e9


def udp_flood(seconds):
    s = iperf3_run(NS[0], NS[1], IPS[1], seconds, udp="-u -l 18 -b 0")["sum"]
    sent = s.get("packets", 0)
    lost = s.get("lost_packets", 0)
    return (sent - lost) / s["seconds"], sent / s["seconds"]


def ping_rtt():
    # 100 echo requests 20 ms apart: enough that one slow round trip does not move the mean much.
    out = sh(f"ip netns exec {NS[0]} ping -c 100 -i 0.02 -q {IPS[1]}")
    m = re.search(r"= [\d.]+/([\d.]+)/", out)
    return float(m.group(1))


def measure(name, pid, seconds, stats=None):
    res = {}
    sh(f"ip netns exec {NS[0]} ping -c 2 -W 2 {IPS[1]}")
    with Meter(pid) as m:
        res["ping_ms"] = ping_rtt()
    for on in (True, False):
        offloads(on)
        for streams in (1, 4):
            with Meter(pid) as m:
                res[f"tcp{streams}_{'on' if on else 'off'}"] = tcp_gbps(streams, seconds)
            res[f"cpu_tcp{streams}_{'on' if on else 'off'}"] = (m.machine, m.switch)
    offloads(True)
    before = stats() if stats else None
    with Meter(pid) as m:
        res["udp_pps"], res["udp_offered"] = udp_flood(seconds)
    res["cpu_udp"] = (m.machine, m.switch)
    if stats:
        after = stats()
        res["switch_drops"] = after - before
    print(f"  {name}: done", file=sys.stderr)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench-kernel: needs root")
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *a: sys.exit(1))
    try:
        subprocess.run(["swift", "build", "-c", "release"], cwd=ROOT, check=True, capture_output=True)
        b = os.path.join(ROOT, ".build", "release")
        results = {}

        # Linux bridge.
        namespaces()
        sh(f"ip link add {BR} type bridge && ip link set {BR} up")
        for i in range(2):
            sh(f"ip link add {SW[i]} type veth peer name {PEER[i]}")
            sh(f"ip link set {PEER[i]} netns {NS[i]}")
            sh(f"ip netns exec {NS[i]} ip addr add {IPS[i]}/24 dev {PEER[i]}")
            sh(f"ip netns exec {NS[i]} ip link set {PEER[i]} up")
            sh(f"ip link set {SW[i]} master {BR} up")
        time.sleep(1)
        results["linux"] = measure("Linux bridge", None, args.seconds)
        # The same bridge with GRO on its ports (what swaled does on its own ends): keep the better.
        for i in range(2):
            sh(f"ethtool -K {SW[i]} gro on", check=False)
        gro = measure("Linux bridge, GRO on its ports", None, args.seconds)
        plain = dict(results["linux"])
        for k, v in gro.items():
            if k.startswith("tcp") or k == "udp_pps":
                if v > results["linux"][k]:
                    results["linux"][k] = v
                    results["linux"]["cpu_" + k if not k.startswith("udp") else "cpu_udp"] = gro.get("cpu_" + k, gro.get("cpu_udp"))
                    if k == "udp_pps":
                        results["linux"]["udp_offered"] = gro["udp_offered"]
            elif k == "ping_ms" and v < results["linux"][k]:
                results["linux"][k] = v
        cleanup_links()

        # Swale, with the kernel fast path (the default), then without it (--no-fastpath), each on
        # fresh namespaces and ports.
        def swale(name, extra):
            namespaces()
            sock = os.path.join(tmp, "swaled.sock")
            swaled = [os.path.join(b, "swaled"), "--socket", sock, "--log-level", "warning"]
            d = start(swaled + extra)
            for _ in range(100):
                if os.path.exists(sock):
                    break
                time.sleep(0.05)
            ctl = lambda *a: sh(" ".join([os.path.join(b, "swalectl")] + list(a) + ["--socket", sock]))
            ctl("bridge", "add", "vale0")
            for i in range(2):
                ctl("port", "add", "vale0", "veth", SW[i], "--peer", PEER[i], "--netns", NS[i], "--address", f"{IPS[i]}/24")

            def drops():
                st = json.loads(ctl("stats", "vale0", "--json"))
                t = 0
                for p in st["ports"]:
                    c = p["counters"]
                    t += c["dropRingFull"] + c["dropTooLong"] + c["dropBadSlot"]
                    t += (c.get("adapter") or {}).get("kernel_ring_drops", 0)
                return t
            res = measure(name, d.pid, args.seconds, stats=drops)
            st = json.loads(ctl("stats", "vale0", "--json"))
            res["fastpath"] = st["bridges"][0].get("fastpath", "-")
            res["fastpath_frames"] = sum((p["counters"].get("adapter") or {}).get("fastpath_tx_packets", 0) for p in st["ports"])
            res["all_frames"] = sum(p["counters"]["txPackets"] for p in st["ports"])
            if "--no-fastpath" in extra:
                # Latency mode: the same ports after a restart of swaled that keeps polling for 1 s
                # after the last frame (yielding its core) instead of 50 us, so a frame finds it
                # awake, as VPP or an OVS-DPDK PMD thread always is. Costs an otherwise idle core.
                d.terminate(); d.wait(timeout=20)
                os.unlink(sock) if os.path.exists(sock) else None
                d = start(swaled + extra + ["--busy-poll", "1000000"])
                for _ in range(100):
                    if os.path.exists(sock):
                        break
                    time.sleep(0.05)
                # swaled takes its bridge and ports back by itself (their owner tags: Restart without loss).
                for _ in range(100):
                    if subprocess.run(f"ip netns exec {NS[0]} ping -c 1 -W 1 {IPS[1]}", shell=True, capture_output=True).returncode == 0:
                        break
                res["ping_poll_ms"] = ping_rtt()
            d.terminate(); d.wait(timeout=20)
            cleanup_links()
            return res
        results["swale"] = swale("Swale, fast path", [])
        results["nofp"] = swale("Swale, no fast path", ["--no-fastpath"])

        L, S, N = results["linux"], results["swale"], results["nofp"]
        print(f"\nSwale vs Linux bridge, veth between two namespaces, {args.seconds} s per measurement, {time.strftime('%Y-%m-%d')}")
        print("ratio: Swale vs the better Linux bridge (its ports' defaults, or GRO on its ports as swaled sets on its own)")
        print(f"Swale fast path: {S['fastpath']}; {S['fastpath_frames']} of {S['all_frames']} frames sent into the switch took it")
        print(f"{'measurement':37} {'LB defaults':>13} {'LB GRO on':>13} {'Swale FP':>13} {'ratio':>7} {'Swale no FP':>13} {'ratio':>7}")
        def row(label, key, unit, fmt="%.2f", inverse=False):
            l = L[key]
            cells = []
            for r in (S, N):
                v = r.get(key)
                ratio = f"{(l / v if inverse else v / l):.2f}x" if l and v else "-"  # not measured there
                cells.append(f"{((fmt % v) + ' ' + unit) if v is not None else '-':>13} {ratio:>7}")
            p, g = plain.get(key, l), gro.get(key, l)
            print(f"{label:37} {(fmt % p) + ' ' + unit:>13} {(fmt % g) + ' ' + unit:>13} " + " ".join(cells))
        row("ping RTT (lower is better)", "ping_ms", "ms", "%.3f", inverse=True)
        L["ping_poll_ms"] = L["ping_ms"]
        plain["ping_poll_ms"], gro["ping_poll_ms"] = plain["ping_ms"], gro["ping_ms"]
        row("ping RTT, swaled --busy-poll 1000000", "ping_poll_ms", "ms", "%.3f", inverse=True)
        for on in ("on", "off"):
            for n in (1, 4):
                row(f"TCP {n} stream(s), offloads {on}", f"tcp{n}_{on}", "Gb/s")
        row("UDP 60 B flood, delivered", "udp_pps", "pps", "%.0f")
        print(f"{'UDP flood, offered by iperf3':37} {'%.0f pps' % plain['udp_offered']:>13} {'%.0f pps' % gro['udp_offered']:>13} {'%.0f pps' % S['udp_offered']:>13} {'':>7} {'%.0f pps' % N['udp_offered']:>13}")
        print(f"{'Swale switch-side drops in flood':37} {'':>13} {'':>13} {S.get('switch_drops', 0):>13} {'':>7} {N.get('switch_drops', 0):>13}")
        for k, label in (("cpu_tcp1_on", "CPU, TCP 1 stream offloads on"), ("cpu_udp", "CPU, UDP flood")):
            print(f"{label:37} {'%.0f%% machine' % plain[k][0]:>13} {'%.0f%% machine' % gro[k][0]:>13} {'%.0f%% machine' % S[k][0]:>13} {'':>7} {'%.0f%% machine' % N[k][0]:>13}  (swaled {S[k][1]:.0f}% / {N[k][1]:.0f}% of a core)")
    finally:
        cleanup()


def cleanup_links():
    for ns in NS:
        sh(f"ip netns del {ns}", check=False)
    for l in SW + [BR]:
        sh(f"ip link del {l}", check=False)
    time.sleep(0.5)


if __name__ == "__main__":
    main()
