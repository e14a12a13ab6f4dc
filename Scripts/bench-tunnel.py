#!/usr/bin/env python3
"""TCP across a VXLAN tunnel: Swale vs the Linux bridge, same devices, same topology, one run.

Topology: two "hosts" (network namespaces) joined by an underlay veth pair (10.215.0.1/24 and
.2/24, MTU 1500). In each host one VXLAN device (VNI 42, dstport 4789, one flood entry to the
other host, MTU 1450) and one veth pair whose far end is a "container" namespace (10.216.0.X/24,
MTU 1450 so that TCP segments fit the tunnel; GRO on the host-side end, as swaled sets on the veth
ends it creates). First each host's two devices are enslaved to a Linux bridge; then the bridges
go and the same devices are attached to a Swale bridge, one swaled (release build) per host. For
each: iperf3 TCP, 1 stream, from container 1 to container 2. Prints both rates and the ratio
Swale / Linux bridge. Everything carries a per-run prefix and is deleted on exit.

Usage (root): python3 Scripts/bench-tunnel.py [--seconds 5] [--runs 1]
"""
import argparse, os, random, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Scripts"))
from benchlib import sh, start, stop_all, iperf3_run  # noqa: E402
P = "bt%04x" % random.randrange(0x10000)
HOSTS = [P + "h1", P + "h2"]
CTRS = [P + "c1", P + "c2"]
UNDER = ["10.215.0.1", "10.215.0.2"]
OVER = ["10.216.0.1", "10.216.0.2"]
VX = P + "vx"          # in each host
HV = P + "hv"          # host-side end of the container's veth, in each host
tmp = tempfile.mkdtemp(prefix="swale-bench-tunnel-")


def cleanup():
    stop_all()  # our processes first: a namespace lives while a process is in it
    for ns in HOSTS + CTRS:
        sh(f"ip netns del {ns}", check=False)
    shutil.rmtree(tmp, ignore_errors=True)


def topology():
    for ns in HOSTS + CTRS:
        sh(f"ip netns add {ns}")
        sh(f"ip netns exec {ns} ip link set lo up")
    sh(f"ip link add {P}u1 netns {HOSTS[0]} type veth peer name {P}u2 netns {HOSTS[1]}")
    for i in range(2):
        h, c = HOSTS[i], CTRS[i]
        sh(f"ip -n {h} addr add {UNDER[i]}/24 dev {P}u{i + 1}")
        sh(f"ip -n {h} link set {P}u{i + 1} up")
        other = UNDER[1 - i]
        sh(f"ip -n {h} link add {VX} type vxlan id 42 dstport 4789 local {UNDER[i]}")
        sh(f"ip -n {h} link set {VX} mtu 1450 up")
        sh(f"bridge -n {h} fdb append 00:00:00:00:00:00 dev {VX} dst {other} self permanent")
        sh(f"ip -n {h} link add {HV} mtu 1450 type veth peer name eth0 mtu 1450 netns {c}")
        sh(f"ip netns exec {h} ethtool -K {HV} gro on", check=False)
        sh(f"ip -n {h} link set {HV} up")
        sh(f"ip -n {c} addr add {OVER[i]}/24 dev eth0")
        sh(f"ip -n {c} link set eth0 up")


def wait_ping():
    for _ in range(40):
        if subprocess.run(f"ip netns exec {CTRS[0]} ping -c 1 -W 1 {OVER[1]}", shell=True, capture_output=True).returncode == 0:
            return
    raise RuntimeError("no ping across the tunnel")


def iperf(seconds):
    return iperf3_run(CTRS[0], CTRS[1], OVER[1], seconds)["sum_received"]["bits_per_second"] / 1e9


def linux_bridge(seconds):
    for h in HOSTS:
        sh(f"ip -n {h} link add br0 type bridge stp_state 0")
        sh(f"ip -n {h} link set br0 up")
        for dev in (VX, HV):
            sh(f"ip -n {h} link set {dev} master br0")
    wait_ping()
    g = iperf(seconds)
    for h in HOSTS:
        sh(f"ip -n {h} link del br0")   # its ports stay, enslaved to nothing
    return g


def swale(seconds, build):
    daemons = []
    for i, h in enumerate(HOSTS):
        sock = os.path.join(tmp, f"h{i + 1}.sock")
        d = start(["ip", "netns", "exec", h, os.path.join(build, "swaled"), "--socket", sock, "--log-level", "warning"])
        daemons.append(d)
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        ctl = lambda *a: sh(" ".join([f"SWALE_SOCKET={sock}", os.path.join(build, "swalectl")] + list(a)))
        ctl("bridge", "add", "vale0")
        ctl("port", "attach", "vale0", VX)
        ctl("port", "attach", "vale0", HV)
    wait_ping()
    g = iperf(seconds)
    for d in daemons:
        d.terminate()
        d.wait(10)
    return g


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=1)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench-tunnel.py: run as root")
    build = os.path.join(ROOT, ".build", "release")
    if not os.path.exists(os.path.join(build, "swaled")):
        subprocess.run(["swift", "build", "-c", "release"], cwd=ROOT, check=True, capture_output=True)
    try:
        topology()
        print(f"TCP across VXLAN (iperf3 -t {a.seconds}, 1 stream, container MTU 1450), same devices")
        print(f"{'run':>4} {'Linux bridge':>14} {'Swale':>14} {'ratio':>7}")
        for r in range(a.runs):
            lb = linux_bridge(a.seconds)
            sw = swale(a.seconds, build)
            print(f"{r + 1:>4} {lb:>9.2f} Gb/s {sw:>9.2f} Gb/s {sw / lb:>6.2f}x", flush=True)
    finally:
        cleanup()


if __name__ == "__main__":
    main()
