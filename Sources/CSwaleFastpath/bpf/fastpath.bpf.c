/*
 * fastpath.bpf.c — Swale's kernel fast path: frames between two kernel ports of one bridge whose
 * addresses the switch has learned go from port to port inside the kernel, without the copies
 * into and out of swaled's rings.
 *
 * Two programs share one decision (`swale_fp_decide`) and the maps of swale_fastpath_maps.h:
 *
 *   swale_fp_ingress (tcx ingress on the host end of each kernel port): a frame the decision takes
 *     is redirected to the destination port — bpf_redirect_peer into a veth peer's namespace
 *     (ingress to ingress, no backlog), bpf_redirect (out of the port) otherwise — GSO frames
 *     included, no copy. It refreshes the source's `seen_ns` (swaled ages by it) and counts the
 *     frame per CPU against both ports.
 *   swale_fp_egress (tcx egress on a TAP): the same for what the host stack sends into a TAP port,
 *     before it reaches the TAP's queue (so the switch, which reads that queue, never sees it). A
 *     frame FOR a TAP goes up the host stack instead (bpf_redirect with BPF_F_INGRESS), as if the
 *     switch had written it to the TAP.
 *   swale_fp_sockfilter (SO_ATTACH_BPF on the port's AF_PACKET socket): the packet socket sees a
 *     frame before tc ingress does (__netif_receive_skb_core runs the ptype_all taps first), so
 *     without it the switch would forward the frame a second time. It drops (returns 0 for) exactly
 *     the frames the decision takes, and keeps the rest whole.
 *
 * The decision takes a frame only if all of these hold, else it goes the normal way (the rings):
 *   - the destination is unicast and the frame carries no VLAN tag (VLAN rules are the switch's);
 *   - the ingress port is on the fast path (swale_ports: ON);
 *   - the SOURCE address is in swale_fdb on this very ingress port — so a new or moved station
 *     goes through the switch once and is learned (the switch then updates the map);
 *   - the destination address is in swale_fdb on another port that is on the fast path.
 * Bad sources (group, zero) are never in the map, so they always reach the switch's checks.
 * Both programs read the maps a few microseconds apart; an update in that window can send one
 * frame both ways or neither, as a frame in flight during a MAC move can on any switch.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "../include/swale_fastpath_maps.h"

/* Entries allocated as learned (no 64K-entry preallocation per bridge). */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, SWALE_FP_FDB_MAX);
    __type(key, __u64);
    __type(value, struct swale_fp_fdb);
} swale_fdb SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, SWALE_FP_PORTS_MAX);
    __type(key, __u32);
    __type(value, struct swale_fp_port);
} swale_ports SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, SWALE_FP_PORTS_MAX);
    __type(key, __u32);
    __type(value, struct swale_fp_counters);
} swale_counters SEC(".maps");

struct swale_fp_decision {
    struct swale_fp_fdb *src;
    __u32 in_slot;
    __u32 out_slot;
    __u32 out_ifindex;
    __u32 out_flags;
};

static __always_inline __u64 swale_fp_mac(const __u8 *b) {
    return (__u64)b[0] << 40 | (__u64)b[1] << 32 | (__u64)b[2] << 24 | (__u64)b[3] << 16 | (__u64)b[4] << 8 | (__u64)b[5];
}

/* 1: the fast path takes the frame (d filled in); 0: it goes through the switch. */
static __always_inline int swale_fp_decide(struct __sk_buff *skb, struct swale_fp_decision *d) {
    __u8 h[14];
    if (bpf_skb_load_bytes(skb, 0, h, sizeof h) < 0) return 0;
    if (h[0] & 1) return 0; /* broadcast, multicast, reserved groups: the switch floods or filters */
    if (skb->vlan_present) return 0;
    if ((h[12] == 0x81 && h[13] == 0x00) || (h[12] == 0x88 && h[13] == 0xa8)) return 0;
    __u32 in = skb->ifindex;
    struct swale_fp_port *ip = bpf_map_lookup_elem(&swale_ports, &in);
    if (!ip || !(ip->flags & SWALE_FP_PORT_ON)) return 0;
    __u64 sk = swale_fp_mac(h + 6);
    struct swale_fp_fdb *s = bpf_map_lookup_elem(&swale_fdb, &sk);
    if (!s || s->ifindex != in) return 0;
    __u64 dk = swale_fp_mac(h);
    struct swale_fp_fdb *dst = bpf_map_lookup_elem(&swale_fdb, &dk);
    if (!dst || dst->ifindex == in) return 0;
    __u32 out = dst->ifindex;
    struct swale_fp_port *op = bpf_map_lookup_elem(&swale_ports, &out);
    if (!op || !(op->flags & SWALE_FP_PORT_ON)) return 0;
    d->src = s;
    d->in_slot = ip->slot;
    d->out_slot = op->slot;
    d->out_ifindex = out;
    d->out_flags = op->flags;
    return 1;
}

/* The tc programs' common part; `at_ingress` is a constant once inlined. */
static __always_inline int swale_fp_take(struct __sk_buff *skb, const int at_ingress) {
    struct swale_fp_decision d;
    if (!swale_fp_decide(skb, &d)) return TC_ACT_UNSPEC; /* tcx: on to the next program, then the stack */
    /* Aging: one store at most every 250 ms per source, not one per frame. */
    __u64 now = bpf_ktime_get_ns();
    if (now - d.src->seen_ns > 250000000ull) d.src->seen_ns = now;
    __u32 len = skb->len;
    struct swale_fp_counters *c = bpf_map_lookup_elem(&swale_counters, &d.in_slot);
    if (c) {
        c->tx_packets += 1;
        c->tx_bytes += len;
    }
    c = bpf_map_lookup_elem(&swale_counters, &d.out_slot);
    if (c) {
        c->rx_packets += 1;
        c->rx_bytes += len;
    }
    if (d.out_flags & SWALE_FP_PORT_HOST) return bpf_redirect(d.out_ifindex, BPF_F_INGRESS);
    /* bpf_redirect_peer works from tc ingress only. */
    if (at_ingress && (d.out_flags & SWALE_FP_PORT_PEER)) return bpf_redirect_peer(d.out_ifindex, 0);
    return bpf_redirect(d.out_ifindex, 0);
}

SEC("tc")
int swale_fp_ingress(struct __sk_buff *skb) {
    return swale_fp_take(skb, 1);
}

SEC("tc")
int swale_fp_egress(struct __sk_buff *skb) {
    return swale_fp_take(skb, 0);
}

SEC("socket")
int swale_fp_sockfilter(struct __sk_buff *skb) {
    struct swale_fp_decision d;
    return swale_fp_decide(skb, &d) ? 0 : skb->len;
}

char LICENSE[] SEC("license") = "GPL";
