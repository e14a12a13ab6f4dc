#!/bin/sh
# Installs Swale as a systemd service: builds in release mode, installs swaled, swalectl and
# swale-pktgen, the default config (kept if one is already there) and the unit, then enables and
# starts it when systemd is running.
#
#   Scripts/install.sh [--prefix /usr/local] [--config /etc/swale/swale.json]
#                      [--unit-dir /etc/systemd/system] [--binaries DIR] [--no-start]
#
# --binaries DIR installs already built executables instead of building (tests use it).
set -eu
cd "$(dirname "$0")/.."
prefix=/usr/local
config=/etc/swale/swale.json
unitdir=/etc/systemd/system
binaries=""
start=yes
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --config) config=$2; shift 2 ;;
        --unit-dir) unitdir=$2; shift 2 ;;
        --binaries) binaries=$2; shift 2 ;;
        --no-start) start=no; shift ;;
        *) echo "install.sh: unknown option $1 (see the top of the script)" >&2; exit 2 ;;
    esac
done

if [ -z "$binaries" ]; then
    Scripts/setup.sh
    export PATH="/opt/swift/usr/bin:$PATH"
    swift build -c release
    binaries=.build/release
fi
bindir="$prefix/bin"
install -d "$bindir" "$(dirname "$config")" "$unitdir"
for exe in swaled swalectl swale-pktgen; do install -m 0755 "$binaries/$exe" "$bindir/$exe"; done
# The kernel fast path's BPF object (Scripts/setup.sh builds it into /usr/local/lib/swale); swaled
# also looks for it in PREFIX/lib/swale. Without it swaled runs without the fast path.
fpobj=/usr/local/lib/swale/swale-fastpath.bpf.o
if [ -f "$fpobj" ] && [ "$prefix/lib/swale/swale-fastpath.bpf.o" != "$fpobj" ]; then
    install -D -m 0644 "$fpobj" "$prefix/lib/swale/swale-fastpath.bpf.o"
fi
if [ -e "$config" ]; then
    echo "keeping the existing $config"
else
    install -m 0644 Config/swale.json "$config"
fi
"$bindir/swaled" --config "$config" --check-config
sed -e "s|@BINDIR@|$bindir|g" -e "s|@CONFIG@|$config|g" Scripts/swaled.service > "$unitdir/swaled.service"
chmod 0644 "$unitdir/swaled.service"
echo "installed $bindir/swaled, $bindir/swalectl, $bindir/swale-pktgen, $config, $unitdir/swaled.service"

if [ "$start" = yes ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable --now swaled.service
    systemctl --no-pager status swaled.service | head -5
else
    echo "not starting: run 'systemctl daemon-reload && systemctl enable --now swaled' on a machine booted with systemd"
fi
