#!/bin/sh
# Installs what Swale needs on a fresh Debian machine (root): libnl for the build; clang, libbpf
# and bpftool for the kernel fast path, whose BPF program it compiles and installs as
# /usr/local/lib/swale/swale-fastpath.bpf.o (every run: the source may have changed); iproute2,
# iperf3 and ping for the integration tests and benchmarks; python3, passwd (useradd) and
# util-linux (setpriv, prlimit) for the security tests, which run clients as users they create;
# tcpdump to read captures back; promtool for the metrics test; CNI plugins and podman for the
# container tests.
# Swift itself is expected at /opt/swift or on PATH. Safe to run again.
set -eu
missing() {
    for p in "$@"; do
        # "installed", not merely known to dpkg (a removed package keeps a config-files record)
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}
need=$(missing gcc clang libbpf-dev bpftool linux-libc-dev libnl-3-dev libnl-route-3-dev pkg-config iproute2 iperf3 iputils-ping ethtool procps python3 passwd util-linux tcpdump)
# The CNI tests: Debian's IPAM plugins (host-local), and podman with runc and a busybox for two
# containers. Without recommends: podman's would bring netavark (and crun, which refuses this
# machine's cgroup layout); the test configures podman's CNI backend itself.
bare=$(missing containernetworking-plugins podman runc busybox-static)
if [ -n "$need$bare" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    [ -z "$need" ] || apt-get install -y -qq $need >/dev/null
    [ -z "$bare" ] || apt-get install -y -qq --no-install-recommends $bare >/dev/null
fi
# promtool (checks the /metrics text in the tests) comes from Debian's prometheus package, unpacked
# rather than installed: installing would also set up and start a Prometheus server.
if ! command -v promtool >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -qq prometheus 2>/dev/null || { apt-get update -qq && apt-get download -qq prometheus; })
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
    install -m 0755 "$tmp/x/usr/bin/promtool" /usr/local/bin/promtool
    rm -rf "$tmp"
fi
# The kernel fast path: the BPF program, compiled for the BPF target by Debian's clang against
# libbpf's headers (swaled loads it at run time and runs without it if it is missing).
src="$(cd "$(dirname "$0")/.." && pwd)/Sources/CSwaleFastpath/bpf/fastpath.bpf.c"
obj=/usr/local/lib/swale/swale-fastpath.bpf.o
mkdir -p /usr/local/lib/swale
clang -O2 -g -Wall -Werror -target bpf -I"/usr/include/$(gcc -print-multiarch)" -c "$src" -o "$obj.tmp"
mv "$obj.tmp" "$obj"
command -v swift >/dev/null 2>&1 || [ -x /opt/swift/usr/bin/swift ] || { echo "setup: swift not found" >&2; exit 1; }
