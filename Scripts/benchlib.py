"""What the Python benchmarks (bench-kernel.py, bench-tunnel.py) share: a shell call that fails
loudly, the processes a benchmark started (ended by PID, however it ends), and an iperf3 run
between two network namespaces."""
import json, subprocess, time

procs = []


def sh(cmd, check=True, timeout=120):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{cmd}: {r.stderr.strip()}")
    return r.stdout


def start(args, **kw):
    """A process of ours: recorded, so stop_all() ends it."""
    p = subprocess.Popen(args, **kw)
    procs.append(p)
    return p


def stop_all():
    """Our processes, by PID: SIGTERM, then SIGKILL after 5 s (a namespace lives while a process is in it)."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    procs.clear()


def iperf3_run(client_ns, server_ns, server_ip, seconds, streams=1, udp=None):
    """iperf3 from client_ns to a one-shot server in server_ns; the JSON's "end" section.
    `udp`: extra client options for a UDP run (e.g. "-u -l 18 -b 0")."""
    srv = start(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", server_ip],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.4)
    opts = udp if udp else f"-P {streams}"
    out = sh(f"ip netns exec {client_ns} iperf3 -c {server_ip} -t {seconds} {opts} -J", timeout=seconds + 60)
    srv.wait(timeout=10)
    return json.loads(out)["end"]
