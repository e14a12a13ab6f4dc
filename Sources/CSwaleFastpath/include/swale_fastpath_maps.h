/*
 * swale_fastpath_maps.h — the maps shared by the kernel fast path (bpf/fastpath.bpf.c, compiled
 * for the BPF target) and swaled (shim.c, Fastpath.swift). One copy of every layout, included by
 * both sides, so they cannot disagree.
 *
 *   swale_fdb       HASH   address (MAC big-endian in the low 48 bits, as LearningTable keys it;
 *                          VLAN 0) -> the kernel port it was learned on, and when the fast path
 *                          last forwarded a frame from it (swaled reads that when aging)
 *   swale_ports     HASH   ifindex of a kernel port's host end (or TAP) -> its engine index,
 *                          whether it is on the fast path now (not watched, no rule the program
 *                          lacks) and how frames reach it (SWALE_FP_PORT_*)
 *   swale_counters  PERCPU_ARRAY  engine port index -> frames and bytes the fast path took from
 *                          the port (tx, as the switch counts) and gave to it (rx)
 *
 * Only swaled's forwarding thread writes swale_fdb's keys and swale_ports; the program writes
 * only `seen_ns` and the counters.
 */
#ifndef SWALE_FASTPATH_MAPS_H
#define SWALE_FASTPATH_MAPS_H
#include <linux/types.h>

#define SWALE_FP_FDB_MAX 65536
#define SWALE_FP_PORTS_MAX 256

/* swale_ports.flags */
#define SWALE_FP_PORT_ON 1u   /* frames from and to this port may take the fast path */
#define SWALE_FP_PORT_PEER 2u /* a veth whose peer is in another namespace: bpf_redirect_peer */
#define SWALE_FP_PORT_HOST 4u /* a TAP: frames for it go up the host stack (bpf_redirect, BPF_F_INGRESS) */

struct swale_fp_fdb {
    __u32 ifindex;
    __u32 pad;
    __u64 seen_ns; /* bpf_ktime_get_ns() of the last fast-pathed frame from this address */
};

struct swale_fp_port {
    __u32 slot; /* the port's engine index (swale_counters) */
    __u32 flags;
};

struct swale_fp_counters {
    __u64 tx_packets; /* taken from the port by the fast path */
    __u64 tx_bytes;
    __u64 rx_packets; /* given to the port by the fast path */
    __u64 rx_bytes;
};

#endif
