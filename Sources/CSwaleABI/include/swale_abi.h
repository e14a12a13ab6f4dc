/*
 * swale_abi.h — the layout of Swale's shared memory, for Swift and for C programs. Layout only:
 * structs, slot flags, offsets as constants (checked against netmap's in abi.c). How the fields
 * are read and written concurrently is in CSwaleSys (swale_atomics.h) and SwaleRings.
 *
 * A region is one memfd. It is an array of fixed-size blocks ("buffers", 2048 bytes by default);
 * buffer index i lives at region + i * buf_size. Blocks 0 and 1 hold the region header and are
 * never handed out as packet buffers (netmap reserves indices 0 and 1 the same way). Interface
 * descriptors and rings occupy runs of blocks too, so one index space names everything.
 *
 * struct swale_if / swale_ring / swale_slot are byte-for-byte netmap_if / netmap_ring /
 * netmap_slot (sys/net/netmap.h, API 14): a C program that walks rings with netmap's
 * NETMAP_TXRING / NETMAP_RXRING / NETMAP_BUF / nm_ring_next macros walks Swale rings unchanged.
 * Offsets are relative: ring_ofs from the interface descriptor, buf_ofs from the ring (it is
 * negative: buffers are indexed from the start of the region).
 *
 * The ring rules are netmap's: the application owns head and cur, the other side (the switch, or
 * the peer of a pipe) owns tail, and one slot always stays empty.
 *
 * Beside each interface descriptor (at SWALE_CSB_OFFSET) sits a small control block used to
 * suppress wake-ups, like virtio's and AF_XDP's "need wakeup" flags.
 */
#ifndef SWALE_ABI_H
#define SWALE_ABI_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/time.h>

#define SWALE_IFNAMSIZ 16
#define SWALE_CACHE_ALIGN 128

/* Slot flags: the same bits as netmap's NS_*. */
#define SWALE_NS_BUF_CHANGED 0x0001
#define SWALE_NS_REPORT 0x0002
#define SWALE_NS_FORWARD 0x0004
#define SWALE_NS_NO_LEARN 0x0008
#define SWALE_NS_INDIRECT 0x0010
#define SWALE_NS_MOREFRAG 0x0020
/* Swale extension: the frame starts with a 12-byte virtio_net_hdr_v1 (offload metadata). A bit
 * netmap leaves unused: 0x0040 is its NS_TXMON, and the high byte (0xff00) is NS_PORT_MASK (a
 * VALE destination port on tx, the fragment count on rx). */
#define SWALE_NS_VNET_HDR 0x0080
/* netmap's meanings of the bits Swale does not use, so no Swale flag ever takes them. */
#define SWALE_NM_NS_TXMON 0x0040
#define SWALE_NM_NS_PORT_MASK 0xff00

struct swale_slot {
    uint32_t buf_idx;
    uint16_t len;
    uint16_t flags;
    uint64_t ptr;
};

struct swale_ring {
    int64_t buf_ofs;
    uint32_t num_slots;
    uint32_t nr_buf_size;
    uint16_t ringid;
    uint16_t dir; /* 0: tx, 1: rx */
    uint32_t head;
    uint32_t cur;
    uint32_t tail;
    uint32_t flags;
    struct timeval ts;
    uint64_t offset_mask;
    uint64_t buf_align;
    /* netmap aligns sem to 128 bytes; explicit padding gives the same offsets and keeps the
     * struct importable into Swift (which does not import over-aligned types). */
    uint8_t pad_to_sem[56];
    uint8_t sem[128];
    struct swale_slot slot[];
};

struct swale_if {
    char ni_name[SWALE_IFNAMSIZ];
    uint32_t ni_version;
    uint32_t ni_flags;
    uint32_t ni_tx_rings;
    uint32_t ni_rx_rings;
    uint32_t ni_bufs_head;
    uint32_t ni_host_tx_rings;
    uint32_t ni_host_rx_rings;
    uint32_t ni_spare1[3];
    ssize_t ring_ofs[];
};

/* Wake-up suppression. Each flag is written by one side and read by the other. */
struct swale_csb {
    uint32_t switch_sleeping; /* set by the switch side: kick me after publishing tx */
    uint32_t app_rx_waiting;  /* set by the app: notify me after publishing rx */
    uint32_t app_tx_waiting;  /* set by the app: notify me when tx slots are freed */
    /* Set by each side when it sleeps the membarrier way (swale_atomics.h); the other side may then
     * check the flags above after a compiler barrier instead of a full fence. 0: fence. */
    uint16_t app_membarrier;
    uint16_t switch_membarrier;
    uint64_t kicks;           /* counters, informative only */
    uint64_t notifies;
};

#define SWALE_CSB_OFFSET 128
#define SWALE_REGION_MAGIC 0x454c4157534eULL /* "NSWALE" */

struct swale_region_header {
    uint64_t magic;
    uint32_t version;
    uint32_t buf_size;
    uint64_t size; /* bytes currently backed; informative (clients use fstat) */
};

#define SWALE_TXRING(nifp, i) \
    ((struct swale_ring *)((char *)(nifp) + (nifp)->ring_ofs[(i)]))
#define SWALE_RXRING(nifp, i) \
    ((struct swale_ring *)((char *)(nifp) + (nifp)->ring_ofs[(i) + (nifp)->ni_tx_rings + (nifp)->ni_host_tx_rings]))
#define SWALE_BUF(ring, index) \
    ((char *)(ring) + (ring)->buf_ofs + ((size_t)(index) * (ring)->nr_buf_size))
#define SWALE_CSB(nifp) ((struct swale_csb *)((char *)(nifp) + SWALE_CSB_OFFSET))

/* Field offsets as constants, for Swift (which cannot spell offsetof). abi.c checks them
 * against netmap's numbers. */
enum {
    SWALE_RING_HEAD_OFFSET = offsetof(struct swale_ring, head),
    SWALE_RING_CUR_OFFSET = offsetof(struct swale_ring, cur),
    SWALE_RING_TAIL_OFFSET = offsetof(struct swale_ring, tail),
    SWALE_RING_SLOT_OFFSET = offsetof(struct swale_ring, slot),
    SWALE_SLOT_SIZE = sizeof(struct swale_slot),
    SWALE_IF_RING_OFS_OFFSET = offsetof(struct swale_if, ring_ofs),
};

#endif
