/*
 * abi.c — compile-time proof that swale_abi.h is netmap's layout (sys/net/netmap.h, API 14):
 * the sizes and offsets a C program using netmap's macros depends on. Nothing runs here.
 */
#include "swale_abi.h"

_Static_assert(sizeof(struct swale_slot) == 16, "netmap_slot is 16 bytes");
_Static_assert(offsetof(struct swale_slot, len) == 4 && offsetof(struct swale_slot, flags) == 6, "netmap_slot.len/flags");
_Static_assert(offsetof(struct swale_slot, ptr) == 8, "netmap_slot.ptr");
_Static_assert(offsetof(struct swale_ring, buf_ofs) == 0, "netmap_ring.buf_ofs");
_Static_assert(offsetof(struct swale_ring, num_slots) == 8, "netmap_ring.num_slots");
_Static_assert(offsetof(struct swale_ring, nr_buf_size) == 12, "netmap_ring.nr_buf_size");
_Static_assert(SWALE_RING_HEAD_OFFSET == 20, "netmap_ring.head");
_Static_assert(SWALE_RING_CUR_OFFSET == 24, "netmap_ring.cur");
_Static_assert(SWALE_RING_TAIL_OFFSET == 28, "netmap_ring.tail");
_Static_assert(offsetof(struct swale_ring, flags) == 32, "netmap_ring.flags");
_Static_assert(offsetof(struct swale_ring, ts) == 40, "netmap_ring.ts");
_Static_assert(offsetof(struct swale_ring, sem) == 128, "netmap_ring.sem");
_Static_assert(SWALE_RING_SLOT_OFFSET == 256, "netmap_ring.slot");
_Static_assert(SWALE_SLOT_SIZE == 16, "slot stride");
_Static_assert(SWALE_IF_RING_OFS_OFFSET == 56, "netmap_if.ring_ofs");
_Static_assert(sizeof(struct swale_csb) == 32, "swale_csb");
_Static_assert(SWALE_CSB_OFFSET >= sizeof(struct swale_if) + 2 * sizeof(ssize_t), "the control block sits after ring_ofs[] of one tx and one rx ring");
_Static_assert(sizeof(struct swale_region_header) == 24, "swale_region_header");
/* The slot flags are netmap's NS_* bits. */
_Static_assert(SWALE_NS_BUF_CHANGED == 0x0001 && SWALE_NS_REPORT == 0x0002 && SWALE_NS_FORWARD == 0x0004, "NS_*");
_Static_assert(SWALE_NS_NO_LEARN == 0x0008 && SWALE_NS_INDIRECT == 0x0010 && SWALE_NS_MOREFRAG == 0x0020, "NS_*");
/* Swale's own flag lies outside every bit netmap gives a meaning. */
_Static_assert((SWALE_NS_VNET_HDR & (SWALE_NS_BUF_CHANGED | SWALE_NS_REPORT | SWALE_NS_FORWARD | SWALE_NS_NO_LEARN |
                                     SWALE_NS_INDIRECT | SWALE_NS_MOREFRAG | SWALE_NM_NS_TXMON | SWALE_NM_NS_PORT_MASK)) == 0,
               "SWALE_NS_VNET_HDR must not be a netmap flag");
